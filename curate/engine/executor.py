"""The run loop both engines share: checkpoints, resume, manifest and the published run directory.

Layout of a run in progress (``runs/.<name>.partial``), renamed to ``runs/<name>`` when complete::

    run.json                         the run key (recipe + inputs): a resume must match it
    stages/00-ingest/part-NNNNN.parquet   one part per batch (sharding fixed at ingest)
    stages/00-ingest/rejects/...          rows that could not be parsed
    stages/01-normalize_v1/part-NNNNN.parquet + part-NNNNN.json (the shard's stats, written last)
    stages/<nn>-<stage>/_SUCCESS          the stage is complete (its stats)
    data/, rejects/, manifest.json        written last, then report.html

Per-batch stages run shard by shard (a shard whose stats file exists is done and is skipped on
resume). Global stages (dedup, mix) ``fit`` over every shard read back from disk (memory is bounded
by the batch size plus the stage's own state) and are redone as a whole if a run stopped inside
them. Every write is atomic, so a SIGKILL at any point leaves a state resume can use. How shards are
scheduled (a process pool, Ray) is the engine's: :mod:`curate.engine.local`,
:mod:`curate.engine.ray_engine`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.engine.checkpoint import (
    SUCCESS,
    StageDir,
    read_json,
    stage_label,
    write_parquet_atomic,
)
from curate.engine.manifest import (
    add_counts,
    input_fingerprints,
    package_versions,
    python_version,
    run_key,
    source_directories,
    stage_entry,
)
from curate.engine.progress import Reporter
from curate.errors import CurateError, RunDirError
from curate.ingest.sources import (
    FileOutcome,
    SourceConfig,
    SourceData,
    read_source_file,
    source_plan,
)
from curate.recipe import Recipe
from curate.records import REJECT_SCHEMA
from curate.run.funnel import source_accounting
from curate.run.layout import MANIFEST, RUN_CARD, RunDir, publish, refuse_foreign_partial, run_card
from curate.run.manifest import Manifest
from curate.run.writer import write_dataset
from curate.stages.base import GlobalStage, Stage
from curate.util.files import io_error, write_bytes_atomic, write_json_atomic
from curate.util.storage import (
    ObjectPath,
    RunPath,
    as_run_path,
    copy_tree,
    remove_tree,
    work_root,
)


def local_work_dir(partial: RunPath) -> Path:
    """Where a run keeps what lives on local disk: the partial folder itself, or for a run on
    object storage ``$CURATE_WORK_DIR/<bucket>-<hash of the location>`` (default
    ``~/.cache/curate/work``): its embedding cache and the outputs before they are uploaded."""
    if isinstance(partial, Path):
        return partial
    digest = hashlib.sha256(str(partial).encode()).hexdigest()[:16]
    return work_root() / f"{partial.bucket}-{digest}"


def read_input_file(
    config: SourceConfig,
    path: Path,
    display: str,
    strict: bool,
    batch_size: int,
    with_ids: bool,
    scratch: Path,
) -> tuple[FileOutcome, list[tuple[Path, int]], list[Path]]:
    """Read one input file into ingest shards in the local ``scratch`` folder (a task for any
    process): the file's outcome, its record shards with their row counts, its reject parts."""
    parts: list[tuple[Path, int]] = []
    rejects: list[Path] = []

    def write_records(table: pa.Table) -> None:
        where = scratch / f"part-{len(parts):05d}.parquet"
        write_parquet_atomic(table, where)
        parts.append((where, table.num_rows))

    def write_rejects(table: pa.Table) -> None:
        where = scratch / f"rejects-{len(rejects):05d}.parquet"
        write_parquet_atomic(table.cast(REJECT_SCHEMA), where)
        rejects.append(where)

    outcome = read_source_file(
        config,
        path,
        display,
        strict=strict,
        batch_size=batch_size,
        with_ids=with_ids,
        on_records=write_records,
        on_rejects=write_rejects,
    )
    return outcome, parts, rejects


def _move_part(part: Path, target: RunPath) -> None:
    """A shard written in the scratch folder to its place in the run directory (on local disk a
    rename, on object storage an upload)."""
    if isinstance(target, ObjectPath):
        target.write_bytes(part.read_bytes())
        part.unlink()
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
    except OSError as exc:
        raise io_error(target, exc) from None


@dataclass
class RunResult:
    out_dir: RunPath
    manifest: dict[str, Any]
    up_to_date: bool = False


