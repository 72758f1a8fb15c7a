"""A Ray cluster of three nodes on this machine (a head and two workers, each with its own CPU and
object store, all bound to 127.0.0.1) runs a recipe with its run directory on an S3-protocol
server: no disk is shared between the nodes, and the output is byte-identical to the local
engine's. ``bench/ray_cluster.py`` runs the full real-data recipe on 1, 2 and 3 nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from s3server import S3Server
from testutils import REPO, run_digests

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

from curate.engine.local import LocalExecutor
from curate.engine.ray_engine import RayExecutor, loopback_cluster
from curate.recipe import load_recipe
from curate.util.storage import ObjectPath

pytestmark = [pytest.mark.ray, pytest.mark.slow]

NODES = 3


@pytest.fixture(scope="module")
def cluster(s3: S3Server) -> Iterator[str]:
    """Three one-CPU nodes on loopback; the driver reaches the S3 server through the AWS
    variables, which the engine forwards to every worker."""
    patch = pytest.MonkeyPatch()
    for name, value in s3.env.items():
        patch.setenv(name, value)
    try:
        with loopback_cluster(NODES, cpus_per_node=1) as running:
            yield str(running.address)
    finally:
        patch.undo()


def test_three_node_cluster_on_object_storage_is_byte_identical_to_local(
    cluster: str, s3: S3Server, tmp_path: Path, in_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    monkeypatch.setenv("CURATE_WORK_DIR", str(tmp_path / "work"))
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=8"])
    local = tmp_path / "local"
    LocalExecutor(workers=1).run(recipe, out=local)
    expected = run_digests(local)

    executor = RayExecutor(address=cluster, workers=NODES)
    assert len([n for n in ray.nodes() if n["Alive"]]) == NODES
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    out = ObjectPath(f"s3://{s3.new_bucket()}/runs/demo")
    result = executor.run(recipe, out=out)
    got = run_digests(out)
    assert got == expected
    assert result.manifest["engine"]["name"] == "ray"
    # The shards were spread over the nodes, which shared no disk (the run lives in the bucket).
    assert len(executor.nodes_used) >= 2
