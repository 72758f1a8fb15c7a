"""Reading one file: detect its format, parse it, build records and rejects.

``read_file(path, ...)`` returns a :class:`FileResult` with a record table, a rejects table and
which format was used. ``format="auto"`` picks the format from the fields and says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import InputFileError, UnknownFormatError
from curate.ingest.builder import RowBuilder, iter_dict_items
from curate.ingest.files import data_suffix, is_hf_disk_dir
from curate.ingest.format import TEXT_FIELDS, Column, Format, formats
from curate.ingest.formats.hf_disk import dataset_rows
from curate.ingest.parse import Item, ParsedFile, ReadContext, RowError, parse_file, sample_keys
from curate.records import empty_records, empty_rejects, encode_meta

FAMILIES: dict[str, Format] = formats()
# Record families in detection order (more specific first).
RECORD_FAMILIES: tuple[Format, ...] = tuple(f for f in FAMILIES.values() if f.kind == "records")
FORMAT_NAMES: tuple[str, ...] = ("auto", *FAMILIES)


def _of_kind(kind: str) -> Format:
    return next(f for f in FAMILIES.values() if f.kind == kind)


# Optional schema fields a `fields:` mapping can fill for any family.
_MAPPABLE_EXTRAS = ("task", "category", "task_source", "rationale")


class SkippedFile(InputFileError):
    """A file curate recognises but does not ingest as SFT data (e.g. preference pairs)."""


@dataclass
class FileResult:
    path: str
    format: str
    records: pa.Table
    rejects: pa.Table
    detected: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.records.num_rows + self.rejects.num_rows


def _is_preference(keys: set[str]) -> str | None:
    if {"chosen", "rejected"} <= keys:
        return "preference pairs (chosen/rejected: DPO-style)"
    if "label" in keys and ("messages" in keys or "conversations" in keys):
        return "KTO-style labelled completions (messages + label)"
    return None


def detect_family(keys: set[str], display: str) -> str:
    preference = _is_preference(keys)
    if preference:
        raise SkippedFile(f"{display}: {preference} are not instruction-tuning rows; skipped")
    for family in RECORD_FAMILIES:
        if family.matches(keys):
            return family.name
    raise UnknownFormatError(
        f"{display}: cannot tell the format from its fields {sorted(keys)}; set `format:` on the source "
        f"(one of {', '.join(FAMILIES)}) and, for renamed columns, `fields: {{output: <column>}}`"
    )


def read_file(
    path: Path,
    *,
    source: str,
    display: str | None = None,
    format: str = "auto",
    license: str | None = None,
    fields: dict[str, str] | None = None,
    strict: bool = False,
    lenient_json: bool = False,
    with_ids: bool = True,
) -> FileResult:
    """Read one data file (or saved dataset directory) into records + rejects.

    ``with_ids=False`` leaves ``id`` empty for a caller that recomputes it right away.
    """
    display = display or str(path)
    ctx = ReadContext(
        source, display, format, license, dict(fields or {}), strict, lenient_json, with_ids
    )
    if format not in FORMAT_NAMES:
        raise UnknownFormatError(
            f"{display}: unknown format {format!r}; expected one of {', '.join(FORMAT_NAMES)}"
        )
    if format == "hf_disk" or (format == "auto" and is_hf_disk_dir(path)):
        rows = _of_kind("hf").load_rows(path)
        return _read_row_groups(rows, ctx, hf_format="hf_disk")
    if path.is_dir():
        raise InputFileError(f"{display}: is a directory but not a saved `datasets` dataset")
    parsed = parse_file(path, display, lenient_json=lenient_json)
    detected = format == "auto"
    if parsed.kind == "tsv":
        tsv = _of_kind("tsv")
        if format not in ("auto", tsv.name):
            raise UnknownFormatError(
                f"{display}: a .tsv file can only be read as {tsv.name}, not {format!r}"
            )
        ctx.format = tsv.name
        return _read_tsv(parsed, tsv, ctx, detected)
    if parsed.kind == "document":
        keys = set(parsed.document)
        if format == "auto":
            document = _of_kind("document")
            if not document.matches(keys):
                raise UnknownFormatError(
                    f"{display}: a single JSON object with fields {sorted(keys)[:12]} is not a known format "
                    "(a Super-NaturalInstructions task has 'Definition' and 'Instances')"
                )
            format = document.name
        if FAMILIES[format].kind != "document":
            raise UnknownFormatError(
                f"{display}: a single JSON object can only be read as niv2, not {format!r}"
            )
        ctx.format = format
        builder = RowBuilder(ctx)
        try:
            FAMILIES[format].read_document(parsed.document, ctx, builder)
        except RowError as error:
            builder.reject(Item(0, None, parsed.document), error)
        return FileResult(
            display, format, builder.records(), builder.rejects(), detected, parsed.warnings
        )
    if format == "auto":
        items = _head(parsed)
        format = detect_family(sample_keys(items), display) if items else "alpaca"
    elif FAMILIES[format].kind != "records":
        raise UnknownFormatError(
            f"{display}: format {format!r} does not match a JSON array / JSON Lines file"
        )
    ctx.format = format
    _check_mapping(parsed, ctx, display)
    builder = RowBuilder(ctx)
    _convert_items(parsed, FAMILIES[format], ctx, builder)
    return FileResult(
        display, format, builder.records(), builder.rejects(), detected, parsed.warnings
    )


_HEAD_ROWS = 50


def _head(parsed: ParsedFile) -> list[Item]:
    """The first rows of a records file, for format detection and the mapping check (a cleanly
    parsed JSON array builds Items for these only)."""
    if parsed.values is None:
        return parsed.items[:_HEAD_ROWS]
    return [Item(i, None, v) for i, v in enumerate(parsed.values[:_HEAD_ROWS])]


def _check_mapping(parsed: ParsedFile, ctx: ReadContext, display: str) -> None:
    """A ``fields:`` mapping that names a column no row has is a mistake (a typo), not a request
    to fall back on the default column: refuse it, naming the columns the rows do have."""
    if not ctx.fields:
        return
    seen = sample_keys(_head(parsed))
    missing = {k: v for k, v in ctx.fields.items() if v not in seen}
    if missing:  # rare: only when the first rows lack a mapped column
        rows = parsed.values if parsed.values is not None else [i.value for i in parsed.items]
        for value in rows[_HEAD_ROWS:]:
            if isinstance(value, dict):
                seen.update(value)
        missing = {k: v for k, v in missing.items() if v not in seen}
    if missing:
        named = ", ".join(f"{k}: {v}" for k, v in sorted(missing.items()))
        raise InputFileError(
            f"{display}: fields: {{{named}}} names a column no row has; the rows have "
            f"{sorted(seen)[:20]}"
        )


def _convert_items(
    parsed: ParsedFile, family: Format, ctx: ReadContext, builder: RowBuilder
) -> None:
    if family.columns and _convert_columnar(parsed, family.columns, ctx, builder):
        return
    extras = [(name, ctx.fields[name]) for name in _MAPPABLE_EXTRAS if name in ctx.fields]
    for item, value in iter_dict_items(parsed, builder):
        obj = dict(value)
        try:
            for fields in family.convert_many(obj, ctx):
                for name, column in extras:
                    if fields.get(name) is None and column in fields["meta"]:
                        raw = fields["meta"].pop(column)
                        fields[name] = raw if isinstance(raw, str) or raw is None else str(raw)
                builder.add(item.row, **fields)
        except RowError as error:
            builder.reject(item, error)


def _convert_columnar(
    parsed: ParsedFile,
    spec: Mapping[str, Column],
    ctx: ReadContext,
    builder: RowBuilder,
) -> bool:
    """Flat families: let Arrow convert all rows at once, map columns vectorized.

    Returns False (nothing added) when the rows are not uniformly flat text, so the caller uses the
    row-by-row path, which explains every odd row precisely.
    """
    good_rows: list[int]
    bad: list[Item] = []
    if parsed.values is not None and all(type(v) is dict for v in parsed.values):
        values = parsed.values
        good_rows = list(range(len(values)))
    else:
        good: list[Item] = []
        for item in parsed.all_items():
            (good if item.error is None and isinstance(item.value, dict) else bad).append(item)
        values = [item.value for item in good]
        good_rows = [item.row for item in good]
    if not values:
        return False
    # Union of keys over all rows (from_pylist would only look at the first row's keys).
    keys = dict.fromkeys(itertools.chain.from_iterable(values))
    try:
        table = pa.table({key: pa.array([v.get(key) for v in values]) for key in keys})
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        OverflowError,
        ValueError,
        TypeError,
        RecursionError,
    ):
        return False
    if not all(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
        for t in table.schema.types
    ):
        return False
    names = set(table.column_names)
    chosen: dict[str, str] = {}
    missing_required: list[str] = []
    for field_name, spec_column in spec.items():
        column = next(
            (c for c in ctx.columns(field_name, *spec_column.sources) if c in names), None
        )
        if column is None:
            if spec_column.required:
                missing_required.append(field_name)
            continue
        chosen[field_name] = column
    if missing_required:
        return False
    required_ok = None
    for field_name, spec_column in spec.items():
        if spec_column.required:
            valid = pc.is_valid(table.column(chosen[field_name]))
            required_ok = valid if required_ok is None else pc.and_(required_ok, valid)
    if required_ok is not None and not pc.all(required_ok).as_py():
        return False  # rare: let the row path name the missing field per row
    for item in bad:
        if item.error is not None:
            builder.reject(item, item.error)
        else:
            builder.reject(
                item,
                RowError("wrong_type", f"expected a JSON object, got {type(item.value).__name__}"),
            )
    leftover = [c for c in table.column_names if c not in chosen.values()]
    extras = [
        (name, ctx.fields[name])
        for name in _MAPPABLE_EXTRAS
        if name in ctx.fields and name not in chosen
    ]
    for name, column in extras:
        if column in leftover:
            chosen[name] = column
            leftover.remove(column)
    n = table.num_rows
    arrays: dict[str, pa.Array] = {"source_row": pa.array(good_rows, pa.int64())}
    for field_name, column in chosen.items():
        values = table.column(column).combine_chunks().cast(pa.string())
        if field_name in TEXT_FIELDS:
            values = pc.fill_null(values, "")
        arrays[field_name] = values
    if leftover:
        rest = table.select(leftover).to_pylist()
        arrays["meta"] = pa.array(
            [encode_meta({k: v for k, v in row.items() if v is not None}) for row in rest],
            pa.string(),
        )
    else:
        arrays["meta"] = pa.array(["{}"] * n, pa.string())
    builder.add_columns(arrays)
    return True


def _read_tsv(parsed: ParsedFile, tsv: Format, ctx: ReadContext, detected: bool) -> FileResult:
    builder = RowBuilder(ctx)
    for item in parsed.items:
        if item.error is not None:
            builder.reject(item, item.error)
            continue
        try:
            builder.add(item.row, **tsv.convert_fields(item.value, ctx))
        except RowError as error:
            item.raw = "\t".join(item.value)
            item.value = None
            builder.reject(item, error)
    return FileResult(
        ctx.file, tsv.name, builder.records(), builder.rejects(), detected, parsed.warnings
    )


def _read_row_groups(
    groups: Sequence[tuple[str | None, list[dict[str, Any]]]], ctx: ReadContext, hf_format: str
) -> FileResult:
    records: list[pa.Table] = []
    rejects: list[pa.Table] = []
    for split, rows in groups:
        items = [Item(i, None, row) for i, row in enumerate(rows)]
        parsed = ParsedFile("records", items)
        name = detect_family(sample_keys(items), ctx.file) if rows else "alpaca"
        split_ctx = ReadContext(
            ctx.source,
            ctx.file if split is None else f"{ctx.file}[{split}]",
            hf_format,
            ctx.license,
            ctx.fields,
            ctx.strict,
        )
        builder = RowBuilder(split_ctx)
        _convert_items(parsed, FAMILIES[name], split_ctx, builder)
        records.append(builder.records())
        rejects.append(builder.rejects())
    return FileResult(
        ctx.file,
        hf_format,
        pa.concat_tables(records) if records else empty_records(),
        pa.concat_tables(rejects) if rejects else empty_rejects(),
        True,
        [],
    )


def read_dataset(
    dataset: Any,
    *,
    source: str,
    license: str | None = None,
    fields: dict[str, str] | None = None,
    strict: bool = False,
) -> FileResult:
    """Read a ``datasets.Dataset`` / ``DatasetDict`` passed in Python."""
    ctx = ReadContext(
        source, f"<datasets:{source}>", "hf_dataset", license, dict(fields or {}), strict
    )
    return _read_row_groups(dataset_rows(dataset), ctx, hf_format="hf_dataset")


def guess_is_data(path: Path) -> bool:
    return is_hf_disk_dir(path) or data_suffix(path) in (".json", ".jsonl", ".ndjson", ".tsv")


__all__ = [
    "FAMILIES",
    "FORMAT_NAMES",
    "FileResult",
    "SkippedFile",
    "detect_family",
    "read_dataset",
    "read_file",
]
