"""The Ray engine: the same stage objects, checkpoints and run directory as the local engine.

Per-batch stages run through Ray Data ``map_batches``: the dataset holds one row per shard, and
the mapped function reads that shard's Arrow table, runs the stage and writes the shard checkpoint
(so resume works exactly as on the local engine). A global stage runs as one Ray task (``fit``
over every shard, then ``apply`` shard by shard: ``semantic_dedup``) unless it has shares that
run on their own, as on the local engine's pool (``ray_shard_tasks``):

- a fit with a part per shard (``exact_dedup``, ``mix``): one task per shard computes the part,
  and the fit takes the parts in shard order (``fit_parts``);
- fitted copies that apply any shard (``exact_dedup``, ``expand``, ``mix``): the stage is fitted
  in one task, then each shard is applied by a task of its own from the shard's copy of the
  fitted stage (``shard_copy``), and the copies' counts come back into the manifest
  (``absorb_applied``).

A global stage that can fit in steps (``minhash_dedup``: ``band_rows`` / ``band_pairs`` /
``fit_pairs``, see its module) has its band grouping spread over the cluster instead::

    shards --map_batches(band_rows)--> (band, key, doc, part) rows
           --repartition(keys=["part"])--> blocks holding every row of their parts
           --map_batches(band_pairs, whole blocks)--> candidate pairs per block
    one task: fit_pairs(shards, union of the pairs) -> apply shard by shard

(a hash repartition on the keys, not ``groupby().map_groups()``, which is much slower). The
manifest's stage ``info.engine_path`` says which path ran (``ray_band_repartition`` or
``ray_single_task`` with ``engine_fallback``: why). The output is byte-identical to the local
engine's either way. Ray is imported only here, only when ``engine: ray`` is chosen; no stage
imports it.

Connects to ``RAY_ADDRESS`` (or ``ray_address`` in the recipe) when set, otherwise starts a local
Ray instance with ``workers`` CPUs. On a multi-node cluster the run directory must be somewhere
every node sees, since shards are exchanged through it: object storage (``s3://...``, no shared
disk needed) or a shared filesystem. The driver's ``AWS_*`` and ``CURATE_*`` variables are passed
to every worker. A stage that runs a model (a transformer embedder) gets a GPU for its task when
the cluster has one.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.engine.checkpoint import ShardParts, StageDir, read_json, read_table
from curate.engine.executor import Executor
from curate.engine.progress import Reporter
from curate.engine.shards import (
    apply_shard_copy,
    apply_shards,
    fit_shard_part,
    process_shard_copy,
    shard_copies,
    shard_offsets,
)
from curate.errors import CurateError
from curate.stages.base import GlobalStage, SplitFitStage, Stage
from curate.util.storage import remove_tree

BAND_PATH = "ray_band_repartition"
SINGLE_TASK_PATH = "ray_single_task"
SHARD_TASKS_PATH = "ray_shard_tasks"
# Band rows per partition of the keyed repartition (each is sorted in one task: ~50 MB).
BAND_ROWS_PER_PARTITION = 1 << 21
_KEYED_STRATEGIES = ("hash_shuffle", "shuffle_v2")


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

    def __init__(self, stage: Stage, source: StageDir, target: StageDir) -> None:
        # A fresh copy of the stage per shard, as the local engine gives: a stage's manifest
        # info is its shard's (one mapper handles many shards; reusing one copy summed them).
        self.pristine = pickle.dumps(stage)
        self.source = source
        self.target = target
        import ray

        self.ray = ray

    def __call__(self, shards: Any) -> Any:
        rows = []
        for batch in shards.column("batch").to_pylist():
            stats = process_shard_copy(self.pristine, self.source.part(batch), self.target, batch)
            rows.append(
                {
                    "batch": batch,
                    "rows_in": stats["rows_in"],
                    "rows_out": stats["rows_out"],
                    "seconds": stats["seconds"],
                    "node": self.ray.get_runtime_context().get_node_id(),
                }
            )
        return pa.Table.from_pylist(rows)


def _fit(
    stage: GlobalStage,
    source_dir: StageDir,
    batches: int,
    split: tuple[np.ndarray, int] | None,
    parts: tuple[Any, ...],
) -> None:
    """``fit_pairs`` with the band grouping's ``(pairs, band_rows)`` when given, else
    ``fit_parts`` with the shards' parts (fitted in tasks of their own) when given, else ``fit``
    over every shard."""
    if split is not None:
        assert isinstance(stage, SplitFitStage)
        stage.fit_pairs(ShardParts(source_dir, batches), *split)
    elif parts:
        stage.fit_parts(parts)
    else:
        stage.fit(ShardParts(source_dir, batches))


def _fit_apply(
    stage: GlobalStage,
    source_dir: StageDir,
    target_dir: StageDir,
    batches: int,
    path: dict[str, Any],
    split: tuple[np.ndarray, int] | None = None,
    *parts: Any,
) -> list[dict[str, Any]]:
    """A global stage's fit (see :func:`_fit`; ``parts`` arrive as one task argument each, so
    that Ray resolves them), then its apply shard by shard, in one task."""
    _fit(stage, source_dir, batches, split, parts)
    shard_stats = apply_shards(stage, source_dir, target_dir, batches)
    if shard_stats:
        result = stage.manifest_info()
        shard_stats[0]["global_info"] = {**result, **path} if isinstance(result, dict) else path
    return shard_stats


def _fit_copy(stage: GlobalStage, source_dir: StageDir, batches: int, *parts: Any) -> bytes:
    """A global stage fitted in one task and sent back pickled: the copy every shard's apply
    task starts from (:meth:`~GlobalStage.applies_per_shard`)."""
    _fit(stage, source_dir, batches, None, parts)
    return pickle.dumps(stage)


def _band_rows(shards: pa.Table, stage: SplitFitStage, source_dir: StageDir) -> pa.Table:
    """Step 1 of a split fit over shard descriptors (columns batch, offset)."""
    tables = [
        stage.band_rows(read_table(source_dir.part(batch)), offset)
        for batch, offset in zip(
            shards.column("batch").to_pylist(), shards.column("offset").to_pylist(), strict=True
        )
    ]
    return pa.concat_tables(tables)


def _max_doc(rows: pa.Table) -> pa.Table:
    return pa.table({"max_doc": [pc.max(rows.column("doc")).as_py() if rows.num_rows else -1]})


def _band_pairs(rows: pa.Table, stage: SplitFitStage, max_doc: int) -> pa.Table:
    """Step 2 over one whole block of the keyed repartition: one row with its pairs and the parts
    it held (the driver checks that no part was split between blocks)."""
    pairs = stage.band_pairs(rows, max_doc)
    parts = np.unique(rows.column("part").to_numpy()) if rows.num_rows else np.zeros(0, np.uint32)
    return pa.table(
        {
            "pairs": _one_list(pa.array(pairs, pa.uint64())),
            "parts": _one_list(pa.array(parts, pa.uint32())),
        }
    )


def _one_list(values: pa.Array) -> pa.Array:
    return pa.LargeListArray.from_arrays(pa.array([0, len(values)], pa.int64()), values)


@contextlib.contextmanager
def _keyed_shuffle(context: Any) -> Iterator[None]:
    """Ray Data's ``hash_shuffle`` strategy for the band repartition, unless
    ``RAY_DATA_DEFAULT_SHUFFLE_STRATEGY`` names another one that supports ``keys``.

    Measured on 2 CPUs at 1M rows, the band repartition took 8 s with ``hash_shuffle`` and 15 s
    with ``shuffle_v2`` (Ray 2.60's default: its map tasks run in a worker pool of their own, so
    the pool's Python workers are restarted around every shuffle).
    """
    previous = getattr(context, "shuffle_strategy", None)
    chosen = os.environ.get("RAY_DATA_DEFAULT_SHUFFLE_STRATEGY")
    if previous is not None and chosen not in _KEYED_STRATEGIES:
        context.shuffle_strategy = type(previous)("hash_shuffle")
    try:
        yield
    finally:
        if previous is not None:
            context.shuffle_strategy = previous


# What the driver's environment gives Ray workers: object-storage endpoint and credentials, and
# curate's own settings (CURATE_DEVICE, ...).
FORWARDED_PREFIXES = ("AWS_", "CURATE_")


def forwarded_environment() -> dict[str, str]:
    """The driver's ``AWS_*`` and ``CURATE_*`` variables, for every Ray worker (``runtime_env``)."""
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith(FORWARDED_PREFIXES)
    }


