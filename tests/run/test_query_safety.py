"""`curate query` is read-only and contained unless --unsafe: no writes, no outside files, one
statement, a time limit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from testutils import SAMPLES

from curate.engine.run import run_recipe
from curate.errors import CurateError
from curate.recipe import parse_recipe
from curate.run.query import run_query


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = parse_recipe(
        {
            "name": "q",
            "sources": [{"name": "dolly", "path": str(SAMPLES / "dolly.jsonl")}],
            "stages": [{"normalize": {}}, {"exact_dedup": {}}],
        }
    )
    return run_recipe(recipe, out=tmp_path_factory.mktemp("runs") / "q", workers=1).out_dir


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_reading_works(run_dir: Path) -> None:
    rows = run_query(run_dir, "SELECT count(*) AS n FROM records").column("n")[0].as_py()
    assert rows > 0
    explained = run_query(run_dir, "EXPLAIN SELECT * FROM rejects")
    assert explained.num_rows >= 1
    with_cte = run_query(run_dir, "WITH s AS (SELECT * FROM stages) SELECT count(*) FROM s")
    assert with_cte.column(0)[0].as_py() == 2


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM records) TO '{run}/data/part-99999.parquet'",
        "COPY (SELECT 1) TO '{tmp}/out.csv'",
        "ATTACH '{tmp}/new.duckdb' AS x",
        "EXPORT DATABASE '{tmp}/dump'",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; COPY (SELECT 1) TO '{tmp}/two.csv'",
        "INSTALL httpfs",
        "SET enable_external_access = true",
    ],
)
def test_writes_and_other_statements_are_refused(run_dir: Path, tmp_path: Path, sql: str) -> None:
    before = _tree(run_dir)
    with pytest.raises(CurateError, match=r"read-only|one statement"):
        run_query(run_dir, sql.format(run=run_dir, tmp=tmp_path))
    assert _tree(run_dir) == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_parquet('{samples}/../tests/golden/*.parquet')",
        "SELECT * FROM read_csv('{samples}/cot_gsm8k_train.tsv')",
    ],
)
def test_files_outside_the_run_cannot_be_read(run_dir: Path, sql: str) -> None:
    with pytest.raises(CurateError, match="query failed: Permission Error"):
        run_query(run_dir, sql.format(samples=SAMPLES))


def test_a_long_query_is_stopped(run_dir: Path) -> None:
    with pytest.raises(CurateError, match=r"stopped after 0.5 s"):
        run_query(run_dir, "SELECT count(*) FROM range(1000000000000) a", timeout=0.5)


def test_unsafe_is_plain_duckdb(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    run_query(run_dir, f"COPY (SELECT count(*) FROM records) TO '{target}'", unsafe=True)
    assert target.read_text().strip().splitlines()[-1].isdigit()
