"""The local engine's band grouping through files (minhash_dedup fitted in steps on the worker
pool) gives the same bytes as the whole fit in memory, and leaves no spill files behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from testutils import REPO, run_digests

from curate.engine.local import LocalExecutor, spill_groups
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
    in_memory.split_fit_min_rows = 1 << 62
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
