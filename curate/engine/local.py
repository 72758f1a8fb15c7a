"""The local engine: streams Arrow batches through the stages with checkpoints and resume.

Layout of a run in progress (``runs/.<name>.partial``), renamed to ``runs/<name>`` when complete::

    run.json                         the run key (recipe + inputs): a resume must match it
    stages/00-ingest/part-NNNNN.parquet   one part per batch (sharding fixed at ingest)
    stages/00-ingest/rejects/...          rows that could not be parsed
    stages/01-normalize_v1/part-NNNNN.parquet + part-NNNNN.json (the shard's stats, written last)
    stages/<nn>-<stage>/_SUCCESS          the stage is complete (its stats)
    data/, rejects/, manifest.json        written last, then report.html

Per-batch stages run shard by shard over a process pool; a shard whose stats file exists is done
and is skipped on resume. Global stages (dedup, mix) ``fit`` over every shard read back from disk
(memory is bounded by the batch size plus the stage's own state) and are redone as a whole if a run
stopped inside them. Every write is atomic, so a SIGKILL at any point leaves a state resume can use.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from curate.engine.checkpoint import (
    read_json,
    read_table,
    write_bytes_atomic,
    write_json_atomic,
    write_parquet_atomic,
)
from curate.engine.manifest import package_versions
from curate.engine.progress import Reporter
from curate.errors import CurateError, RunDirError
from curate.ingest.sources import read_source, source_files
from curate.recipe import Recipe
from curate.records import RECORD_SCHEMA, REJECT_SCHEMA
from curate.run.layout import (
    MANIFEST,
    ROW_GROUP_ROWS,
    ROWS_PER_FILE,
    RUN_CARD,
    dataset_writer,
    is_complete_run,
    run_card,
)
from curate.stages.base import GlobalStage, Stage, StageResult, reason_counts

SUCCESS = "_SUCCESS"


@dataclass
class LocalRun:
    out_dir: Path
    manifest: dict[str, Any]
    up_to_date: bool = False


class StageDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def part(self, batch: int) -> Path:
        return self.path / f"part-{batch:05d}.parquet"

    def rejects(self, batch: int) -> Path:
        return self.path / "rejects" / f"part-{batch:05d}.parquet"

    def stats(self, batch: int) -> Path:
        return self.path / f"part-{batch:05d}.json"

    @property
    def done(self) -> bool:
        return (self.path / SUCCESS).is_file()

    def success(self) -> dict[str, Any]:
        result: dict[str, Any] = read_json(self.path / SUCCESS)
        return result

    def reject_parts(self) -> list[Path]:
        directory = self.path / "rejects"
        return sorted(directory.glob("part-*.parquet")) if directory.is_dir() else []


class _Parts:
    """Re-iterable view of a stage's shards, read one at a time."""

    def __init__(self, stage_dir: StageDir, count: int) -> None:
        self.stage_dir = stage_dir
        self.count = count

    def __iter__(self) -> Iterator[pa.Table]:
        for batch in range(self.count):
            yield read_table(self.stage_dir.part(batch))

    def __len__(self) -> int:
        return self.count


def _input_fingerprints(recipe: Recipe, base_dir: Path | None) -> list[list[Any]]:
    """(path, size, mtime) of every input: a resume must see the same inputs."""
    entries: list[list[Any]] = []
    for source in recipe.sources:
        for path in source_files(source, base_dir)[0]:
            stat = path.stat()
            entries.append([source.name, str(path), stat.st_size, stat.st_mtime_ns])
    return entries


