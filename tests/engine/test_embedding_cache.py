"""The run's embedding cache: the local engine embeds the shards in parallel before a global
stage's fit, the fit reads the vectors back, and the output is the same as a one-process run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from testutils import REPO

from curate.engine.run import run_recipe
from curate.recipe import parse_recipe

pytest.importorskip("wordllama", reason="the static embedder is extra [embed]")

RECIPE = f"""
name: cache
batch_size: 20
sources:
  - {{name: alpaca, path: {REPO / "data_samples" / "alpaca.json"}}}
  - {{name: dolly, path: {REPO / "data_samples" / "dolly.jsonl"}}}
  - {{name: more, path: {REPO / "data_samples" / "alpaca_more.jsonl"}}}
stages:
  - semantic_dedup: {{threshold: 0.9}}
  - select: {{budget: 30, balance: [clusters, source], clusters: 4}}
"""


def digests(run_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("data", "rejects")
        for p in sorted((run_dir / folder).glob("*.parquet"))
    }


def test_parallel_embedding_gives_the_one_process_output(tmp_path: Path) -> None:
    recipe = parse_recipe(yaml.safe_load(RECIPE), "cache.yaml")
    alone = run_recipe(recipe, out=tmp_path / "one", workers=1)
    parallel = run_recipe(recipe, out=tmp_path / "two", workers=2)
    assert digests(parallel.out_dir) == digests(alone.out_dir)
    stages = {s["key"]: s for s in parallel.manifest["stages"]}
    rows = stages["semantic_dedup"]["rows_in"]
    assert rows > 20  # more than one shard
    # The workers embedded every request; the fit only read them back, and select (balance over
    # clusters embeds every row) found the survivors' vectors there too.
    # (requests, and the inputs its input_threshold compares)
    cache = stages["semantic_dedup"]["info"]["embedding_cache"]
    assert cache["embedded"] == 0 and cache["reused"] >= rows
    assert stages["select"]["info"]["embedding_cache"]["embedded"] == 0
    assert list((parallel.out_dir / "cache" / "embeddings").glob("*/part-*.parquet"))
