"""Multi-node Ray on this machine: a recipe on 1, 2 and 3 Ray nodes bound to 127.0.0.1, the run
directory on an S3-protocol server (moto, on loopback), against the local engine in the same run.

    .venv/bin/python bench/ray_cluster.py                         # alpaca_dolly.yaml, 1 2 3 nodes
    .venv/bin/python bench/ray_cluster.py --recipe data_samples/recipe.yaml --nodes 3

Every node is its own raylet with ``--cpus-per-node`` CPUs and its own object store
(``curate.engine.ray_engine.loopback_cluster``); the nodes share no disk: shards go through the
bucket. The table gives wall seconds, input rows per second, the peak resident memory of each
node's process tree (raylet and its workers; the head also holds the GCS) and of the driver
process, and whether the data and rejects are byte-identical to the local engine's. On this
2-core machine three one-CPU nodes oversubscribe the cores: the figures show the engine's
overhead, not a speed-up.
"""

from __future__ import annotations

import os

# Ray reads this when it is imported: keep every node and the driver on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the tests' S3 server helper

from measure import MIB, PeakSampler  # noqa: E402
from s3server import s3_server  # noqa: E402
from testutils import run_digests  # noqa: E402

from curate.engine.local import LocalExecutor  # noqa: E402
from curate.engine.ray_engine import RayExecutor, loopback_cluster  # noqa: E402
from curate.recipe import load_recipe  # noqa: E402
from curate.util.storage import ObjectPath  # noqa: E402


def node_pids(cluster: Any) -> dict[str, list[int]]:
    """Each node's own processes (raylet, object store, and on the head the GCS): their pids."""
    result: dict[str, list[int]] = {}
    for index, node in enumerate(cluster.list_all_nodes()):
        pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
        result[f"node {index}{' (head)' if index == 0 else ''}"] = pids
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="bench/recipes/alpaca_dolly.yaml")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--local-workers", type=int, default=2)
    args = parser.parse_args()
    os.chdir(REPO)
    recipe = load_recipe(Path(args.recipe))
    scratch = Path(tempfile.mkdtemp(prefix="curate-ray-cluster-"))
    os.environ["CURATE_WORK_DIR"] = str(scratch / "work")
    rows: list[dict[str, Any]] = []
    try:
        me = os.getpid()
        sampler = PeakSampler(lambda: {"driver": ([me], True)})
        sampler.start()
        started = time.perf_counter()
        local = LocalExecutor(workers=args.local_workers).run(recipe, out=scratch / "local")
        wall = time.perf_counter() - started
        peaks = sampler.stop()
        read = int(local.manifest["rows"]["read"])
        expected = run_digests(scratch / "local")
        rows.append(
            {
                "engine": f"local ({args.local_workers} processes)",
                "nodes": "-",
                "wall": wall,
                "rows_s": read / wall,
                "node_peaks": "-",
                "driver": peaks["driver"],
                "identical": "(reference)",
            }
        )
        with s3_server() as server:
            os.environ.update(server.env)
            for count in args.nodes:
                with loopback_cluster(count, cpus_per_node=args.cpus_per_node) as cluster:
                    groups = node_pids(cluster)
                    sampler = PeakSampler(
                        lambda groups=groups: {
                            "driver": ([me], False),
                            **{label: (pids, True) for label, pids in groups.items()},
                        }
                    )
                    sampler.start()
                    out = ObjectPath(f"s3://{server.new_bucket()}/runs/{recipe.name}")
                    started = time.perf_counter()
                    executor = RayExecutor(
                        address=str(cluster.address), workers=count * args.cpus_per_node
                    )
                    executor.run(recipe, out=out)
                    wall = time.perf_counter() - started
                    peaks = sampler.stop()
                    rows.append(
                        {
                            "engine": "ray, run directory on S3",
                            "nodes": f"{count} ({len(executor.nodes_used)} ran shards)",
                            "wall": wall,
                            "rows_s": read / wall,
                            "node_peaks": " / ".join(
                                f"{peaks.get(label, 0) / MIB:,.0f}" for label in groups
                            ),
                            "driver": peaks["driver"],
                            "identical": "yes" if run_digests(out) == expected else "NO",
                        }
                    )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\n{args.recipe}: {read:,} input rows; {args.cpus_per_node} CPU(s) per Ray node\n")
    print(
        "| engine | nodes | wall s | rows/s | peak RSS per node, MiB | driver peak RSS, MiB "
        "| data + rejects identical to local |"
    )
    print("|---|---|---:|---:|---|---:|---|")
    for row in rows:
        print(
            f"| {row['engine']} | {row['nodes']} | {row['wall']:.1f} | {row['rows_s']:,.0f} | "
            f"{row['node_peaks']} | {row['driver'] / MIB:,.0f} | {row['identical']} |"
        )


if __name__ == "__main__":
    main()
