"""Input files read on the worker pool give the run the same shards, rejects, manifest and
messages as reading them one after the other in the engine's process, and a bad file is the
same clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testutils import REPO, pool_tasks, run_digests

from curate.engine.local import LocalExecutor
from curate.errors import CurateError
from curate.recipe import load_recipe


def _engine(workers: int, parallel: bool) -> LocalExecutor:
    engine = LocalExecutor(workers=workers)
    engine.parallel_ingest_min_bytes = 0 if parallel else 1 << 62
    return engine


def _sources(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest["sources"], sort_keys=True)


def test_files_read_on_the_pool_equal_files_read_in_order(
    tmp_path: Path, in_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every sample format; a .gz and a .zst; shards of a few rows, so files give several each.
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=4"])
    tasks = pool_tasks(monkeypatch)
    pooled = _engine(2, True).run(recipe, out=tmp_path / "pooled")
    files = sum(len(source["files"]) for source in pooled.manifest["sources"])
    assert files > 5 and tasks.count("read_input_file") == files
    in_order = _engine(1, False).run(recipe, out=tmp_path / "in_order")

    assert run_digests(tmp_path / "pooled") == run_digests(tmp_path / "in_order")
    assert _sources(pooled.manifest) == _sources(in_order.manifest)
    assert pooled.manifest["ingest"]["batches"] == in_order.manifest["ingest"]["batches"] > files
    assert pooled.manifest["rows"] == in_order.manifest["rows"]
    # The ingest checkpoint holds the numbered shards only: no scratch folder is left.
    assert not [p for p in (tmp_path / "pooled").rglob("*") if ".ingest" in p.parts]


def test_a_bad_file_read_on_the_pool_is_the_same_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(
        "".join(
            json.dumps({"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."})
            + "\n"
            for i in range(50)
        )
    )
    # A single JSON object that is no known format: the reader refuses the file.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"title": "not instruction data", "body": "..."}))
    preference = tmp_path / "pairs.jsonl"  # recognised, not SFT rows: skipped with a reason
    preference.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(
        "name: bad\n"
        f"sources:\n  - {{name: good, path: [{good}, {preference}]}}\n"
        f"  - {{name: bad, path: {bad}}}\n"
        "stages: [normalize]\n"
    )
    recipe = load_recipe(recipe_path)
    errors = []
    for name, parallel in (("pooled", True), ("in_order", False)):
        with pytest.raises(CurateError) as caught:
            _engine(2, parallel).run(recipe, out=tmp_path / name)
        errors.append(str(caught.value))
        assert not (tmp_path / name).exists()  # nothing that looks like a finished run
    assert errors[0] == errors[1] and "bad.json" in errors[0]

    # Without the bad source the skipped file is reported the same way by both.
    recipe_path.write_text(
        "name: skip\n"
        f"sources:\n  - {{name: good, path: [{good}, {preference}]}}\n"
        "stages: [normalize]\n"
    )
    recipe = load_recipe(recipe_path)
    pooled = _engine(2, True).run(recipe, out=tmp_path / "skip-pooled")
    in_order = _engine(2, False).run(recipe, out=tmp_path / "skip-in-order")
    assert _sources(pooled.manifest) == _sources(in_order.manifest)
    [source] = pooled.manifest["sources"]
    assert [entry["path"].endswith("pairs.jsonl") for entry in source["skipped_files"]] == [True]
    assert run_digests(tmp_path / "skip-pooled") == run_digests(tmp_path / "skip-in-order")
