"""curate: raw instruction-tuning data in, a clean, deduplicated, reproducible parquet mix out.

Stages are importable and callable on Arrow tables without the CLI::

    from curate import ExactDedup, Normalize, Pipeline, read_file
    table = read_file("data_samples/dolly.jsonl", source="dolly").records
    kept, rejected = Pipeline([Normalize(), ExactDedup()]).run(table)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public names, for type checkers; at run time they load on first use
    from curate.engine.pipeline import Pipeline
    from curate.engine.run import run_recipe
    from curate.errors import CurateError
    from curate.ingest import FileResult, read_dataset
    from curate.recipe import Recipe, load_recipe
    from curate.records import RECORD_SCHEMA, REJECT_SCHEMA, Record
    from curate.run.export import export_run
    from curate.run.report import write_report
    from curate.stages import Stage, StageResult, get_stage, registry
    from curate.stages.dedup.exact import ExactDedup
    from curate.stages.normalize import Normalize

# Where each public name lives. `import curate` (and so `curate --help`) imports none of them
# until a name is used: the engine, Arrow readers and the report stay unloaded for a CLI call
# that does not need them.
_PUBLIC = {
    "Pipeline": "curate.engine.pipeline",
    "run_recipe": "curate.engine.run",
    "CurateError": "curate.errors",
    "FileResult": "curate.ingest",
    "read_dataset": "curate.ingest",
    "Recipe": "curate.recipe",
    "load_recipe": "curate.recipe",
    "RECORD_SCHEMA": "curate.records",
    "REJECT_SCHEMA": "curate.records",
    "Record": "curate.records",
    "export_run": "curate.run.export",
    "write_report": "curate.run.report",
    "Stage": "curate.stages",
    "StageResult": "curate.stages",
    "get_stage": "curate.stages",
    "registry": "curate.stages",
    "ExactDedup": "curate.stages.dedup.exact",
    "Normalize": "curate.stages.normalize",
}


def read_file(path: str | Path, *, source: str, **kwargs: Any) -> FileResult:
    """Read one input file (any supported format; ``format="auto"`` detects it)."""
    from curate.ingest import read_file as _read_file

    return _read_file(Path(path), source=source, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name.startswith("__"):
        raise AttributeError(name)
    # Stages added by discovery (MinHashDedup, Quality, ...) are importable from the top level too.
    return getattr(importlib.import_module("curate.stages"), name)


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