# Ray turns a loopback address into the machine's interface address before connecting unless this
# is "0" when Ray is imported (its switch for single-machine clusters); a cluster bound to
# 127.0.0.1 needs it.
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_cluster(
    nodes: int, cpus_per_node: int = 1, object_store_bytes: int = 100 << 20
) -> Iterator[Any]:
    """A Ray cluster of ``nodes`` nodes on this machine, all bound to 127.0.0.1: a head and
    ``nodes - 1`` workers, each its own raylet with its own CPUs and object store. Yields Ray's
    ``Cluster`` (``.address`` to connect to); shut down on exit. For tests and benchmarks of the
    multi-node paths without a network."""
    ray = _require_ray()
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    if ray_constants.ENABLE_RAY_CLUSTER:  # read from the environment when Ray was imported
        raise CurateError(
            f"a cluster on 127.0.0.1 needs {LOOPBACK_SWITCH}=0 in the environment before Ray is "
            "imported (otherwise Ray connects through the machine's network address)"
        )
    node: dict[str, Any] = {
        "num_cpus": cpus_per_node,
        "node_ip_address": "127.0.0.1",
        "object_store_memory": object_store_bytes,
    }
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


class SplitPartError(Exception):
    """The repartition gave one part's rows to two blocks (so its buckets would be split)."""


