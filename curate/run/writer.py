"""The deterministic parquet writers: same table, same options, same bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import CurateError, RunDirError
from curate.records import RECORD_SCHEMA
from curate.util.storage import RunPath, arrow_target, parquet_file, read_parquet

ROW_GROUP_ROWS = 100_000
ROWS_PER_FILE = 1_000_000


# Low-cardinality columns get dictionary encoding; long free text does not (it only slows reads).
DICTIONARY_COLUMNS = (
    "source",
    "source_format",
    "source_file",
    "license",
    "task",
    "category",
    "task_source",
    "lang",
    "template_id",
    "template_type",
    "stage",
    "reason",
)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    return [name for name in DICTIONARY_COLUMNS if name in schema.names]


def write_parquet(table: pa.Table, path: RunPath, checkpoint: bool = False) -> None:
    """Deterministic parquet: same table -> same bytes (no timestamps, fixed options).

    Checkpoints between stages favour speed (lz4); published data favours size (zstd).
    """
    where, filesystem = arrow_target(path)
    pq.write_table(
        table,
        where,
        filesystem=filesystem,
        compression="lz4" if checkpoint else "zstd",
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=dictionary_columns(table.schema),
        write_statistics=True,
        store_schema=True,
    )


def dataset_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The writer for published parquet (a run's data/rejects, exports): the same options always."""
    return pq.ParquetWriter(
        path,
        schema,
        compression="zstd",
        use_dictionary=dictionary_columns(schema),
        write_statistics=True,
        store_schema=True,
    )


def write_dataset(
    parts: Sequence[RunPath], directory: Path, schema: pa.Schema | None
) -> tuple[list[str], int]:
    """Concatenate shards (local or on object storage) into ``part-NNNNN.parquet`` files of <= 1M
    rows, ~100k-row groups, in the local ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    if schema is None:
        files = [parquet_file(p) for p in parts]
        schemas = [f.schema_arrow for f in files]
        non_empty = [s for s, f in zip(schemas, files, strict=True) if f.metadata.num_rows]
        try:
            schema = pa.unify_schemas(non_empty or schemas[:1]) if schemas else RECORD_SCHEMA
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise CurateError(f"stages produced shards with incompatible columns: {exc}") from None
    written: list[str] = []
    writer: pq.ParquetWriter | None = None
    rows_in_file = 0
    total = 0

    def open_writer() -> pq.ParquetWriter:
        path = directory / f"part-{len(written):05d}.parquet"
        written.append(f"{directory.name}/{path.name}")
        return dataset_writer(path, schema)

    try:
        for part in parts:
            table = read_parquet(part)
            if table.num_rows == 0:
                continue
            table = align(table, schema)
            start = 0
            while start < table.num_rows:
                if writer is None or rows_in_file >= ROWS_PER_FILE:
                    if writer is not None:
                        writer.close()
                    writer = open_writer()
                    rows_in_file = 0
                take = min(table.num_rows - start, ROWS_PER_FILE - rows_in_file)
                writer.write_table(table.slice(start, take), row_group_size=ROW_GROUP_ROWS)
                rows_in_file += take
                total += take
                start += take
        if writer is None:  # always at least one (possibly empty) file
            writer = open_writer()
        writer.close()
    except OSError as exc:
        raise RunDirError(f"cannot write {directory}: {exc.strerror or exc}") from None
    return written, total


def align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
