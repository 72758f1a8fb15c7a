"""curate: raw instruction-tuning data in, a clean, deduplicated, reproducible parquet mix out.

Stages are importable and callable on Arrow tables without the CLI::

    from curate import ExactDedup, Normalize, Pipeline, read_file
    table = read_file("data_samples/dolly.jsonl", source="dolly").records
    kept, rejected = Pipeline([Normalize(), ExactDedup()]).run(table)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.engine.pipeline import Pipeline
from curate.engine.run import run_recipe
from curate.errors import CurateError
from curate.ingest import FileResult, read_dataset
from curate.ingest import read_file as _read_file
from curate.recipe import Recipe, load_recipe
from curate.records import RECORD_SCHEMA, REJECT_SCHEMA, Record
from curate.run.export import export_run
from curate.run.report import write_report
from curate.stages import Stage, StageResult, get_stage, registry
from curate.stages.dedup.exact import ExactDedup
from curate.stages.normalize import Normalize


def read_file(path: str | Path, *, source: str, **kwargs: Any) -> FileResult:
    """Read one input file (any supported format; ``format="auto"`` detects it)."""
    return _read_file(Path(path), source=source, **kwargs)


def __getattr__(name: str) -> Any:
    # Stages added by discovery (MinHashDedup, Quality, ...) are importable from the top level too.
    from curate import stages

    return getattr(stages, name)


__all__ = [
    "RECORD_SCHEMA",
    "REJECT_SCHEMA",
    "CurateError",
    "ExactDedup",
    "FileResult",
    "Normalize",
    "Pipeline",
    "Recipe",
    "Record",
    "Stage",
    "StageResult",
    "export_run",
    "get_stage",
    "load_recipe",
    "read_dataset",
    "read_file",
    "registry",
    "run_recipe",
    "write_report",
]
