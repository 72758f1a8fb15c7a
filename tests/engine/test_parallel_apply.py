"""A global stage that applies per shard (``expand``) runs its shards on the worker pool: the
same bytes and the same manifest counts as applying them in order in the engine's process."""

from __future__ import annotations

from pathlib import Path

import pytest
from testutils import REPO, pool_tasks, run_digests

from curate.engine.executor import RunResult
from curate.engine.local import LocalExecutor
from curate.recipe import load_recipe
from curate.stages.dedup.exact import ExactDedup
from curate.stages.expand import ExpandTemplates
from curate.stages.mix.mix import Mix


def expand_entry(manifest: dict) -> dict:  # type: ignore[type-arg]
    return next(s for s in manifest["stages"] if s["name"].startswith("expand"))


def test_expand_on_the_worker_pool_equals_expand_in_order(
    tmp_path: Path, in_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small shards: the round-robin of a task's templates and its few-shot draws cross shards.
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=16"])
    pooled: list[str] = []
    original = LocalExecutor._apply_in_parallel

    def spy(engine: LocalExecutor, stage: ExpandTemplates, *args: object) -> object:
        pooled.append(stage.name)
        return original(engine, stage, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalExecutor, "_apply_in_parallel", spy)
    parallel = LocalExecutor(workers=2).run(recipe, out=tmp_path / "parallel")
    # exact_dedup and mix apply on the pool too (a copy per shard); minhash_dedup in order.
    assert pooled == ["exact_dedup_v1", "expand_v1", "mix_v1"]
    monkeypatch.setattr(ExpandTemplates, "applies_per_shard", lambda self: False)
    in_order = LocalExecutor(workers=2).run(recipe, out=tmp_path / "in_order")

    assert run_digests(tmp_path / "parallel") == run_digests(tmp_path / "in_order")
    expand, reference = expand_entry(parallel.manifest), expand_entry(in_order.manifest)
    assert expand["rows_out"] > expand["rows_in"] > 16
    assert expand["info"] == reference["info"]
    assert expand["dropped"] == reference["dropped"]
    assert expand["info"]["few_shot"]["rows"] > 0


def test_fits_in_parts_on_the_pool_equal_the_fits_in_order(
    tmp_path: Path, in_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small shards: duplicates and a mix unit's rows sit in different shards, so the parts must
    # be taken in order.
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=16"])
    tasks = pool_tasks(monkeypatch)
    in_parts = LocalExecutor(workers=2).run(recipe, out=tmp_path / "parts")
    batches = in_parts.manifest["engine"]["batches"]
    assert batches > 1 and tasks.count("fit_shard_part") == 2 * batches  # exact_dedup, mix
    monkeypatch.setattr(ExactDedup, "fits_in_parts", lambda self: False)
    monkeypatch.setattr(Mix, "fits_in_parts", lambda self: False)
    whole = LocalExecutor(workers=2).run(recipe, out=tmp_path / "whole")

    assert run_digests(tmp_path / "parts") == run_digests(tmp_path / "whole")
    assert stage_counts(in_parts) == stage_counts(whole)
    assert stage_counts(in_parts)[1][2]["exact_duplicate"] > 0
    mix = next(s for s in in_parts.manifest["stages"] if s["name"].startswith("mix"))
    reference = next(s for s in whole.manifest["stages"] if s["name"].startswith("mix"))
    assert mix["info"] == reference["info"]
    assert mix["dropped"]["not_sampled"] > 0


def test_exact_dedup_applied_by_shard_copies_on_the_pool_equals_applying_in_order(
    tmp_path: Path, in_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small shards: most duplicates point at a row of an earlier shard, whose id the copy of a
    # later shard must carry.
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=16"])
    tasks = pool_tasks(monkeypatch)
    by_copies = LocalExecutor(workers=2).run(recipe, out=tmp_path / "copies")
    batches = by_copies.manifest["engine"]["batches"]
    assert tasks.count("apply_shard_copy") == 3 * batches  # exact_dedup's, expand's and mix's
    monkeypatch.setattr(ExactDedup, "applies_per_shard", lambda self: False)
    in_order = LocalExecutor(workers=2).run(recipe, out=tmp_path / "in_order")

    assert run_digests(tmp_path / "copies") == run_digests(tmp_path / "in_order")
    assert stage_counts(by_copies) == stage_counts(in_order)
    assert stage_counts(by_copies)[1][2]["exact_duplicate"] > 0


def stage_counts(run: RunResult) -> list[tuple[int, int, dict[str, int]]]:
    """Rows in, rows out and drops per stage (the manifest without its timings)."""
    return [(s["rows_in"], s["rows_out"], s["dropped"]) for s in run.manifest["stages"]]
