"""Reading one file: detect its format, parse it, build records and rejects.

``read_file(path, ...)`` returns a :class:`FileResult` with a record table, a rejects table and
which format was used. ``format="auto"`` picks the format from the fields and says so.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import InputFileError, UnknownFormatError
from curate.ingest.builder import RowBuilder, iter_dict_items
from curate.ingest.files import DATA_SUFFIXES, data_suffix, file_fingerprint, is_hf_disk_dir
from curate.ingest.format import TEXT_FIELDS, Column, Format, formats
from curate.ingest.formats.hf_disk import RowGroups, dataset_rows
from curate.ingest.parse import (
    Item,
    Limits,
    ParsedFile,
    ParsedStream,
    ReadContext,
    RowError,
    open_parsed,
    sample_keys,
)
from curate.records import empty_records, empty_rejects, encode_meta_column

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


class FileReader:
    """One file read batch by batch: iterate :meth:`chunks` once for (records, rejects) tables.

    Memory is bounded by ``limits.batch_rows`` whatever the file's size. After the chunks:
    ``rows_read``, ``warnings`` and :meth:`fingerprint` (of the bytes actually read).
    """

    def __init__(
        self,
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
        limits: Limits | None = None,
    ) -> None:
        self.path = path
        self.display = display or str(path)
        if format not in FORMAT_NAMES:
            raise UnknownFormatError(
                f"{self.display}: unknown format {format!r}; expected one of {', '.join(FORMAT_NAMES)}"
            )
        self.ctx = ReadContext(
            source,
            self.display,
            format,
            license,
            dict(fields or {}),
            strict,
            lenient_json,
            with_ids,
        )
        self.requested = format
        self.format = format
        self.detected = format == "auto"
        self.limits = limits or Limits()
        self.rows_read = 0
        self.warnings: list[str] = []
        # How sure auto-detection was: share of the sampled rows that fit the chosen format.
        self.confidence: float | None = None
        self.sampled = 0
        self._parsed: ParsedStream | None = None

    def fingerprint(self) -> dict[str, object]:
        if self._parsed is None:
            return file_fingerprint(self.path)
        return self._parsed.fingerprint()

    def chunks(self) -> Iterator[tuple[pa.Table, pa.Table]]:
        path, display, ctx, format = self.path, self.display, self.ctx, self.requested
        if format == "hf_disk" or (format == "auto" and is_hf_disk_dir(path)):
            self.format, self.detected = "hf_disk", True
            groups = _of_kind("hf").load_rows(path, self.limits.batch_rows)
            for records, rejects in _row_group_chunks(groups, ctx, hf_format="hf_disk"):
                yield self._count(records, rejects)
            return
        if path.is_dir():
            raise InputFileError(f"{display}: is a directory but not a saved `datasets` dataset")
        parsed = open_parsed(path, display, self.ctx.lenient_json, self.limits)
        self._parsed = parsed
        if parsed.kind == "tsv":
            yield from self._tsv(parsed)
        elif parsed.kind == "document":
            yield self._document(parsed)
        else:
            yield from self._records(parsed)
        self.warnings.extend(parsed.warnings)
        if parsed.stream is not None and parsed.stream.damage:
            # lenient: the rows before the damage are in; one reject says the rest is lost.
            builder = RowBuilder(self.ctx)
            builder.reject(
                Item(self.rows_read, None, None),
                RowError("truncated_input", f"{parsed.stream.damage}; rows after it are lost"),
            )
            yield self._count(builder.records(), builder.rejects())

    def _count(self, records: pa.Table, rejects: pa.Table) -> tuple[pa.Table, pa.Table]:
        self.rows_read += records.num_rows + rejects.num_rows
        return records, rejects

    def _tsv(self, parsed: ParsedStream) -> Iterator[tuple[pa.Table, pa.Table]]:
        tsv = _of_kind("tsv")
        if self.requested not in ("auto", tsv.name):
            raise UnknownFormatError(
                f"{self.display}: a .tsv file can only be read as {tsv.name}, not {self.requested!r}"
            )
        self.format = self.ctx.format = tsv.name
        for batch in parsed.batches:
            builder = RowBuilder(self.ctx)
            _convert_tsv(batch, tsv, self.ctx, builder)
            yield self._count(builder.records(), builder.rejects())

    def _document(self, parsed: ParsedStream) -> tuple[pa.Table, pa.Table]:
        keys = set(parsed.document)
        format = self.requested
        if format == "auto":
            document = _of_kind("document")
            if not document.matches(keys):
                raise UnknownFormatError(
                    f"{self.display}: a single JSON object with fields {sorted(keys)[:12]} is not a known format "
                    "(a Super-NaturalInstructions task has 'Definition' and 'Instances')"
                )
            format = document.name
        if FAMILIES[format].kind != "document":
            raise UnknownFormatError(
                f"{self.display}: a single JSON object can only be read as niv2, not {format!r}"
            )
        self.format = self.ctx.format = format
        builder = RowBuilder(self.ctx)
        try:
            FAMILIES[format].read_document(parsed.document, self.ctx, builder)
        except RowError as error:
            builder.reject(Item(0, None, parsed.document), error)
        return self._count(builder.records(), builder.rejects())

    def _records(self, parsed: ParsedStream) -> Iterator[tuple[pa.Table, pa.Table]]:
        format = self.requested
        mapping = _MappingCheck(self.ctx, self.display)
        family: Format | None = None
        for batch in parsed.batches:
            if family is None:
                if format == "auto":
                    format = self._detect(batch)
                elif FAMILIES[format].kind != "records":
                    raise UnknownFormatError(
                        f"{self.display}: format {format!r} does not match a JSON array / JSON Lines file"
                    )
                self.format = self.ctx.format = format
                family = FAMILIES[format]
            mapping.see(batch)
            builder = RowBuilder(self.ctx)
            _convert_items(batch, family, self.ctx, builder, check_family=self.detected)
            yield self._count(builder.records(), builder.rejects())
        if family is None:  # an empty file
            self.format = self.ctx.format = "alpaca" if format == "auto" else format
        mapping.finish()

    def _detect(self, batch: ParsedFile) -> str:
        """The family most of the first rows fit (each row votes for the first family it matches,
        in detection order); rows of another family are rejected later, not the whole file."""
        votes: Counter[str] = Counter()
        dict_rows = [v for v in _sample_values(batch, _DETECT_ROWS) if isinstance(v, dict)]
        for value in dict_rows:
            keys = set(value)
            votes[next((f.name for f in RECORD_FAMILIES if f.matches(keys)), "")] += 1
        votes.pop("", None)
        if not votes:
            return detect_family(sample_keys(_head(batch)), self.display) if dict_rows else "alpaca"
        order = {f.name: i for i, f in enumerate(RECORD_FAMILIES)}
        winner = max(votes, key=lambda name: (votes[name], -order[name]))
        family = FAMILIES[winner]
        preference = sum(1 for v in dict_rows if _is_preference(set(v)))
        if preference * 2 > len(dict_rows):
            detect_family(sample_keys(_head(batch)), self.display)  # raises SkippedFile
        fit = sum(1 for v in dict_rows if family.matches(set(v)))
        self.sampled = len(dict_rows)
        self.confidence = round(fit / len(dict_rows), 4)
        return winner


_HEAD_ROWS = 50
_DETECT_ROWS = 1000


def _sample_values(batch: ParsedFile, limit: int) -> list[Any]:
    if batch.values is not None and not batch.items:
        return batch.values[:limit]
    return [item.value for item in batch.items[:limit]]


def _head(batch: ParsedFile) -> list[Item]:
    """The first rows of a batch as Items (a cleanly parsed batch builds Items for these only)."""
    if batch.values is not None and not batch.items:
        return [Item(batch.first_row + i, None, v) for i, v in enumerate(batch.values[:_HEAD_ROWS])]
    return batch.items[:_HEAD_ROWS]


class _MappingCheck:
    """A ``fields:`` mapping that names a column no row has is a mistake (a typo), not a request
    to fall back on the default column: refuse it, naming the columns the rows do have. Checked
    on the first rows, and on later batches only while a mapped column is still unseen."""

    def __init__(self, ctx: ReadContext, display: str) -> None:
        self.display = display
        self.missing = {k: v for k, v in ctx.fields.items() if k}
        self.seen: set[str] = set()

    def see(self, batch: ParsedFile) -> None:
        if not self.missing:
            return
        for value in _sample_values(batch, len(batch)):
            if isinstance(value, dict):
                self.seen.update(value)
                self.missing = {k: v for k, v in self.missing.items() if v not in self.seen}
                if not self.missing:
                    return

    def finish(self) -> None:
        if self.missing and self.seen:
            named = ", ".join(f"{k}: {v}" for k, v in sorted(self.missing.items()))
            raise InputFileError(
                f"{self.display}: fields: {{{named}}} names a column no row has; the rows have "
                f"{sorted(self.seen)[:20]}"
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
    limits: Limits | None = None,
) -> FileResult:
    """Read one data file (or saved dataset directory) whole into records + rejects.

    ``with_ids=False`` leaves ``id`` empty for a caller that recomputes it right away. For files
    larger than memory, iterate :class:`FileReader` instead.
    """
    reader = FileReader(
        path,
        source=source,
        display=display,
        format=format,
        license=license,
        fields=fields,
        strict=strict,
        lenient_json=lenient_json,
        with_ids=with_ids,
        limits=limits,
    )
    records: list[pa.Table] = []
    rejects: list[pa.Table] = []
    for got, refused in reader.chunks():
        records.append(got)
        rejects.append(refused)
    return FileResult(
        reader.display,
        reader.format,
        pa.concat_tables(records) if records else empty_records(),
        pa.concat_tables(rejects) if rejects else empty_rejects(),
        reader.detected,
        reader.warnings,
    )


def _convert_items(
    parsed: ParsedFile,
    family: Format,
    ctx: ReadContext,
    builder: RowBuilder,
    check_family: bool = False,
) -> None:
    if check_family:
        parsed = _reject_other_families(parsed, family, builder)
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


def _reject_other_families(parsed: ParsedFile, family: Format, builder: RowBuilder) -> ParsedFile:
    """Rows that do not fit the detected family but fit another one are rejected as
    ``format_mismatch`` naming that family (one stray ShareGPT row in an Alpaca file is one
    reject, not a file read with the wrong format)."""
    values = _sample_values(parsed, len(parsed))
    # Rows share a handful of key layouts: each is judged once.
    fits: dict[tuple[str, ...], bool] = {}
    odd = []
    for index, value in enumerate(values):
        if isinstance(value, dict):
            layout = tuple(value)
            fit = fits.get(layout)
            if fit is None:
                fit = fits[layout] = family.matches(set(layout))
            if not fit:
                odd.append(index)
    if not odd:
        return parsed
    items = parsed.all_items()
    kept: list[Item] = []
    strays = set(odd)
    for index, item in enumerate(items):
        other = (
            next((f for f in RECORD_FAMILIES if f.matches(set(item.value))), None)
            if index in strays
            else None
        )
        if other is None:
            kept.append(item)
            continue
        builder.reject(
            item,
            RowError(
                "format_mismatch",
                f"this row looks like {other.name} (fields {sorted(item.value)[:8]}); "
                f"the file was detected as {family.name}",
            ),
        )
    return ParsedFile(parsed.kind, kept, first_row=parsed.first_row)


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
    if (
        parsed.values is not None
        and not parsed.items
        and all(type(v) is dict for v in parsed.values)
    ):
        values = parsed.values
        good_rows = list(range(parsed.first_row, parsed.first_row + len(values)))
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
        arrays["meta"] = encode_meta_column(table.select(leftover))
    else:
        arrays["meta"] = pa.array(["{}"] * n, pa.string())
    builder.add_columns(arrays)
    return True


def _convert_tsv(parsed: ParsedFile, tsv: Format, ctx: ReadContext, builder: RowBuilder) -> None:
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


def _row_group_chunks(
    groups: RowGroups, ctx: ReadContext, hf_format: str
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """(records, rejects) per batch of each split of a ``datasets`` dataset."""
    for split, batches in groups:
        split_ctx = ReadContext(
            ctx.source,
            ctx.file if split is None else f"{ctx.file}[{split}]",
            hf_format,
            ctx.license,
            ctx.fields,
            ctx.strict,
        )
        family: Format | None = None
        first_row = 0
        for rows in batches:
            items = [Item(first_row + i, None, row) for i, row in enumerate(rows)]
            if family is None:
                family = FAMILIES[detect_family(sample_keys(items), ctx.file) if rows else "alpaca"]
            builder = RowBuilder(split_ctx)
            _convert_items(
                ParsedFile("records", items, first_row=first_row), family, split_ctx, builder
            )
            first_row += len(rows)
            yield builder.records(), builder.rejects()


def _read_row_groups(groups: RowGroups, ctx: ReadContext, hf_format: str) -> FileResult:
    records: list[pa.Table] = []
    rejects: list[pa.Table] = []
    for got, refused in _row_group_chunks(groups, ctx, hf_format):
        records.append(got)
        rejects.append(refused)
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
    return is_hf_disk_dir(path) or data_suffix(path) in DATA_SUFFIXES


__all__ = [
    "FAMILIES",
    "FORMAT_NAMES",
    "FileReader",
    "FileResult",
    "SkippedFile",
    "detect_family",
    "read_dataset",
    "read_file",
]
