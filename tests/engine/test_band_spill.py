"""The local engine's band grouping through files (minhash_dedup fitted in steps on the worker
pool) gives the same bytes as the whole fit in memory, and leaves no spill files behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from testutils import REPO, run_digests

from curate.engine.local import LocalExecutor, band_row_tasks, spill_groups
from curate.recipe import load_recipe


def test_spill_groups_are_powers_of_two_sized_to_the_band_rows() -> None:
    assert spill_groups(0) == 1
    assert spill_groups(1 << 21) == 1
    assert spill_groups((1 << 21) + 1) == 2
    assert spill_groups(21 * 10_000_000) == 128
    assert spill_groups(1 << 40) == 256


@pytest.mark.parametrize("workers", [1, 2])
def test_band_grouping_through_files_equals_the_fit_in_memory(
    workers: int, tmp_path: Path, in_repo: Path
) -> None:
    # Small shards and several sources: many files per group, rows of one part from many shards.
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=16"])
    in_memory = LocalExecutor(workers=workers)
    in_memory.split_fit_min_rows = in_memory.parallel_fit_min_rows = 1 << 62
    memory_run = in_memory.run(recipe, out=tmp_path / "memory")
    in_steps = LocalExecutor(workers=workers)
    in_steps.split_fit_min_rows = 0
    steps_run = in_steps.run(recipe, out=tmp_path / "steps")

    assert run_digests(tmp_path / "steps") == run_digests(tmp_path / "memory")
    stage = next(s for s in steps_run.manifest["stages"] if s["name"].startswith("minhash"))
    reference = next(s for s in memory_run.manifest["stages"] if s["name"].startswith("minhash"))
    assert stage["dropped"] == reference["dropped"]
    assert stage["info"]["candidate_pairs"] == reference["info"]["candidate_pairs"]
    assert not [p for p in (tmp_path / "steps").rglob("*") if ".spill" in p.name]


def test_band_row_tasks_cut_shards_only_when_there_are_fewer_than_workers() -> None:
    # Two shards of 10 and 7 rows and an empty one.
    offsets = [0, 10, 17, 17]
    assert band_row_tasks(offsets, 2) == [(0, 0, 10), (1, 0, 7), (2, 0, 0)]
    assert band_row_tasks([0, 10], 3) == [(0, 0, 4), (0, 4, 4), (0, 8, 2)]
    for workers in (1, 2, 5, 16):
        tasks = band_row_tasks([0, 10, 17], workers)
        # Every row of every shard exactly once, in order.
        covered = [
            (batch, row) for batch, first, count in tasks for row in range(first, first + count)
        ]
        assert covered == [(0, r) for r in range(10)] + [(1, r) for r in range(7)]


def test_one_shard_cut_across_the_workers_equals_the_fit_in_memory(
    tmp_path: Path, in_repo: Path
) -> None:
    # One source, one shard: the band rows are computed in row ranges on two workers.
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(
        "name: one-shard\n"
        "sources:\n"
        f"  - {{name: dolly, path: {REPO}/data_samples/dolly.jsonl}}\n"
        "stages: [normalize, {minhash_dedup: {threshold: 0.7}}]\n"
    )
    recipe = load_recipe(recipe_path)
    in_memory = LocalExecutor(workers=1)
    in_memory.split_fit_min_rows = in_memory.parallel_fit_min_rows = 1 << 62
    memory_run = in_memory.run(recipe, out=tmp_path / "memory")
    in_parallel = LocalExecutor(workers=2)
    in_parallel.parallel_fit_min_rows = 0
    parallel_run = in_parallel.run(recipe, out=tmp_path / "parallel")

    assert parallel_run.manifest["engine"]["batches"] == 1
    assert run_digests(tmp_path / "parallel") == run_digests(tmp_path / "memory")
    stage = next(s for s in parallel_run.manifest["stages"] if s["name"].startswith("minhash"))
    # The fit in steps reports its own timings (shingles of candidates, not every signature).
    assert "shingles" in stage["info"]["seconds"]
    assert stage["dropped"].get("near_duplicate", 0) > 0  # the comparison had something to find
    reference = next(s for s in memory_run.manifest["stages"] if s["name"].startswith("minhash"))
    assert stage["dropped"] == reference["dropped"]
    assert in_parallel._pool is None  # the run's worker pool is shut down when it ends
