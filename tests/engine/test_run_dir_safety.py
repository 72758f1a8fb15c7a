"""curate deletes only what it made: --force replaces a previous run, never a user's folder."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from testutils import SAMPLES

from curate.engine.run import run_recipe
from curate.errors import RecipeError, RunDirError
from curate.recipe import parse_recipe
from curate.run.layout import RunDir


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


def test_one_writer_per_run_directory(tmp_path: Path) -> None:
    target = tmp_path / "run"
    recipe = parse_recipe(_recipe())
    with RunDir(target).lock(), pytest.raises(RunDirError, match="another curate process"):
        run_recipe(recipe, out=target, workers=1)
    assert not target.exists()
    # A holder that is killed releases the lock: the next run goes ahead.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from curate.run.layout import RunDir\n"
            f"with RunDir({str(target)!r}).lock():\n    print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match="another curate process"):
            run_recipe(recipe, out=target, workers=1)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert run_recipe(recipe, out=target, workers=1).manifest["rows"]["read"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "no lock or partial left"


def test_the_output_never_holds_or_sits_inside_an_input(tmp_path: Path) -> None:
    source_dir = tmp_path / "inputs"
    source_dir.mkdir()
    (source_dir / "dolly.jsonl").write_bytes((SAMPLES / "dolly.jsonl").read_bytes())
    data = _recipe()
    data["sources"] = [{"name": "d", "path": str(source_dir)}]
    recipe = parse_recipe(data)
    with pytest.raises(RunDirError, match="inside the source directory"):
        run_recipe(recipe, out=source_dir / "run", force=True, workers=1)
    with pytest.raises(RunDirError, match="contains the input"):
        run_recipe(recipe, out=tmp_path, force=True, workers=1)
    assert (source_dir / "dolly.jsonl").is_file()
    assert sorted(p.name for p in source_dir.iterdir()) == ["dolly.jsonl"]
