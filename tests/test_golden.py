"""Golden end-to-end test: the demo recipe gives the recorded output, byte for byte.

A refactor must not change what curate keeps or drops. ``tests/golden/demo.json`` holds, for
``data_samples/recipe.yaml``, a digest of every output and reject row (independent of the parquet
writer) and the sha256 of each parquet file (checked with the pyarrow version that recorded it,
since parquet bytes depend on the writer). Regenerate it only for an intended behaviour change:
``python tests/test_golden.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.engine.run import run_recipe
from curate.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "demo.json"


def _rows_digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        table: pa.Table = pq.read_table(path)
        for row in table.to_pylist():
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            digest.update(b"\n")
    return digest.hexdigest()


def digest_run(run_dir: Path) -> dict[str, object]:
    """Row digests and file hashes of a run directory's data/ and rejects/."""
    rows: dict[str, str] = {}
    files: dict[str, str] = {}
    for folder in ("data", "rejects"):
        parts = sorted((run_dir / folder).glob("*.parquet"))
        rows[folder] = _rows_digest(parts)
        for path in parts:
            files[f"{folder}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"pyarrow": pa.__version__, "rows": rows, "files": files}


def snapshot(out: Path) -> dict[str, object]:
    recipe_path = REPO / "data_samples" / "recipe.yaml"
    result = run_recipe(load_recipe(recipe_path), out=out, workers=1, recipe_path=recipe_path)
    return digest_run(result.out_dir)


def test_demo_recipe_output_matches_the_golden_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the recipe's paths are relative to the repository root
    expected = json.loads(GOLDEN.read_text())
    found = snapshot(tmp_path / "demo")
    assert found["rows"] == expected["rows"], "the demo recipe keeps or drops different rows"
    if found["pyarrow"] == expected["pyarrow"]:
        assert found["files"] == expected["files"], "same rows, but the parquet bytes changed"


if __name__ == "__main__" and sys.argv[1:2] == ["--digest"]:
    print(json.dumps(digest_run(Path(sys.argv[2])), indent=2, sort_keys=True))
elif __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import os
    import tempfile

    os.chdir(REPO)
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(json.dumps(snapshot(Path(tmp) / "demo"), indent=2, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
