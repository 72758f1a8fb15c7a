"""Row building: Arrow record and reject tables for one file.

A format family maps a parsed row (a dict) to record fields and hands them to a :class:`RowBuilder`,
which adds the provenance columns, the ``meta`` JSON for unknown keys and the rejects for rows that
fail. Parsing files into items is :mod:`curate.ingest.parse`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import InputFileError
from curate.ingest.parse import MAX_RAW_CHARS, Item, ParsedFile, ReadContext, RowError
from curate.records import (
    PROVENANCE_COLUMNS,
    RECORD_SCHEMA,
    REJECT_SCHEMA,
    STAGE_COLUMNS,
    compute_ids,
    encode_meta,
)

# Record fields a format fills per row (the builder sets the provenance columns).
ROW_FIELDS: tuple[str, ...] = tuple(
    name for name in RECORD_SCHEMA.names if name not in (*PROVENANCE_COLUMNS, *STAGE_COLUMNS)
)
_TEXT_DEFAULTS = {"input": "", "output": ""}


class RowBuilder:
    """Accumulates records and rejects column by column for one file."""

    def __init__(self, ctx: ReadContext) -> None:
        self.ctx = ctx
        self._cols: dict[str, list[Any]] = {name: [] for name in ROW_FIELDS}
        self._rejects: list[dict[str, Any]] = []
        self._batches: list[pa.Table] = []

    def __len__(self) -> int:
        return len(self._cols["source_row"]) + sum(b.num_rows for b in self._batches)

    def add_columns(self, columns: dict[str, pa.Array]) -> None:
        """Add many rows at once (the columnar fast path): schema-named arrays of equal length."""
        n = len(columns["source_row"])
        self._batches.append(_assemble({**columns, **self._provenance(n)}, RECORD_SCHEMA, n))

    def _provenance(self, n: int) -> dict[str, pa.Array]:
        ctx = self.ctx
        return {
            "id": pa.array([""] * n, pa.string()),
            "source": pa.array([ctx.source] * n, pa.string()),
            "source_format": pa.array([ctx.format] * n, pa.string()),
            "source_file": pa.array([ctx.file] * n, pa.string()),
            "license": pa.array([ctx.license] * n, pa.string()),
        }

    @property
    def reject_count(self) -> int:
        return len(self._rejects)

    def add(
        self, row: int, *, instruction: str, meta: dict[str, Any] | None = None, **fields: Any
    ) -> None:
        """One record from one source row; ``fields`` are any of :data:`ROW_FIELDS`."""
        unknown = set(fields) - set(ROW_FIELDS)
        if unknown:
            raise TypeError(f"not record fields: {sorted(unknown)}")
        try:
            encoded_meta = encode_meta(meta)
        except (RecursionError, ValueError) as exc:
            raise RowError(
                "parse_error", f"an extra field cannot be stored as JSON ({type(exc).__name__})"
            ) from None
        values = {**fields, "instruction": instruction, "source_row": row, "meta": encoded_meta}
        for name, column in self._cols.items():
            column.append(values.get(name, _TEXT_DEFAULTS.get(name)))

    def reject(self, item: Item, error: RowError, stage: str = "ingest") -> None:
        if self.ctx.strict:
            raise InputFileError(
                f"{self.ctx.file}, {item.where()}: {error.detail} (reason={error.reason}); "
                "run without --strict to quarantine bad rows as rejects instead"
            )
        raw = item.raw
        if raw is None and item.value is not None:
            try:
                raw = json.dumps(item.value, ensure_ascii=False, default=str)
            except (RecursionError, ValueError):
                raw = "<not serializable: nested too deeply>"
        meta: dict[str, Any] = {}
        if item.line is not None:
            meta["line"] = item.line
        if raw is not None:
            meta["raw"] = raw[:MAX_RAW_CHARS]
            if len(raw) > MAX_RAW_CHARS:
                meta["raw_truncated_from"] = len(raw)
        self._rejects.append(
            {
                "source_row": item.row,
                "meta": encode_meta(meta),
                "stage": stage,
                "reason": error.reason,
                "detail": f"{self.ctx.file}, {item.where()}: {error.detail}",
            }
        )

    def records(self) -> pa.Table:
        cols = self._cols
        n = len(cols["source_row"])
        arrays: dict[str, pa.Array] = self._provenance(n)
        for name, values in cols.items():
            arrays[name] = pa.array(values, RECORD_SCHEMA.field(name).type)
        table = _assemble(arrays, RECORD_SCHEMA, n)
        if self._batches:
            table = (
                pa.concat_tables([*self._batches, table]) if n else pa.concat_tables(self._batches)
            )
            if len(self._batches) > 1 or n:
                table = table.take(pc.sort_indices(table.column("source_row")))
        if not self.ctx.with_ids:
            return table
        return table.set_column(0, RECORD_SCHEMA.field("id"), compute_ids(table))

    def rejects(self) -> pa.Table:
        n = len(self._rejects)
        arrays: dict[str, pa.Array] = self._provenance(n)
        for name in ("source_row", "meta", "stage", "reason", "detail"):
            arrays[name] = pa.array(
                [r[name] for r in self._rejects], REJECT_SCHEMA.field(name).type
            )
        return _assemble(arrays, REJECT_SCHEMA, n)


def _assemble(arrays: dict[str, pa.Array], schema: pa.Schema, n: int) -> pa.Table:
    columns = []
    for f in schema:
        if f.name in arrays:
            columns.append(arrays[f.name])
        elif f.nullable:
            columns.append(pa.nulls(n, f.type))
        elif pa.types.is_string(f.type):
            columns.append(pa.array([""] * n, f.type))
        elif pa.types.is_integer(f.type):
            columns.append(pa.array([-1] * n, f.type))
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def iter_dict_items(
    parsed: ParsedFile, builder: RowBuilder
) -> Iterator[tuple[Item, dict[str, Any]]]:
    """Items that parsed to a JSON object; everything else becomes a reject right here."""
    for item in parsed.all_items():
        if item.error is not None:
            builder.reject(item, item.error)
        elif not isinstance(item.value, dict):
            builder.reject(
                item,
                RowError("wrong_type", f"expected a JSON object, got {type(item.value).__name__}"),
            )
        else:
            yield item, item.value