def check_whole_parts(parts: list[np.ndarray]) -> None:
    """Raise :class:`SplitPartError` unless each part value occurs in one block's list only.

    Ray's hash repartition sends all rows of a key to one reducer, which emits them as one block,
    and ``map_batches(batch_size=None)`` passes whole blocks; this checks it on every run.
    """
    seen = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
    if len(np.unique(seen)) != len(seen):
        raise SplitPartError("Ray's keyed repartition split a band partition between blocks")


class RayExecutor(Executor):
    """Runs a recipe on Ray (a cluster at ``address`` / ``RAY_ADDRESS``, or a local instance)."""

    engine_name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        reporter: Reporter | None = None,
        band_grouping: bool = True,
    ) -> None:
        super().__init__(workers=workers, reporter=reporter)
        # False: stages with split steps (minhash_dedup) run as one task too (for benchmarks).
        self.band_grouping = band_grouping
        # The Ray nodes that ran per-batch shards (for tests and benchmarks of a cluster).
        self.nodes_used: set[str] = set()
        self.ray = _require_ray()
        address = address or os.environ.get("RAY_ADDRESS")
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {
                "ignore_reinit_error": True,
                "include_dashboard": False,
                "log_to_driver": False,
                # Workers on other nodes reach the same object storage with the same settings.
                "runtime_env": {"env_vars": forwarded_environment()},
            }
            if address:
                kwargs["address"] = address
            else:
                # "local" starts a new instance: with no address, Ray would attach to whatever
                # cluster it last recorded on this machine (and then refuse num_cpus).
                kwargs["address"] = "local"
                kwargs["num_cpus"] = self.workers
            try:
                self.ray.init(**kwargs)
            except Exception as exc:  # connection errors come in many types
                raise CurateError(
                    f"cannot start or reach Ray ({address or 'local'}): {exc}"
                ) from None
        self.ray.data.DataContext.get_current().execution_options.preserve_order = True

    def _run_per_batch(
        self, stage: Stage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        pending = [b for b in range(batches) if not target.stats(b).is_file()]
        self.reporter.start(label, total=batches)
        if pending:
            dataset = self.ray.data.from_items(
                [{"batch": b} for b in pending], override_num_blocks=len(pending)
            )
            mapped = dataset.map_batches(
                _ShardMapper,
                fn_constructor_args=(stage, source, target),
                batch_size=1,
                batch_format="pyarrow",
                compute=self.ray.data.ActorPoolStrategy(size=min(self.workers, len(pending))),
            )
            for done, row in enumerate(mapped.iter_rows(), start=1):
                self.nodes_used.add(str(row["node"]))
                self.reporter.advance(0, batches - len(pending) + done, batches)
        return [read_json(target.stats(b)) for b in range(batches)]

    def _run_global(
        self, stage: GlobalStage, source: StageDir, target: StageDir, batches: int, label: str
    ) -> list[dict[str, Any]]:
        if target.path.exists():
            remove_tree(target.path)
        split: tuple[np.ndarray, int] | None = None
        parts: list[Any] = []
        path: dict[str, Any] = {"engine_path": SINGLE_TASK_PATH}
        if isinstance(stage, SplitFitStage):
            reason = self._split_fallback(stage)
            if reason is None:
                self.reporter.start(f"{label} (ray band grouping)", total=batches)
                try:
                    split, path = self._band_grouping(stage, source, batches)
                except SplitPartError as exc:
                    reason = f"{exc}; ran as one task"
                    self.reporter.warn(f"{label}: {reason}")
            if reason is not None:
                path["engine_fallback"] = reason
        elif batches > 1 and (stage.fits_in_parts() or stage.applies_per_shard()):
            # A fit with a part per shard (exact_dedup, mix): one task per shard, and the fit
            # takes the parts in shard order.
            path = {"engine_path": SHARD_TASKS_PATH}
            parts = self._fit_parts(stage, source, batches, label, path)
            if stage.applies_per_shard():
                return self._apply_in_tasks(stage, source, target, batches, label, path, parts)
        self.reporter.start(f"{label} (ray task)", total=batches)
        task = self.ray.remote(_fit_apply)
        if stage.uses_gpu() and self.ray.cluster_resources().get("GPU", 0) >= 1:
            task = task.options(num_gpus=1)
        stats: list[dict[str, Any]] = self.ray.get(
            task.remote(stage, source, target, batches, path, split, *parts)
        )
        self.reporter.advance(sum(s["rows_in"] for s in stats), batches, batches)
        return stats

    def _fit_parts(
        self, stage: GlobalStage, source: StageDir, batches: int, label: str, path: dict[str, Any]
    ) -> list[Any]:
        """One task per shard for a stage whose fit has a part per shard (their refs, in shard
        order); none for the others."""
        if not stage.fits_in_parts():
            return []
        self.reporter.start(f"{label} (ray fit parts)", total=batches)
        shared = self.ray.put(stage)
        part_task = self.ray.remote(fit_shard_part)
        path["fit"] = "parts"
        return [part_task.remote(shared, source.part(b)) for b in range(batches)]

    def _apply_in_tasks(
        self,
        stage: GlobalStage,
        source: StageDir,
        target: StageDir,
        batches: int,
        label: str,
        path: dict[str, Any],
        parts: list[Any],
    ) -> list[dict[str, Any]]:
        """A global stage whose fitted copies apply any shard (``exact_dedup``, ``expand``,
        ``mix``): fitted in one task (from ``parts`` when given), then one task per shard."""
        self.reporter.start(f"{label} (ray fit)", total=batches)
        fitted: bytes = self.ray.get(
            self.ray.remote(_fit_copy).remote(stage, source, batches, *parts)
        )
        path["apply"] = "shards"
        self.reporter.start(label, total=batches)
        pending_copies: list[Any] = []
        counted: GlobalStage = pickle.loads(fitted)
        # Each shard's copy, put once in the object store (expand's copies are one object).
        refs: dict[int, Any] = {}
        for copy in shard_copies(counted, shard_offsets(source, batches)):
            if id(copy) not in refs:
                refs[id(copy)] = self.ray.put(copy)
            pending_copies.append(refs[id(copy)])
        apply_task = self.ray.remote(apply_shard_copy)
        pending = [
            apply_task.remote(copy, source.part(b), target, b)
            for b, copy in enumerate(pending_copies)
        ]
        stats = []
        for done, ref in enumerate(pending, start=1):
            stats.append(self.ray.get(ref))
            self.reporter.advance(stats[-1]["rows_in"], done, batches)
        # The copies' counts come back into the fitted stage, whose info the manifest gets.
        counted.absorb_applied([shard.pop("applied") for shard in stats])
        info = counted.manifest_info()
        stats[0]["global_info"] = {**info, **path} if isinstance(info, dict) else path
        return stats

    def _split_fallback(self, stage: SplitFitStage) -> str | None:
        """Why a stage with split steps runs as one task anyway (None: it does not)."""
        if not self.band_grouping:
            return "band grouping disabled (RayExecutor(band_grouping=False))"
        reason = stage.split_fallback()
        if reason is not None:
            return reason
        if "keys" not in inspect.signature(self.ray.data.Dataset.repartition).parameters:
            return f"Ray {self.ray.__version__} has no keyed repartition (Ray >= 2.44 has)"
        return None

    def _band_grouping(
        self, stage: SplitFitStage, source: StageDir, batches: int
    ) -> tuple[tuple[np.ndarray, int], dict[str, Any]]:
        """Steps 1 and 2 of a split fit on Ray: ``(pairs, band_rows)`` and what ran, for the info."""
        started = time.perf_counter()
        if batches == 0:
            return (np.zeros(0, np.uint64), 0), {"engine_path": BAND_PATH, "band_rows": 0}
        offsets = shard_offsets(source, batches)
        shards = self.ray.data.from_items(
            [{"batch": b, "offset": offsets[b]} for b in range(batches)],
            override_num_blocks=batches,
        )
        rows = shards.map_batches(
            _band_rows,
            fn_args=(stage, source),
            batch_size=1,
            batch_format="pyarrow",
        ).materialize()
        count = rows.count()
        signed = time.perf_counter()
        partitions = max(self.workers, -(-count // BAND_ROWS_PER_PARTITION))
        pairs: list[np.ndarray] = []
        parts: list[np.ndarray] = []
        context = self.ray.data.DataContext.get_current()
        strategy = None
        if count:
            # A map, not Dataset.max(): an aggregate shuffles, which costs seconds of overhead.
            max_doc = max(
                int(row["max_doc"])
                for row in rows.map_batches(
                    _max_doc, batch_size=None, batch_format="pyarrow"
                ).take_all()
            )
            with _keyed_shuffle(context):
                strategy = getattr(context, "shuffle_strategy", None)
                grouped = rows.repartition(partitions, keys=["part"]).map_batches(
                    _band_pairs,
                    fn_args=(stage, max_doc),
                    batch_size=None,  # whole blocks: every row of each part the block holds
                    batch_format="pyarrow",
                )
                for block in grouped.iter_batches(batch_size=None, batch_format="pyarrow"):
                    pairs.append(block.column("pairs").combine_chunks().flatten().to_numpy())
                    parts.append(block.column("parts").combine_chunks().flatten().to_numpy())
        check_whole_parts(parts)
        all_pairs = np.concatenate(pairs) if pairs else np.zeros(0, np.uint64)
        path = {
            "engine_path": BAND_PATH,
            "band_rows": count,
            "band_partitions": partitions,
            "band_shuffle": str(getattr(strategy, "value", strategy)),
            "band_seconds": {
                "band_rows": round(signed - started, 3),
                "band_pairs": round(time.perf_counter() - signed, 3),
            },
        }
        return (all_pairs, count), path
