"""Export deletes only its own folders, says what went wrong on a full disk, re-exports as a
no-op, and escapes untrusted text in the dataset card and the run README."""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import pytest

from curate.engine.run import run_recipe
from curate.errors import ExportError, RunDirError
from curate.recipe import parse_recipe
from curate.run.export import export_run, read_export_marker

HOSTILE_CATEGORY = "x` <img src=x onerror=alert(12)> `y | z"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    rows = [
        {"instruction": f"Question {i}?", "context": "", "response": f"Answer {i}.", "category": c}
        for i, c in enumerate([HOSTILE_CATEGORY, "open_qa", HOSTILE_CATEGORY])
    ]
    data = base / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = parse_recipe(
        {
            "name": "<script>alert(1)<",
            "sources": [{"name": "d`<b>", "path": str(data), "license": "<i>MIT</i>"}],
            "stages": [{"normalize_v1": {}}, {"mix": {"target": 3, "by": "task"}}],
        }
    )
    return run_recipe(recipe, out=base / "run", workers=1).out_dir


def test_untrusted_text_is_escaped_in_the_card_and_run_readme(
    hostile_run: Path, tmp_path: Path
) -> None:
    export_run(hostile_run, tmp_path / "export")
    for card in (
        (tmp_path / "export" / "README.md").read_text(),
        (hostile_run / "README.md").read_text(),
    ):
        # The YAML front matter is data (yaml.safe_dump quotes it); the Markdown body must be inert.
        body = card.split("\n---\n", 1)[1].split("<!-- curate-export", 1)[0]
        # Outside code (where Markdown shows text literally) no tag can start.
        prose = re.sub(r"(`+)(.+?)\1", "", re.sub(r"```.*?```", "", body, flags=re.S))
        assert "<" not in prose, prose
        assert "&lt;script&gt;" in body
    card = (tmp_path / "export" / "README.md").read_text()
    # the category stays inside its code span and its table cell
    unit_rows = [line for line in card.splitlines() if "onerror" in line and line.startswith("|")]
    assert unit_rows and all(line.count(" | ") >= 4 for line in unit_rows)
    assert all("``" in line for line in unit_rows)


def test_reexport_of_the_same_run_is_a_no_op(hostile_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    first = export_run(hostile_run, out, format="jsonl")
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = export_run(hostile_run, out, format="jsonl")
    assert again.up_to_date and not first.up_to_date
    assert (again.rows, again.files, again.license) == (first.rows, first.files, first.license)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    assert read_export_marker(out) == {
        "chat": False,
        "files": list(first.files),
        "format": "jsonl",
        "license": first.license,
        "rows": first.rows,
        "run_key": json.loads((hostile_run / "manifest.json").read_text())["run_key"],
    }


def test_force_never_replaces_a_folder_that_is_not_an_export(
    hostile_run: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep")
    with pytest.raises(RunDirError, match="not a curate export"):
        export_run(hostile_run, mine, overwrite=True)
    assert (mine / "precious.txt").read_text() == "keep"
    squatter = tmp_path / ".out.partial"
    squatter.mkdir()
    (squatter / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an unfinished curate export"):
        export_run(hostile_run, tmp_path / "out")
    assert (squatter / "notes.txt").exists()


def test_a_full_disk_is_a_clear_error_and_leaves_nothing(
    hostile_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curate.run.export as export

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(export, "write_shards", full_disk)
    with pytest.raises(ExportError, match=r"No space left on device.*nothing was published"):
        export_run(hostile_run, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
