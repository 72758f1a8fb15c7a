"""Run directory constants and the deterministic parquet writer.

``runs/<name>/`` holds ``data/part-*.parquet``, ``rejects/part-*.parquet``, ``stages/`` and
``manifest.json``. A reader never sees a half-written run: until the final rename the work lives in
``runs/.<name>.partial`` (see :mod:`curate.engine.local`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 100_000
ROWS_PER_FILE = 1_000_000
MANIFEST = "manifest.json"
RUN_CARD = "README.md"


def is_complete_run(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / "data").is_dir()


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


def write_parquet(table: pa.Table, path: Path, checkpoint: bool = False) -> None:
    """Deterministic parquet: same table -> same bytes (no timestamps, fixed options).

    Checkpoints between stages favour speed (lz4); published data favours size (zstd).
    """
    pq.write_table(
        table,
        path,
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


def run_card(manifest: dict[str, Any]) -> str:
    """A run directory's README.md: its YAML ``configs`` make ``datasets.load_dataset(RUN_DIR)``
    load the records (and ``load_dataset(RUN_DIR, "rejects")`` the rejects) instead of globbing
    every parquet file below it into one split."""
    import yaml

    configs = [
        {
            "config_name": name,
            **({"default": True} if name == "default" else {}),
            "data_files": [{"split": "train", "path": f"{folder}/*.parquet"}],
        }
        for name, folder in (("default", "data"), ("rejects", "rejects"))
    ]
    front = yaml.safe_dump({"configs": configs, "tags": ["curate"]}, sort_keys=False)
    rows = manifest.get("rows", {})
    return (
        f"---\n{front}---\n\n# {manifest.get('name')}\n\n"
        f"A curate run: {rows.get('output_records', 0)} records in `data/`, "
        f"{rows.get('reject_rows', 0)} rejects (with stage and reason) in `rejects/`, from "
        f"{rows.get('read', 0)} input rows. `report.html` shows the funnel, sources, languages, tasks, "
        "lengths, duplicates and reject samples; `manifest.json` has the resolved recipe and every count.\n\n"
        "```python\nimport datasets\n\n"
        'records = datasets.load_dataset("RUN_DIR", split="train")\n'
        'rejects = datasets.load_dataset("RUN_DIR", "rejects", split="train")\n```\n'
    )
