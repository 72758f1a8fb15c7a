"""The local engine: a recipe's stages over a process pool on this machine."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from curate.engine.checkpoint import ShardParts, StageDir, read_json
from curate.engine.executor import Executor, RunResult
from curate.engine.shards import apply_shards, process_shard, warm_shard
from curate.errors import RunDirError
from curate.stages.base import GlobalStage, Stage
from curate.util.storage import remove_tree


class LocalExecutor(Executor):
    """Runs a recipe on this machine with ``workers`` processes for per-batch stages."""

    engine_name = "local"

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
                        pool.submit(process_shard, stage, source.part(b), target, b): b
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
                stats = process_shard(pickle.loads(pristine), source.part(batch), target, batch)
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
            try:
                with ProcessPoolExecutor(
                    max_workers=min(self.workers, batches), mp_context=get_context("spawn")
                ) as pool:
                    futures = [
                        pool.submit(warm_shard, stage, source.part(b)) for b in range(batches)
                    ]
                    for done, future in enumerate(futures, start=1):
                        self.reporter.advance(future.result(), done, batches)
            except BrokenProcessPool:
                raise RunDirError(
                    f"{label}: a worker process died (killed or out of memory); what it embedded "
                    "is kept: run the same command again to resume"
                ) from None
        self.reporter.start(f"{label} (fit)", total=batches)
        stage.fit(ShardParts(source, batches))
        self.reporter.start(label, total=batches)
        return apply_shards(
            stage,
            source,
            target,
            batches,
            lambda rows, done: self.reporter.advance(rows, done, batches),
        )


__all__ = ["LocalExecutor", "RunResult"]