def run_key(recipe: Recipe, strict: bool, base_dir: Path | None) -> str:
    payload = {
        "recipe": recipe.to_dict(),
        "strict": strict,
        "inputs": _input_fingerprints(recipe, base_dir),
        "curate": package_versions()["curate"],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _stage_label(index: int, stage: Stage) -> str:
    return f"{index:02d}-{stage.name}"


def _checkpoint_shard(
    result: StageResult, rows_in: int, target: StageDir, batch: int, seconds: float
) -> dict[str, Any]:
    """Write one shard's kept rows and rejects; return its stats."""
    write_parquet_atomic(result.kept, target.part(batch))
    if result.rejected.num_rows:
        write_parquet_atomic(result.rejected, target.rejects(batch))
    return {
        "batch": batch,
        "rows_in": rows_in,
        "rows_out": result.kept.num_rows,
        "dropped": reason_counts(result.rejected),
        "seconds": seconds,
    }


def _process_shard(stage: Stage, source: Path, target: StageDir, batch: int) -> dict[str, Any]:
    """Run a per-batch stage on one shard and checkpoint it (stats last = shard complete)."""
    table = read_table(source)
    started = time.perf_counter()
    result = stage.run(table)
    stats = _checkpoint_shard(result, table.num_rows, target, batch, time.perf_counter() - started)
    # ``stage`` is a fresh copy per shard (see _run_per_batch): this is this shard's info.
    info = stage.manifest_info()
    if info is not None:
        stats["info"] = info
    write_json_atomic(stats, target.stats(batch))
    return stats


def apply_shards(
    stage: GlobalStage,
    source: StageDir,
    target: StageDir,
    batches: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """A fitted global stage's ``apply`` over every shard in order, each shard checkpointed."""
    shard_stats = []
    for batch in range(batches):
        table = read_table(source.part(batch))
        started = time.perf_counter()
        result = stage.apply(table)
        shard_stats.append(
            _checkpoint_shard(result, table.num_rows, target, batch, time.perf_counter() - started)
        )
        if progress is not None:
            progress(table.num_rows, batch + 1)
    return shard_stats


class LocalExecutor:
    """Runs a recipe on this machine with ``workers`` processes for per-batch stages."""

    def __init__(self, workers: int | None = None, reporter: Reporter | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.reporter = reporter or Reporter(quiet=True)
        self.engine_name = "local"

    # ------------------------------------------------------------------ public
    def run(
        self,
        recipe: Recipe,
        *,
        out: Path | None = None,
        force: bool = False,
        strict: bool | None = None,
        recipe_path: Path | None = None,
    ) -> LocalRun:
        started_at = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        stages = recipe.build_stages()  # a bad stage config fails before any work
        for stage in stages:
            stage.prepare()  # and so does a bad stage input (e.g. a benchmark file)
        strict = recipe.strict if strict is None else strict
        final = Path(out) if out is not None else recipe.output_dir()
        base_dir = recipe_path.parent if recipe_path is not None else None
        key = run_key(recipe, strict, base_dir)
        partial = final.parent / f".{final.name}.partial"

        if final.exists() and not force:
            if is_complete_run(final):
                manifest = json.loads((final / MANIFEST).read_text())
                if manifest.get("run_key") == key:
                    self.reporter.info(
                        f"{final} is up to date (same recipe and inputs); nothing to do"
                    )
                    return LocalRun(final, manifest, up_to_date=True)
            raise RunDirError(
                f"{final} already exists from a different recipe or inputs; pass --force to replace it (or --out to write elsewhere)"
            )
        if force and partial.exists():
            shutil.rmtree(partial)
        state = partial / "run.json"
        if partial.exists():
            previous = read_json(state) if state.is_file() else {}
            if previous.get("run_key") != key:
                self.reporter.info(
                    f"discarding an unfinished run in {partial}: its recipe or inputs differ"
                )
                shutil.rmtree(partial)
            else:
                self.reporter.info(f"resuming the unfinished run in {partial}")
        try:
            partial.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create {partial}: {exc.strerror or exc}") from None
        if not state.is_file():
            write_json_atomic({"run_key": key, "name": recipe.name}, state)

        ingest = self._ingest(recipe, partial, strict, base_dir, stages)
        batches = int(ingest["batches"])
        previous_dir = StageDir(partial / "stages" / "00-ingest")
        stage_stats: list[dict[str, Any]] = []
        for index, stage in enumerate(stages, start=1):
            target = StageDir(partial / "stages" / _stage_label(index, stage))
            stats = self._run_stage(index, stage, previous_dir, target, batches)
            stage_stats.append(stats)
            previous_dir = target

        manifest = self._finish(
            recipe,
            partial,
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
        self._write_report(partial)
        self._publish(partial, final)
        return LocalRun(final, manifest)

    # ------------------------------------------------------------------ ingest
    def _ingest(
        self,
        recipe: Recipe,
        partial: Path,
        strict: bool,
        base_dir: Path | None,
        stages: list[Stage],
    ) -> dict[str, Any]:
        target = StageDir(partial / "stages" / "00-ingest")
        if target.done:
            self.reporter.info("ingest: complete (checkpoint)")
            return target.success()
        if target.path.exists():
            shutil.rmtree(target.path)
        started = time.perf_counter()
        with_ids = not (stages and stages[0].recomputes_ids)
        batch = 0
        reject_part = 0
        sources: list[dict[str, Any]] = []
        self.reporter.start("ingest", total=len(recipe.sources))
        for done, config in enumerate(recipe.sources, start=1):
            data = read_source(
                config,
                base_dir=base_dir,
                strict=strict,
                batch_size=recipe.batch_size,
                with_ids=with_ids,
                log=self.reporter.info,
            )
            for table in data.batches:
                write_parquet_atomic(table, target.part(batch))
                batch += 1
            for rejects in data.rejects:
                write_parquet_atomic(rejects.cast(REJECT_SCHEMA), target.rejects(reject_part))
                reject_part += 1
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
            self.reporter.advance(sum(t.num_rows for t in data.batches), done, len(recipe.sources))
        summary = {
            "batches": batch,
            "sources": sources,
            "seconds": round(time.perf_counter() - started, 3),
        }
        write_json_atomic(summary, target.path / SUCCESS)
        return summary

    # ------------------------------------------------------------------ stages
    def _run_stage(
        self, index: int, stage: Stage, source: StageDir, target: StageDir, batches: int
    ) -> dict[str, Any]:
        label = _stage_label(index, stage)
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
            for reason, count in shard["dropped"].items():
                dropped[reason] = dropped.get(reason, 0) + count
        stats: dict[str, Any] = {
            "index": index - 1,
            "name": stage.name,
            "key": stage.key(),
            "kind": stage.kind,
            "params": stage.params.model_dump(mode="json"),
            "rows_in": sum(s["rows_in"] for s in shard_stats),
            "rows_out": sum(s["rows_out"] for s in shard_stats),
            "dropped": dict(sorted(dropped.items())),
            "seconds": round(time.perf_counter() - started, 3),
        }
        if isinstance(stage, GlobalStage):
            remote = [s.pop("global_info") for s in shard_stats if "global_info" in s]
            info = remote[0] if remote else stage.manifest_info()
            # (remote: the stage ran elsewhere, a Ray task; its info came back with the shards)
            if info is not None:
                stats["info"] = info
        else:
            shard_infos = [s["info"] for s in shard_stats if "info" in s]
            if shard_infos:
                stats["info"] = stage.merge_manifest_info(shard_infos)
        write_json_atomic(stats, target.path / SUCCESS)
        self.reporter.info(
            f"{label}: {stats['rows_in']} -> {stats['rows_out']} rows {stats['dropped'] or ''}".rstrip()
        )
        return stats

    def _run_per_batch(
        self, stage: Stage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        done_stats: dict[int, dict[str, Any]] = {}
        for batch in range(batches):
            if target.stats(batch).is_file():
                done_stats[batch] = read_json(target.stats(batch))
        pending = [b for b in range(batches) if b not in done_stats]
        self.reporter.start(label, total=batches)
        finished = len(done_stats)
        if len(pending) > 1 and self.workers > 1:
            # spawn: forking a process that already runs Arrow's thread pools is not safe.
            try:
                with ProcessPoolExecutor(
                    max_workers=min(self.workers, len(pending)), mp_context=get_context("spawn")
                ) as pool:
                    futures = {
                        pool.submit(_process_shard, stage, source.part(b), target, b): b
                        for b in pending
                    }
                    for future in futures:
                        stats = future.result()
                        done_stats[futures[future]] = stats
                        finished += 1
                        self.reporter.advance(stats["rows_in"], finished, batches)
            except BrokenProcessPool:
                raise RunDirError(
                    f"{label}: a worker process died (killed or out of memory); finished shards are "
                    "checkpointed: run the same command again to resume"
                ) from None
        else:
            # A fresh copy per shard, as a pool worker would get: per-shard info, same results.
            pristine = pickle.dumps(stage)
            for batch in pending:
                stats = _process_shard(pickle.loads(pristine), source.part(batch), target, batch)
                done_stats[batch] = stats
                finished += 1
                self.reporter.advance(stats["rows_in"], finished, batches)
        return [done_stats[b] for b in range(batches)]

    def _run_global(
        self, stage: GlobalStage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        # A global stage's state is not checkpointed: an interrupted one is redone from its fit.
        if target.path.exists():
            shutil.rmtree(target.path)
        self.reporter.start(f"{label} (fit)", total=batches)
        stage.fit(_Parts(source, batches))
        self.reporter.start(label, total=batches)
        return apply_shards(
            stage,
            source,
            target,
            batches,
            lambda rows, done: self.reporter.advance(rows, done, batches),
        )

    # ------------------------------------------------------------------ outputs
    def _finish(
        self,
        recipe: Recipe,
        partial: Path,
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
            if (partial / name).exists():
                shutil.rmtree(partial / name)
        data_files, records = _write_dataset(
            [last.part(b) for b in range(batches)], partial / "data", schema=None
        )
        reject_parts = [*StageDir(partial / "stages" / "00-ingest").reject_parts()]
        for index, stage in enumerate(stages, start=1):
            reject_parts.extend(
                StageDir(partial / "stages" / _stage_label(index, stage)).reject_parts()
            )
        reject_files, rejected = _write_dataset(
            reject_parts, partial / "rejects", schema=REJECT_SCHEMA
        )
        kept_by_source, rejected_by_source = _accounting(partial)
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
        columns = pq.read_schema(partial / data_files[0]).names if data_files else []
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
            "environment": {"python": _python(), "packages": package_versions()},
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
        write_json_atomic(manifest, partial / MANIFEST)
        write_bytes_atomic(run_card(manifest).encode("utf-8"), partial / RUN_CARD)
        return manifest

    def _write_report(self, partial: Path) -> None:
        # The data is complete and valid without the report: a report that cannot be built is a
        # warning (``curate report RUN_DIR`` rebuilds it), not a failed run.
        from curate.run.report import write_report

        try:
            write_report(partial)
        except CurateError as exc:
            self.reporter.warn(f"report.html not written: {exc}")

    def _publish(self, partial: Path, final: Path) -> None:
        trash = None
        try:
            if final.exists():
                trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(final, trash)
            os.rename(partial, final)
        except OSError as exc:
            raise RunDirError(f"cannot publish {final}: {exc.strerror or exc}") from None
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        self.reporter.info(f"wrote {final}")


def _python() -> str:
    import platform

    return platform.python_version()


def _write_dataset(
    parts: list[Path], directory: Path, schema: pa.Schema | None
) -> tuple[list[str], int]:
    """Concatenate shards into ``part-NNNNN.parquet`` files of <= 1M rows, ~100k-row groups."""
    directory.mkdir(parents=True, exist_ok=True)
    if schema is None:
        schemas = [pq.read_schema(p) for p in parts]
        non_empty = [
            s for s, p in zip(schemas, parts, strict=True) if pq.ParquetFile(p).metadata.num_rows
        ]
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
            table = read_table(part)
            if table.num_rows == 0:
                continue
            table = _align(table, schema)
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


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _accounting(run_dir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Per source, ingested rows that reached the output, and rows that only reached the rejects.

    Expanded rows share ``parent_id``: an ingested row counts once however many rows it became.
    Computed in DuckDB over the written files, so memory stays bounded.
    """
    data = (run_dir / "data" / "*.parquet").as_posix()
    rejects = (run_dir / "rejects" / "*.parquet").as_posix()
    con = duckdb.connect()
    try:

        def lineage(glob: str) -> str:
            return (
                f"SELECT DISTINCT source, source_file, source_row, coalesce(parent_id, id) AS lineage "
                f"FROM read_parquet('{glob}', union_by_name = true)"
            )

        kept = dict(
            con.execute(f"SELECT source, count(*) FROM ({lineage(data)}) GROUP BY 1").fetchall()
        )
        dropped = dict(
            con.execute(
                f"SELECT source, count(*) FROM ({lineage(rejects)} EXCEPT {lineage(data)}) GROUP BY 1"
            ).fetchall()
        )
    finally:
        con.close()
    return {str(k): int(v) for k, v in kept.items()}, {str(k): int(v) for k, v in dropped.items()}
