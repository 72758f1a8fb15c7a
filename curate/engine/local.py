"""The local engine: a recipe's stages over a process pool on this machine."""

from __future__ import annotations

import hashlib
import pickle
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from curate.engine.checkpoint import ShardParts, StageDir, read_json
from curate.engine.executor import Executor, RunResult
from curate.engine.shards import (
    apply_shard_copy,
    apply_shards,
    group_pairs,
    process_shard_copy,
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
    # through files on the worker pool instead of holding every signature in memory; below it,
    # starting the pool costs more than it saves. Same output either way.
    split_fit_min_rows = 250_000

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
        if isinstance(stage, SplitFitStage) and offsets and offsets[-1] >= self.split_fit_min_rows:
            self._fit_in_steps(stage, source, target, offsets, label)
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

    def _apply_in_parallel(
        self, stage: GlobalStage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        """The shards through copies of the fitted stage on the worker pool (``expand``: its
        rendering is most of its time); the copies' counts come back into ``stage``."""
        pristine = pickle.dumps(stage)
        arguments = [(pristine, source.part(b), target, b) for b in range(batches)]
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
        try:
            self.reporter.start(f"{label} (band rows)", total=batches)
            counted = list(
                self._map(
                    spill_band_rows,
                    [(stage, source.part(b), offsets[b], spill, b, groups) for b in range(batches)],
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

    def _map(self, function: Any, arguments: list[tuple[Any, ...]], label: str) -> Iterator[Any]:
        """``function(*args)`` for each tuple, in order: on the worker pool when there are
        several workers and tasks, otherwise in this process."""
        if len(arguments) < 2 or self.workers < 2:
            for args in arguments:
                yield function(*args)
            return
        try:
            # spawn: forking a process that already runs Arrow's thread pools is not safe.
            with ProcessPoolExecutor(
                max_workers=min(self.workers, len(arguments)), mp_context=get_context("spawn")
            ) as pool:
                futures = [pool.submit(function, *args) for args in arguments]
                for future in futures:
                    yield future.result()
        except BrokenProcessPool:
            raise RunDirError(
                f"{label}: a worker process died (killed or out of memory); finished shards are "
                "checkpointed: run the same command again to resume"
            ) from None


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
