"""The Ray engine: the same stage objects, checkpoints and run directory as the local engine.

Per-batch stages run through Ray Data ``map_batches``: the dataset holds one row per shard, and
the mapped function reads that shard's Arrow table, runs the stage and writes the shard checkpoint
(so resume works exactly as on the local engine). Global stages (dedup, mix) run as one Ray task
each: ``fit`` over every shard, then ``apply`` shard by shard. The output is byte-identical to the
local engine's. Ray is imported only here, only when ``engine: ray`` is chosen; no stage imports it.

Connects to ``RAY_ADDRESS`` (or ``ray_address`` in the recipe) when set, otherwise starts a local
Ray instance with ``workers`` CPUs. On a multi-node cluster the run directory must be on a
filesystem every node sees (shards are exchanged through it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.executor.local import LocalExecutor, StageDir, _Parts, _process_shard, apply_shards
from curate.progress import Reporter
from curate.stages.base import GlobalStage, Stage


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CurateError(
            "engine 'ray' needs Ray: pip install -e '.[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


class _ShardMapper:
    """The function Ray Data maps over shard descriptors (a pyarrow batch with a 'batch' column)."""

    def __init__(self, stage: Stage, source: str, target: str) -> None:
        self.stage = stage
        self.source = StageDir(Path(source))
        self.target = StageDir(Path(target))

    def __call__(self, shards: Any) -> Any:
        import pyarrow as pa

        rows = []
        for batch in shards.column("batch").to_pylist():
            stats = _process_shard(self.stage, self.source.part(batch), self.target, batch)
            rows.append(
                {
                    "batch": batch,
                    "rows_in": stats["rows_in"],
                    "rows_out": stats["rows_out"],
                    "seconds": stats["seconds"],
                }
            )
        return pa.Table.from_pylist(rows)


def _fit_apply(stage: GlobalStage, source: str, target: str, batches: int) -> list[dict[str, Any]]:
    """A global stage as one task: fit over every shard, then apply shard by shard."""
    source_dir, target_dir = StageDir(Path(source)), StageDir(Path(target))
    stage.fit(_Parts(source_dir, batches))
    shard_stats = apply_shards(stage, source_dir, target_dir, batches)
    info = getattr(stage, "manifest_info", None)
    if callable(info) and shard_stats:
        shard_stats[0]["global_info"] = info()
    return shard_stats


class RayExecutor(LocalExecutor):
    """Runs a recipe on Ray (a cluster at ``address`` / ``RAY_ADDRESS``, or a local instance)."""

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        super().__init__(workers=workers, reporter=reporter)
        self.ray = _require_ray()
        address = address or os.environ.get("RAY_ADDRESS")
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {
                "ignore_reinit_error": True,
                "include_dashboard": False,
                "log_to_driver": False,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = self.workers
            try:
                self.ray.init(**kwargs)
            except Exception as exc:  # connection errors come in many types
                raise CurateError(
                    f"cannot start or reach Ray ({address or 'local'}): {exc}"
                ) from None
        self.ray.data.DataContext.get_current().execution_options.preserve_order = True
        self.engine_name = "ray"

    def _run_per_batch(
        self, stage: Stage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        from curate.executor.checkpoint import read_json

        pending = [b for b in range(batches) if not target.stats(b).is_file()]
        self.reporter.start(label, total=batches)
        if pending:
            dataset = self.ray.data.from_items(
                [{"batch": b} for b in pending], override_num_blocks=len(pending)
            )
            mapped = dataset.map_batches(
                _ShardMapper,
                fn_constructor_args=(stage, str(source.path), str(target.path)),
                batch_size=1,
                batch_format="pyarrow",
                concurrency=min(self.workers, len(pending)),
            )
            for done, _row in enumerate(mapped.iter_rows(), start=1):
                self.reporter.advance(0, batches - len(pending) + done, batches)
        return [read_json(target.stats(b)) for b in range(batches)]

    def _run_global(
        self, stage: GlobalStage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        import shutil

        if target.path.exists():
            shutil.rmtree(target.path)
        self.reporter.start(f"{label} (ray task)", total=batches)
        task = self.ray.remote(_fit_apply)
        stats: list[dict[str, Any]] = self.ray.get(
            task.remote(stage, str(source.path), str(target.path), batches)
        )
        self.reporter.advance(sum(s["rows_in"] for s in stats), batches, batches)
        return stats
