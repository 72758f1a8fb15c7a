"""The local executor: sources -> stages -> run directory.

Stages never know where data lives. The executor reads each source into Arrow batches, streams
per-batch stages over them, gives global stages (dedup, mix) a ``fit`` pass over every batch
before ``apply``, collects every dropped row into the rejects, and writes the run directory
atomically with a manifest that accounts for every input row.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import CurateError, InputFileError
from curate.io import expand_paths, file_fingerprint
from curate.readers import FileResult, SkippedFile, read_dataset, read_file
from curate.recipe import Recipe, SourceConfig
from curate.records import REJECT_SCHEMA, conform, empty_records
from curate.rundir import RunDirWriter
from curate.stages.base import GlobalStage, Stage, StageResult

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
    files: list[Path] = []
    for spec in config.paths:
        try:
            found, skipped = expand_paths(spec)
        except InputFileError:
            if base_dir is None:
                raise
            # Relative paths resolve against the working directory first, then the recipe's folder.
            found, skipped = expand_paths(spec, base=base_dir)
        files.extend(found)
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
                for reason, count in _reason_counts(r).items():
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


def _reason_counts(rejects: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(rejects.column("reason").combine_chunks())
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}


_LINEAGE = ["source", "source_file", "source_row", "lineage_id"]


def _lineage(table: pa.Table) -> pa.Table:
    """One row per ingested row a table holds. Template expansion turns one record into several
    rows; they share ``parent_id``, so an ingested row counts once however many rows it became."""
    parent = (
        table.column("parent_id")
        if "parent_id" in table.column_names
        else pa.nulls(table.num_rows, pa.string())
    )
    lineage_id = pc.coalesce(parent, table.column("id"))
    keys = pa.table(
        {
            "source": table.column("source"),
            "source_file": table.column("source_file"),
            "source_row": table.column("source_row"),
            "lineage_id": lineage_id,
        }
    )
    return keys.group_by(_LINEAGE).aggregate([])


def _accounting(records: pa.Table, rejected: pa.Table) -> tuple[dict[str, int], dict[str, int]]:
    """Per source: ingested rows that reached the output, and those that only reached the rejects."""
    kept = _lineage(records)
    dropped = _lineage(rejected)
    if kept.num_rows and dropped.num_rows:
        dropped = dropped.join(kept, keys=_LINEAGE, join_type="left anti")
    return _count_by_source(kept), _count_by_source(dropped)


def _count_by_source(table: pa.Table) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    return {
        str(v["values"]): int(v["counts"])
        for v in pc.value_counts(table.column("source")).to_pylist()
    }


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


def run_recipe(
    recipe: Recipe,
    *,
    out: Path | None = None,
    force: bool = False,
    strict: bool | None = None,
    recipe_path: Path | None = None,
    log: Log = _quiet,
) -> RunResult:
    """Run a validated recipe end to end and publish its run directory."""
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    stages = recipe.build_stages()  # fails before any work
    strict = recipe.strict if strict is None else strict
    final = Path(out) if out is not None else recipe.output_dir()
    writer = RunDirWriter(final, force=force)
    try:
        sources: list[SourceData] = []
        base_dir = recipe_path.parent if recipe_path is not None else None
        with_ids = not (stages and stages[0].recomputes_ids)
        for config in recipe.sources:
            sources.append(
                read_source(
                    config,
                    base_dir=base_dir,
                    strict=strict,
                    batch_size=recipe.batch_size,
                    with_ids=with_ids,
                    log=log,
                )
            )
        ingest_seconds = time.perf_counter() - t0
        batches = [b for s in sources for b in s.batches]
        rejects = [r for s in sources for r in s.rejects]
        kept, stage_rejects, stage_stats = Pipeline(stages).run_batches(batches, log=log)
        rejects.extend(stage_rejects)
        records = _final_table(kept)
        rejected = (
            pa.concat_tables([r.cast(REJECT_SCHEMA) for r in rejects])
            if rejects
            else REJECT_SCHEMA.empty_table()
        )
        data_files = writer.write_table("data", records)
        reject_files = writer.write_table("rejects", rejected)
        manifest = _manifest(
            recipe,
            sources,
            stage_stats,
            records,
            rejected,
            data_files,
            reject_files,
            started_at,
            t0,
            ingest_seconds,
            recipe_path,
        )
        writer.write_json("manifest.json", manifest)
        published = writer.commit()
    except BaseException:
        writer.abort()
        raise
    log(f"wrote {published}: {records.num_rows} records, {rejected.num_rows} rejects")
    return RunResult(published, manifest)


def _final_table(kept: list[pa.Table]) -> pa.Table:
    if not kept:
        return empty_records()
    # Stages may add score columns to some batches only (e.g. after a mix); unify by name.
    tables = [conform(t) for t in kept]
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CurateError(
            f"stages produced batches with incompatible extra columns: {exc}"
        ) from None


def _manifest(
    recipe: Recipe,
    sources: list[SourceData],
    stage_stats: list[dict[str, Any]],
    records: pa.Table,
    rejected: pa.Table,
    data_files: list[str],
    reject_files: list[str],
    started_at: datetime,
    t0: float,
    ingest_seconds: float,
    recipe_path: Path | None,
) -> dict[str, Any]:
    kept_by_source, rejected_by_source = _accounting(records, rejected)
    source_entries = []
    for s in sources:
        name = s.config.name
        source_entries.append(
            {
                "name": name,
                "path": s.config.path,
                "format": s.config.format,
                "license": s.config.license,
                "files": s.files,
                "skipped_files": s.skipped,
                "warnings": s.warnings,
                "rows_read": s.rows_read,
                "rows_kept": kept_by_source.get(name, 0),
                "rows_rejected": rejected_by_source.get(name, 0),
            }
        )
    resolved = recipe.to_dict()
    return {
        "curate_version": package_versions()["curate"],
        "name": recipe.name,
        "seed": recipe.seed,
        "recipe": resolved,
        "recipe_sha256": hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest(),
        "recipe_path": str(recipe_path) if recipe_path else None,
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "packages": package_versions(),
        },
        "sources": source_entries,
        "stages": stage_stats,
        "outputs": {
            "records": records.num_rows,
            "rejects": rejected.num_rows,
            "data_files": data_files,
            "reject_files": reject_files,
            "columns": records.column_names,
        },
        "rows": {
            "read": sum(s.rows_read for s in sources),
            "kept": sum(kept_by_source.values()),
            "rejected": sum(rejected_by_source.values()),
            "output_records": records.num_rows,
            "reject_rows": rejected.num_rows,
        },
        "timings": {
            "ingest_seconds": round(ingest_seconds, 3),
            "total_seconds": round(time.perf_counter() - t0, 3),
        },
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


__all__ = [
    "Pipeline",
    "RunResult",
    "SourceData",
    "read_python_dataset",
    "read_source",
    "run_recipe",
]
