"""The Ray engine gives byte-identical output to the local engine (runs in CI on a local 2-CPU Ray)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from testutils import REPO

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

from curate.pipeline import run_recipe
from curate.recipe import load_recipe

pytestmark = pytest.mark.ray


def digests(run_dir: Path) -> dict[str, str]:
    return {
        f"{sub}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for sub in ("data", "rejects")
        for p in sorted((run_dir / sub).glob("*.parquet"))
    }


def test_ray_output_is_identical_to_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.chdir(REPO)
    recipe = load_recipe(REPO / "data_samples" / "recipe.yaml", ["batch_size=5"])
    local = run_recipe(recipe, out=tmp_path / "local", workers=1)
    try:
        distributed = run_recipe(recipe, out=tmp_path / "ray", workers=2, engine="ray")
    finally:
        ray.shutdown()
    assert distributed.manifest["engine"]["name"] == "ray"
    assert local.manifest["engine"]["batches"] == distributed.manifest["engine"]["batches"] > 3
    assert digests(local.out_dir) == digests(distributed.out_dir)
    assert local.manifest["rows"] == distributed.manifest["rows"]
    assert [s["dropped"] for s in local.manifest["stages"]] == [
        s["dropped"] for s in distributed.manifest["stages"]
    ]
