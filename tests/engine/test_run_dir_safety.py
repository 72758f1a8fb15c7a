"""curate deletes only what it made: --force replaces a previous run, never a user's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from testutils import SAMPLES

from curate.engine.run import run_recipe
from curate.errors import RecipeError, RunDirError
from curate.recipe import parse_recipe


def _recipe(name: str = "safety", output: str | None = None) -> dict:
    data: dict = {
        "name": name,
        "sources": [{"name": "dolly", "path": str(SAMPLES / "dolly.jsonl")}],
        "stages": [{"normalize": {}}],
    }
    if output is not None:
        data["output"] = output
    return data


def _user_folder(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "precious.txt").write_text("keep me")
    (path / "notes").mkdir()
    (path / "notes" / "a.md").write_text("mine")


def test_force_never_replaces_a_folder_curate_did_not_write(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    _user_folder(target)
    recipe = parse_recipe(_recipe())
    for force in (False, True):
        with pytest.raises(RunDirError, match="not a curate run directory"):
            run_recipe(recipe, out=target, force=force, workers=1)
    assert (target / "precious.txt").read_text() == "keep me"
    assert (target / "notes" / "a.md").read_text() == "mine"
    assert not list(tmp_path.glob(".mine*")), "no partial or trash left beside it"


def test_force_replaces_a_previous_run(tmp_path: Path) -> None:
    target = tmp_path / "run"
    recipe = parse_recipe(_recipe())
    first = run_recipe(recipe, out=target, workers=1)
    again = run_recipe(recipe, out=target, force=True, workers=1)
    assert not again.up_to_date and again.manifest["rows"] == first.manifest["rows"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("name", [".", "..", "../escape", "a/b", ".hidden", "a\\b"])
def test_a_run_name_must_be_a_plain_folder_name(name: str) -> None:
    with pytest.raises(RecipeError, match="plain folder name"):
        parse_recipe(_recipe(name=name))


def test_an_existing_file_or_the_working_directory_is_never_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = parse_recipe(_recipe())
    existing = tmp_path / "out.txt"
    existing.write_text("data")
    with pytest.raises(RunDirError, match="not a directory"):
        run_recipe(recipe, out=existing, force=True, workers=1)
    assert existing.read_text() == "data"
    work = tmp_path / "work"
    _user_folder(work)
    monkeypatch.chdir(work)
    for out in (Path("."), Path("..")):
        with pytest.raises(RunDirError, match="working directory"):
            run_recipe(recipe, out=out, force=True, workers=1)
    assert (work / "precious.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "work"]


def test_a_partial_folder_curate_did_not_make_is_left_alone(tmp_path: Path) -> None:
    squatter = tmp_path / ".run.partial"
    _user_folder(squatter)
    with pytest.raises(RunDirError, match="not an unfinished curate run"):
        run_recipe(parse_recipe(_recipe()), out=tmp_path / "run", force=True, workers=1)
    assert (squatter / "precious.txt").exists()
