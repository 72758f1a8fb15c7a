"""End to end through the real CLI on the project's samples."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from testutils import REPO

CURATE = [sys.executable, "-m", "curate.cli"]


def curate(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [*CURATE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "demo"
    result = curate("run", "data_samples/recipe.yaml", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_run_directory_layout_and_manifest(demo_run: Path) -> None:
    assert {p.name for p in demo_run.iterdir()} >= {
        "data",
        "rejects",
        "manifest.json",
        "report.html",
        "README.md",
    }
    assert (demo_run / "data" / "part-00000.parquet").is_file()
    assert (demo_run / "rejects" / "part-00000.parquet").is_file()
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["recipe"]["name"] == "demo"
    assert {s["name"] for s in manifest["sources"]} >= {
        "alpaca",
        "dolly",
        "flan",
        "flan_cot",
        "niv2",
        "sharegpt",
        "chat",
        "history",
        "hf",
        "gpteacher",
    }
    for source in manifest["sources"]:
        # Nothing lost: every row read is either kept or rejected.
        assert source["rows_read"] == source["rows_kept"] + source["rows_rejected"], source["name"]
        for f in source["files"]:
            assert len(f["sha256"]) == 64 and f["size"] > 0 and f["rows_read"] >= 1
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["exact_dedup_v1"]["dropped"].get("exact_duplicate", 0) >= 2
    # Only template expansion multiplies rows; every other stage only drops (with reasons).
    for s in manifest["stages"]:
        assert "seconds" in s
        if s["name"] != "expand_v1":
            assert s["rows_in"] == s["rows_out"] + sum(s["dropped"].values()), s["name"]
    assert [s["key"] for s in manifest["stages"]] == [
        "normalize",
        "exact_dedup",
        "minhash_dedup",
        "quality",
        "language",
        "decontaminate",
        "expand",
        "mix",
    ]
    assert stages["minhash_dedup_v4"]["dropped"] == {"near_duplicate": 1}
    assert stages["mix_v1"]["info"]["realized"] == manifest["outputs"]["records"] == 60
    assert manifest["environment"]["packages"]["pyarrow"]
    # no temporary directory left beside the published run
    assert not [p for p in demo_run.parent.iterdir() if ".partial" in p.name]


def test_query_views_and_formats(demo_run: Path) -> None:
    result = curate(
        "query",
        str(demo_run),
        "SELECT source, count(*) AS n FROM records GROUP BY 1 ORDER BY 1",
        "--format",
        "csv",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == '"source","n"' and any(line.startswith('"dolly"') for line in lines)
    rejects = curate(
        "query",
        str(demo_run),
        "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY ALL",
        "--format",
        "json",
    )
    reasons = {(r["stage"], r["reason"]) for r in map(json.loads, rejects.stdout.splitlines())}
    assert ("exact_dedup_v1", "exact_duplicate") in reasons and ("ingest", "parse_error") in reasons
    stages = curate(
        "query", str(demo_run), "SELECT stage, rows_in, rows_out FROM stages ORDER BY stage_index"
    )
    assert stages.returncode == 0 and "normalize_v2" in stages.stdout


def test_plain_duckdb_reads_the_outputs(demo_run: Path) -> None:
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{demo_run}/data/*.parquet')").fetchone()
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert n is not None and n[0] == manifest["outputs"]["records"]
    # Every duplicate points at a record that exists: in the output (expanded rows keep their
    # original id in parent_id) or, if the mix did not sample it, among the rejects.
    data, rejects = (
        f"read_parquet('{demo_run}/data/*.parquet')",
        f"read_parquet('{demo_run}/rejects/*.parquet')",
    )
    dangling = con.execute(
        f"SELECT count(*) FROM {rejects} r WHERE r.reason = 'exact_duplicate' AND r.duplicate_of NOT IN "
        f"(SELECT coalesce(parent_id, id) FROM {data} UNION SELECT coalesce(parent_id, id) FROM {rejects})"
    ).fetchone()
    total = con.execute(
        f"SELECT count(*) FROM {rejects} WHERE reason = 'exact_duplicate'"
    ).fetchone()
    assert dangling == (0,) and total is not None and total[0] >= 2
    lineage = con.execute(f"SELECT count(*) FROM {data} WHERE parent_id IS NOT NULL").fetchone()
    assert lineage is not None and lineage[0] > 0


def test_stats_and_validate(demo_run: Path) -> None:
    stats = curate("stats", str(demo_run))
    assert stats.returncode == 0 and "exact_duplicate" in stats.stdout
    valid = curate(
        "validate", "data_samples/recipe.yaml", "--set", "stages.1.exact_dedup.fields=[instruction]"
    )
    assert valid.returncode == 0, valid.stderr
    assert "- instruction" in valid.stdout


def test_same_recipe_twice_gives_byte_identical_parquet(demo_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert curate("run", "data_samples/recipe.yaml", "--out", str(again), "-q").returncode == 0
    for sub in ("data", "rejects"):
        for path in (demo_run / sub).glob("*.parquet"):
            assert (
                hashlib.sha256(path.read_bytes()).digest()
                == hashlib.sha256((again / sub / path.name).read_bytes()).digest()
            ), path


def test_rerun_is_a_no_op_and_a_changed_recipe_needs_force(demo_run: Path) -> None:
    manifest = (demo_run / "manifest.json").read_text()
    same = curate("run", "data_samples/recipe.yaml", "--out", str(demo_run))
    assert same.returncode == 0 and "up to date" in same.stderr
    assert (demo_run / "manifest.json").read_text() == manifest
    changed = curate("run", "data_samples/recipe.yaml", "--out", str(demo_run), "--set", "seed=1")
    assert (
        changed.returncode == 4
        and "--force" in changed.stderr
        and "Traceback" not in changed.stderr
    )


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("name: x\nsources: []\n", "sources: List should have at least 1 item"),
        (
            "name: x\nsources:\n  - {name: a, path: data_samples/alpaca.json, formt: alpaca}\n",
            "sources.0.formt: Extra inputs are not permitted",
        ),
        (
            "name: x\nsources:\n  - {name: a, path: data_samples/alpaca.json}\nstages:\n  - exact_dedup: {fields: [nope]}\n",
            "stages.0.exact_dedup.fields.0",
        ),
        (
            "name: x\nsources:\n  - {name: a, path: data_samples/alpaca.json}\nstages:\n  - exact_dedupe: {}\n",
            "unknown stage 'exact_dedupe'; available stages",
        ),
        (
            "name: x\nsources:\n  - {name: a, path: data_samples/alpaca.json, format: alpacca}\n",
            "unknown format 'alpacca'",
        ),
        ("name: [x\n", "invalid YAML"),
    ],
)
def test_bad_recipes_fail_before_work_naming_the_key(
    tmp_path: Path, recipe: str, message: str
) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    result = curate("run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_input_file_is_a_clear_error_and_leaves_no_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "a", "output": "b"},]')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: x\nsources:\n  - {{name: a, path: {bad}}}\n")
    result = curate("run", str(recipe), "--out", str(tmp_path / "out"))
    assert result.returncode == 3
    assert "bad.json:1:38: invalid JSON" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
    missing = curate(
        "run", str(recipe), "--out", str(tmp_path / "out"), "--set", "sources.0.path=nowhere.json"
    )
    assert missing.returncode == 3 and "nowhere.json" in missing.stderr


def test_lenient_source_and_strict_flag(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"instruction": "a", "output": "b"},]')
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"instruction": "a", "output": "b"}\nnot json\n')
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: x\nsources:\n  - {{name: a, path: {bad}, lenient: true}}\n  - {{name: b, path: {jsonl}}}\n"
    )
    ok = curate("run", str(recipe), "--out", str(tmp_path / "out"), "-q")
    assert ok.returncode == 0, ok.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["rows_rejected"] for s in manifest["sources"]] == [0, 1]
    assert "trailing comma" in manifest["sources"][0]["warnings"][0]
    strict = curate("run", str(recipe), "--out", str(tmp_path / "strict"), "--strict")
    assert strict.returncode == 3 and "rows.jsonl, line 2" in strict.stderr


def test_python_api_without_cli() -> None:
    from curate import ExactDedup, Normalize, Pipeline, read_file

    table = read_file(REPO / "data_samples" / "dolly.jsonl", source="dolly").records
    result = Pipeline([Normalize(), ExactDedup(fields=["instruction"])]).run(table)
    assert result.kept.num_rows + result.rejected.num_rows == table.num_rows
    # Everest asked twice; the reef question twice (different passages, same instruction).
    rejected = result.rejected.to_pylist()
    assert [r["reason"] for r in rejected] == ["exact_duplicate", "exact_duplicate"]
    assert [r["instruction"] for r in rejected] == [
        "What is the tallest mountain on Earth?",
        "What is the Great Barrier Reef made of?",
    ]
