"""The local engine: a recipe's stages over a process pool on this machine."""

from __future__ import annotations

import hashlib
import importlib
import pickle
import shutil
from collections.abc import Generator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from curate.engine.checkpoint import ShardParts, StageDir, read_json
from curate.engine.executor import Executor, RunResult, read_input_file
from curate.engine.progress import Reporter
from curate.engine.shards import (
    apply_shard_copy,
    apply_shards,
    fit_shard_part,
    group_pairs,
    process_shard_copy,
    shard_copies,
    shard_offsets,
    spill_band_rows,
    warm_shard,
)
from curate.errors import RunDirError
from curate.stages.base import GlobalStage, SplitFitStage, Stage
from curate.util.storage import remove_tree, work_root


class LocalExecutor(Executor):
    """Runs a recipe on this machine with ``workers`` processes for per-batch stages."""

    engine_name = "local"
    # From this many input rows on, a stage that fits in steps (minhash_dedup) groups its bands
    # through files instead of holding every signature in memory. Same output either way.
    split_fit_min_rows = 250_000
    # With several workers, from this many rows on too: the signatures are most of the fit, and
    # the steps hash them on every worker (a shard cut in row ranges when there are fewer shards
    # than workers) and hash the rest of the verification's text for candidates only. Below it,
    # handing the work to the pool costs more than it saves.
    parallel_fit_min_rows = 20_000
    # Input files are read on the worker pool from this many bytes on (on disk, compressed or
    # not): below it, reading them here is quicker than starting the pool first.
    parallel_ingest_min_bytes = 16 << 20

    def __init__(self, workers: int | None = None, reporter: Reporter | None = None) -> None:
        super().__init__(workers, reporter)
        # One pool for the whole run: a spawned worker takes ~0.5 s to start and import the
        # stages, once instead of once per stage.
        self._pool: ProcessPoolExecutor | None = None

    def _start_workers(self, stages: list[Stage], shards: StageDir, batches: int) -> None:
        """Start the pool now when a stage will use it, so that the workers start and import
        the stages' modules while the first stage runs (in this process, for a single shard)."""
        if self.workers < 2:
            return
        if batches < 2:
            rows = shard_offsets(shards, batches)[-1]
            if not any(self._fits_in_parallel(stage, rows) for stage in stages):
                return
        pool = self._worker_pool()
        modules = sorted({type(stage).__module__ for stage in stages})
        for _ in range(self.workers):
            pool.submit(import_modules, modules)

    def _read_files(self, tasks: list[tuple[Any, ...]]) -> Generator[Any, None, None]:
        """The input files on the worker pool when there are several and enough bytes to read
        that starting the pool pays (it then stays for the stages)."""
        size = sum(_file_size(task[1]) for task in tasks)
        if self.workers < 2 or len(tasks) < 2 or size < self.parallel_ingest_min_bytes:
            return super()._read_files(tasks)
        return self._map(read_input_file, tasks, "ingest")

    def _close_workers(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)

    def _worker_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: forking a process that already runs Arrow's thread pools is not safe.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=get_context("spawn")
            )
        return self._pool

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
        # A fresh copy per shard, as a pool worker gets: per-shard info, same results.
        pristine = pickle.dumps(stage)
        arguments = [(pristine, source.part(b), target, b) for b in pending]
        for batch, stats in zip(
            pending, self._map(process_shard_copy, arguments, label), strict=True
        ):
            done_stats[batch] = stats
            finished += 1
            self.reporter.advance(stats["rows_in"], finished, batches)
        return [done_stats[b] for b in range(batches)]

    def _run_global(
        self, stage: GlobalStage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        # A global stage's state is not checkpointed: an interrupted one is redone from its fit.
        if target.path.exists():
            remove_tree(target.path)
        if stage.warms_cache() and batches > 1 and self.workers > 1:
            # The shards' share of the fit (embeddings) in parallel, into the run's cache; the
            # fit then reads it back.
            self.reporter.start(f"{label} (embed)", total=batches)
            for done, rows in enumerate(
                self._map(warm_shard, [(stage, source.part(b)) for b in range(batches)], label),
                start=1,
            ):
                self.reporter.advance(rows, done, batches)
        offsets = (
            shard_offsets(source, batches)
            if isinstance(stage, SplitFitStage) and stage.split_fallback() is None
            else None
        )
        if isinstance(stage, SplitFitStage) and offsets and self._fits_in_steps(offsets[-1]):
            self._fit_in_steps(stage, source, target, offsets, label)
        elif stage.fits_in_parts() and batches > 1 and self.workers > 1:
            # Each shard's share of the fit on the pool, taken in shard order as they come.
            self.reporter.start(f"{label} (fit)", total=batches)
            arguments = [(stage, source.part(b)) for b in range(batches)]
            stage.fit_parts(self._map(fit_shard_part, arguments, label))
        else:
            self.reporter.start(f"{label} (fit)", total=batches)
            stage.fit(ShardParts(source, batches))
        self.reporter.start(label, total=batches)
        if stage.applies_per_shard() and batches > 1 and self.workers > 1:
            return self._apply_in_parallel(stage, source, target, batches, label)
        return apply_shards(
            stage,
            source,
            target,
            batches,
            lambda rows, done: self.reporter.advance(rows, done, batches),
        )

    def _fits_in_steps(self, rows: int) -> bool:
        if rows >= self.split_fit_min_rows:
            return True
        return self.workers > 1 and rows >= self.parallel_fit_min_rows

    def _fits_in_parallel(self, stage: Stage, rows: int) -> bool:
        """Whether ``stage`` uses the worker pool on a single shard of ``rows`` rows."""
        return (
            isinstance(stage, SplitFitStage)
            and stage.split_fallback() is None
            and self._fits_in_steps(rows)
        )

    def _apply_in_parallel(
        self, stage: GlobalStage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        """The shards through copies of the fitted stage on the worker pool (``expand``: its
        rendering is most of its time; ``exact_dedup`` and ``mix``: a copy holds only its
        shard's part of the fit); the copies' counts come back into ``stage``."""
        copies = shard_copies(stage, shard_offsets(source, batches))
        arguments = [(copy, source.part(b), target, b) for b, copy in enumerate(copies)]
        shard_stats = []
        for done, stats in enumerate(self._map(apply_shard_copy, arguments, label), start=1):
            shard_stats.append(stats)
            self.reporter.advance(stats["rows_in"], done, batches)
        stage.absorb_applied([stats.pop("applied") for stats in shard_stats])
        return shard_stats

    def _fit_in_steps(
        self,
        stage: SplitFitStage,
        source: StageDir,
        target: StageDir,
        offsets: list[int],
        label: str,
    ) -> None:
        """``fit`` as its three steps, the band grouping through files on local disk (see
        :func:`curate.engine.shards.spill_band_rows`): memory stays at one shard's or one
        group's band rows instead of every signature, and the steps use the worker pool."""
        batches = len(offsets) - 1
        groups = spill_groups(int(offsets[-1]) * stage.band_rows_per_document())
        spill = _spill_dir(target)
        shutil.rmtree(spill, ignore_errors=True)
        tasks = band_row_tasks(offsets, self.workers)
        try:
            self.reporter.start(f"{label} (band rows)", total=len(tasks))
            counted = list(
                self._map(
                    spill_band_rows,
                    [
                        (stage, source.part(b), (first, count), offsets[b], spill, task, groups)
                        for task, (b, first, count) in enumerate(tasks)
                    ],
                    label,
                )
            )
            band_rows = sum(count for count, _ in counted)
            max_doc = max([doc for _, doc in counted], default=-1)
            self.reporter.start(f"{label} (candidate pairs)", total=groups)
            pairs = list(
                self._map(group_pairs, [(stage, spill, g, max_doc) for g in range(groups)], label)
            )
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        self.reporter.start(f"{label} (fit)", total=batches)
        stage.fit_pairs(
            ShardParts(source, batches),
            np.concatenate(pairs) if pairs else np.zeros(0, np.uint64),
            band_rows,
        )

    def _map(
        self, function: Any, arguments: list[tuple[Any, ...]], label: str
    ) -> Generator[Any, None, None]:
        """``function(*args)`` for each tuple, in order: on the worker pool when there are
        several workers and tasks, otherwise in this process."""
        if len(arguments) < 2 or self.workers < 2:
            for args in arguments:
                yield function(*args)
            return
        try:
            pool = self._worker_pool()
            futures = [pool.submit(run_in_worker, function, args) for args in arguments]
            try:
                for future in futures:
                    yield future.result()
            finally:
                for future in futures:  # the caller stopped early (an error): drop the rest
                    future.cancel()
        except BrokenProcessPool:
            self._close_workers()
            raise RunDirError(
                f"{label}: a worker process died (killed or out of memory); finished shards are "
                "checkpointed: run the same command again to resume"
            ) from None


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def import_modules(modules: list[str]) -> None:
    """A worker's first task: import the run's stage modules while the engine is still busy."""
    for module in modules:
        importlib.import_module(module)


def run_in_worker(function: Any, args: tuple[Any, ...]) -> Any:
    """One task in a pool worker; then Arrow's memory pool gives back what it holds unused, so
    that an idle worker between stages does not keep the last shard's peak."""
    try:
        return function(*args)
    finally:
        pa.default_memory_pool().release_unused()


def band_row_tasks(offsets: list[int], workers: int) -> list[tuple[int, int, int]]:
    """``(shard, first row, rows)`` per band-rows task: each shard whole, or cut in about equal
    row ranges when there are fewer shards than workers, so that every worker hashes a share."""
    batches = len(offsets) - 1
    pieces = max(1, -(-workers // batches)) if batches else 1
    tasks = []
    for batch in range(batches):
        size = offsets[batch + 1] - offsets[batch]
        step = max(1, -(-size // pieces))
        tasks += [(batch, first, min(step, size - first)) for first in range(0, size, step)]
        if size == 0:
            tasks.append((batch, 0, 0))
    return tasks


def spill_groups(band_rows: int) -> int:
    """Files per shard for the band grouping: a power of two giving ~2M band rows (~50 MB) per
    group, between 1 and 256."""
    wanted = max(1, -(-band_rows // (1 << 21)))
    return int(min(256, 1 << (wanted - 1).bit_length()))


def _spill_dir(target: StageDir) -> Path:
    """Beside the stage's checkpoints for a local run (the disk the user chose for it); in the
    local work folder for a run on object storage."""
    if isinstance(target.path, Path):
        return target.path.with_name(f".{target.path.name}.spill")
    return work_root() / "spill" / hashlib.sha256(str(target.path).encode()).hexdigest()[:16]


__all__ = ["LocalExecutor", "RunResult"]