class Executor:
    """The run loop every engine shares: run directory, ingest, stages in order, manifest,
    report, publish. Engines implement how a stage's shards run (``_run_per_batch``,
    ``_run_global``)."""

    engine_name = ""

    def __init__(self, workers: int | None = None, reporter: Reporter | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.reporter = reporter or Reporter(quiet=True)

    # ------------------------------------------------------------------ public
    def run(
        self,
        recipe: Recipe,
        *,
        out: str | Path | ObjectPath | None = None,
        force: bool = False,
        strict: bool | None = None,
        recipe_path: Path | None = None,
    ) -> RunResult:
        started_at = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        stages = recipe.build_stages()  # a bad stage config fails before any work
        for stage in stages:
            stage.prepare()  # and so does a bad stage input (e.g. a benchmark file)
        strict = recipe.strict if strict is None else strict
        final = as_run_path(out) if out is not None else recipe.output_dir()
        base_dir = recipe_path.parent if recipe_path is not None else None
        inputs = input_fingerprints(recipe, base_dir)
        key = run_key(recipe, strict, inputs)
        run_dir = RunDir(final)
        partial = run_dir.partial

        # The output never holds (or lies inside) an input, and is never a folder curate did not
        # write (checked again under the lock: one writer per run directory).
        run_dir.check_not_over_inputs(
            [Path(entry[1]) for entry in inputs],
            source_directories(recipe, base_dir),
        )
        run_dir.check_replaceable()
        with run_dir.lock():
            if final.exists() and not force and run_dir.is_curate_run():
                manifest = run_dir.load_manifest()
                if manifest.get("run_key") == key:
                    self.reporter.info(
                        f"{final} is up to date (same recipe and inputs); nothing to do"
                    )
                    return RunResult(final, manifest, up_to_date=True)
                raise RunDirError(
                    f"{final} already exists from a different recipe or inputs; pass --force to replace it (or --out to write elsewhere)"
                )
            # Only what curate wrote is ever deleted: a previous run, or its own unfinished twin.
            run_dir.check_replaceable()
            refuse_foreign_partial(
                partial,
                RunDir(partial).is_curate_partial(),
                "an unfinished curate run; remove it yourself or choose another --out",
            )
            if force and partial.exists():
                remove_tree(partial)
            state = partial / "run.json"
            if partial.exists():
                previous = read_json(state) if state.is_file() else {}
                if previous.get("run_key") != key:
                    self.reporter.info(
                        f"discarding an unfinished run in {partial}: its recipe or inputs differ"
                    )
                    remove_tree(partial)
                else:
                    self.reporter.info(f"resuming the unfinished run in {partial}")
            try:
                partial.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunDirError(f"cannot create {partial}: {exc.strerror or exc}") from None
            if not state.is_file():
                write_json_atomic({"run_key": key, "name": recipe.name}, state)
            work = local_work_dir(partial)
            for stage in stages:
                stage.use_cache_dir(work / "cache")

            try:
                ingest = self._ingest(recipe, partial, strict, base_dir, stages)
                batches = int(ingest["batches"])
                previous_dir = StageDir(partial / "stages" / "00-ingest")
                self._start_workers(stages, previous_dir, batches)
                stage_stats: list[dict[str, Any]] = []
                for index, stage in enumerate(stages, start=1):
                    target = StageDir(partial / "stages" / stage_label(index, stage))
                    stats = self._run_stage(index, stage, previous_dir, target, batches)
                    stage_stats.append(stats)
                    previous_dir = target

                # The outputs (data/, rejects/, manifest, report) are written on local disk: in the
                # partial folder itself, or for a run on object storage in a local work folder whose
                # files are then uploaded into the partial prefix.
                outputs = partial if isinstance(partial, Path) else work / "outputs"
                manifest = self._finish(
                    recipe,
                    partial,
                    outputs,
                    previous_dir,
                    stages,
                    ingest,
                    stage_stats,
                    batches,
                    key,
                    started_at,
                    t0,
                    recipe_path,
                )
                self._write_report(outputs)
                if isinstance(partial, ObjectPath):
                    copy_tree(outputs, partial, last=MANIFEST)
                self._publish(partial, final)
                if isinstance(partial, ObjectPath):
                    shutil.rmtree(outputs, ignore_errors=True)
                if any(stage.scrubs_run() for stage in stages):
                    # The checkpoints hold the rows as they were before redaction: keep only their
                    # stats. After publishing, so that a run killed before it still resumes.
                    checkpoints: list[RunPath] = [*(final / "stages").rglob("*.parquet")]
                    for part in checkpoints:
                        part.unlink()
                    # Embeddings of the unredacted text go too (a vector can give words away).
                    cache = final / "cache" if isinstance(final, Path) else work / "cache"
                    for part in sorted(cache.rglob("*.parquet")):
                        part.unlink()
                return RunResult(final, manifest)
            finally:
                self._close_workers()

    # ------------------------------------------------------------------ ingest
    def _ingest(
        self,
        recipe: Recipe,
        partial: RunPath,
        strict: bool,
        base_dir: Path | None,
        stages: list[Stage],
    ) -> dict[str, Any]:
        target = StageDir(partial / "stages" / "00-ingest")
        if target.done:
            self.reporter.info("ingest: complete (checkpoint)")
            return target.success()
        if target.path.exists():
            remove_tree(target.path)
        started = time.perf_counter()
        with_ids = not (stages and stages[0].recomputes_ids)
        # Every source's files first (a source without any fails before anything is read), then
        # one task per file; each writes its shards into a local scratch folder and they are
        # numbered here, in recipe order, whoever read them.
        plans = [(config, *source_plan(config, base_dir)) for config in recipe.sources]
        scratch = local_work_dir(partial) / ".ingest"
        shutil.rmtree(scratch, ignore_errors=True)
        inputs = [(config, path, display) for config, found, _ in plans for path, display in found]
        tasks = [
            (config, path, display, strict, recipe.batch_size, with_ids, scratch / f"{n:05d}")
            for n, (config, path, display) in enumerate(inputs)
        ]
        results = self._read_files(tasks)
        batch = reject_part = 0
        sources: list[dict[str, Any]] = []
        self.reporter.start("ingest", total=len(recipe.sources))
        try:
            for done, (config, files, skipped) in enumerate(plans, start=1):
                data = SourceData(config, skipped=skipped)
                source_rows = 0
                for _ in files:
                    outcome, parts, rejects = next(results)
                    for part, rows in parts:
                        _move_part(part, target.part(batch))
                        batch += 1
                        source_rows += rows
                    for part in rejects:
                        _move_part(part, target.rejects(reject_part))
                        reject_part += 1
                    data.add(outcome)
                    self.reporter.info(outcome.message)
                sources.append(
                    {
                        "name": config.name,
                        "path": config.path,
                        "format": config.format,
                        "license": config.license,
                        "files": data.files,
                        "skipped_files": data.skipped,
                        "warnings": data.warnings,
                        "rows_read": data.rows_read,
                    }
                )
                for warning in data.warnings:
                    self.reporter.warn(warning)
                self.reporter.advance(source_rows, done, len(recipe.sources))
        finally:
            results.close()
            shutil.rmtree(scratch, ignore_errors=True)
        summary = {
            "batches": batch,
            "sources": sources,
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_json_atomic(summary, target.path / SUCCESS)
        return summary

    def _read_files(
        self, tasks: list[tuple[Any, ...]]
    ) -> Generator[tuple[FileOutcome, list[tuple[Path, int]], list[Path]], None, None]:
        """:func:`read_input_file` of each task, in order. Default: one after the other, here."""
        for task in tasks:
            yield read_input_file(*task)

    # ------------------------------------------------------------------ stages
    def _run_stage(
        self, index: int, stage: Stage, source: StageDir, target: StageDir, batches: int
    ) -> dict[str, Any]:
        label = stage_label(index, stage)
        if target.done:
            saved = target.success()
            saved["resumed"] = True
            self.reporter.info(f"{label}: complete (checkpoint)")
            return saved
        started = time.perf_counter()
        if isinstance(stage, GlobalStage):
            shard_stats = self._run_global(stage, source, target, batches, label)
        else:
            shard_stats = self._run_per_batch(stage, source, target, batches, label)
        dropped: dict[str, int] = {}
        for shard in shard_stats:
            add_counts(dropped, shard["dropped"])
        info: Any = None
        if isinstance(stage, GlobalStage):
            # A stage that ran elsewhere (a Ray task) sent its info back with the shards.
            remote = [s.pop("global_info") for s in shard_stats if "global_info" in s]
            info = remote[0] if remote else stage.manifest_info()
        else:
            shard_infos = [s["info"] for s in shard_stats if "info" in s]
            if shard_infos:
                info = stage.merge_manifest_info(shard_infos)
        stats = stage_entry(
            index - 1,
            stage,
            sum(s["rows_in"] for s in shard_stats),
            sum(s["rows_out"] for s in shard_stats),
            dropped,
            time.perf_counter() - started,
            info,
        )
        write_json_atomic(stats, target.path / SUCCESS)
        if isinstance(stage, GlobalStage):
            # Its checkpoint is written: what the fit learned is not needed for the later stages.
            stage.release()
        self.reporter.info(
            f"{label}: {stats['rows_in']} -> {stats['rows_out']} rows {stats['dropped'] or ''}".rstrip()
        )
        return stats

    def _start_workers(self, stages: list[Stage], shards: StageDir, batches: int) -> None:
        """Called once the input is sharded (``shards``), before the first stage: an engine may
        start its workers here so that they are ready when the stages need them. Default:
        nothing."""

    def _close_workers(self) -> None:
        """Called when the run ends, finished or failed: stop what ``_start_workers`` started."""

    def _run_per_batch(
        self, stage: Stage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        """Run a map/filter stage over every shard not yet checkpointed; stats of all shards."""
        raise NotImplementedError(f"{type(self).__name__} does not run per-batch stages")

    def _run_global(
        self, stage: GlobalStage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        """Fit a global stage over every shard, then apply it shard by shard; per-shard stats."""
        raise NotImplementedError(f"{type(self).__name__} does not run global stages")

    # ------------------------------------------------------------------ outputs
    def _finish(
        self,
        recipe: Recipe,
        partial: RunPath,
        outputs: Path,
        last: StageDir,
        stages: list[Stage],
        ingest: dict[str, Any],
        stage_stats: list[dict[str, Any]],
        batches: int,
        key: str,
        started_at: datetime,
        t0: float,
        recipe_path: Path | None,
    ) -> dict[str, Any]:
        for name in ("data", "rejects"):
            if (outputs / name).exists():
                shutil.rmtree(outputs / name)
        data_files, records = write_dataset(
            [last.part(b) for b in range(batches)], outputs / "data", schema=None
        )
        reject_parts = [*StageDir(partial / "stages" / "00-ingest").reject_parts()]
        for index, stage in enumerate(stages, start=1):
            reject_parts.extend(
                StageDir(partial / "stages" / stage_label(index, stage)).reject_parts()
            )
        scrubbers = [stage for stage in stages if stage.scrubs_run()]
        for path in reject_parts if scrubbers else []:
            table = pq.read_table(path)
            for stage in scrubbers:
                table = stage.scrub(table)
            write_parquet_atomic(table, path)
        reject_files, rejected = write_dataset(
            reject_parts, outputs / "rejects", schema=REJECT_SCHEMA
        )
        kept_by_source, rejected_by_source = source_accounting(outputs)
        sources = []
        for entry in ingest["sources"]:
            sources.append(
                {
                    **entry,
                    "rows_kept": kept_by_source.get(entry["name"], 0),
                    "rows_rejected": rejected_by_source.get(entry["name"], 0),
                }
            )
        resolved = recipe.to_dict()
        columns = pq.read_schema(outputs / data_files[0]).names if data_files else []
        manifest = {
            "curate_version": package_versions()["curate"],
            "name": recipe.name,
            "seed": recipe.seed,
            "run_key": key,
            "recipe": resolved,
            "recipe_sha256": hashlib.sha256(
                json.dumps(resolved, sort_keys=True).encode()
            ).hexdigest(),
            "recipe_path": str(recipe_path) if recipe_path else None,
            "engine": {
                "name": self.engine_name,
                "workers": self.workers,
                "batch_size": recipe.batch_size,
                "batches": batches,
            },
            "environment": {"python": python_version(), "packages": package_versions()},
            "sources": sources,
            "ingest": {"seconds": ingest["seconds"], "batches": batches},
            "stages": stage_stats,
            "outputs": {
                "records": records,
                "rejects": rejected,
                "data_files": data_files,
                "reject_files": reject_files,
                "columns": columns,
            },
            "rows": {
                "read": sum(int(s["rows_read"]) for s in sources),
                "kept": sum(kept_by_source.values()),
                "rejected": sum(rejected_by_source.values()),
                "output_records": records,
                "reject_rows": rejected,
            },
            "timings": {
                "ingest_seconds": ingest["seconds"],
                "total_seconds": round(time.perf_counter() - t0, 3),
            },
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        # Validated against the typed model before it is written: what readers get is a promise.
        typed = Manifest.model_validate(manifest)
        written = typed.to_json_dict()
        write_bytes_atomic(run_card(typed).encode("utf-8"), outputs / RUN_CARD)
        write_json_atomic(written, outputs / MANIFEST)
        return written

    def _write_report(self, outputs: Path) -> None:
        # The data is complete and valid without the report: a report that cannot be built is a
        # warning (``curate report RUN_DIR`` rebuilds it), not a failed run.
        from curate.run.report import write_report

        try:
            write_report(outputs)
        except CurateError as exc:
            self.reporter.warn(f"report.html not written: {exc}")

    def _publish(self, partial: RunPath, final: RunPath) -> None:
        publish(partial, final)
        self.reporter.info(f"wrote {final}")
