"""Global stages forget what their fit learned once their checkpoint is written: at 10M rows the
hashes, signatures and decisions of exact_dedup and minhash_dedup are gigabytes the later stages
do not need."""

from __future__ import annotations

from pathlib import Path

import pytest
from testutils import REPO, records_table

from curate.engine.local import LocalExecutor
from curate.recipe import load_recipe
from curate.stages import get_stage
from curate.stages.base import GlobalStage

ROWS = [
    {"instruction": "Name three primary colors.", "output": "Red, yellow and blue."},
    {"instruction": "Name three primary colors.", "output": "Red, yellow and blue."},
    {"instruction": "Give the capital of France.", "output": "Paris."},
]


@pytest.mark.parametrize("name", ["exact_dedup", "minhash_dedup"])
def test_release_forgets_the_fit_and_the_stage_fits_again(name: str) -> None:
    stage = get_stage(name)()
    table = records_table(ROWS)
    first = stage.run(table)
    fitted = {key: value for key, value in vars(stage).items()}
    stage.release()
    assert vars(stage).keys() == vars(get_stage(name)()).keys()
    assert any(vars(stage)[key] is not value for key, value in fitted.items())
    again = stage.run(table)
    assert again.kept.equals(first.kept)
    assert again.rejected.equals(first.rejected)


def test_the_local_engine_releases_every_global_stage_after_its_checkpoint(
    tmp_path: Path, in_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[str] = []
    original = GlobalStage.release

    def spy(stage: GlobalStage) -> None:
        released.append(stage.name)
        original(stage)

    monkeypatch.setattr(GlobalStage, "release", spy)
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", [])
    result = LocalExecutor(workers=1).run(recipe, out=tmp_path / "run")
    global_stages = [s.name for s in recipe.build_stages() if isinstance(s, GlobalStage)]
    assert global_stages and released == global_stages
    assert result.manifest["stages"]
