"""report.html: present in every run, numbers equal to the manifest and the data, no network,
renders in headless Chromium (skipped when Debian's ``chromium`` is not installed)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest
from testutils import REPO

from curate.engine.run import run_recipe
from curate.recipe import load_recipe
from curate.run.report import REPORT, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "demo"
    recipe = load_recipe(REPO / "data_samples" / "recipe.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # the recipe's paths are repo-relative
        run_recipe(recipe, out=out, workers=1)
    return out


class _Tables(HTMLParser):
    """Collects the text of every <tr data-*> row of the tables the test looks at."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._key: str | None = None
        self._cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr":
            for name in ("data-step", "data-source", "data-reason"):
                if attributes.get(name):
                    self._key = f"{name[5:]}:{attributes[name]}"
                    self._cells = []
        elif tag == "td" and self._key:
            self._in_cell = True
            self._cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        elif tag == "tr" and self._key:
            self.rows[self._key] = [c.strip() for c in self._cells]
            self._key = None

    def handle_data(self, data: str) -> None:
        if self._in_cell and self._cells:
            self._cells[-1] += data


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _summary(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="curate-report-data">(.*?)</script>', html, re.S
    )
    assert match, "the report embeds its numbers as JSON"
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def test_every_run_has_a_report_whose_numbers_match_the_manifest(demo_run: Path) -> None:
    manifest = json.loads((demo_run / "manifest.json").read_text())
    html = (demo_run / REPORT).read_text(encoding="utf-8")
    summary = _summary(html)
    assert summary["rows"] == manifest["rows"]

    stages = manifest["stages"]
    assert [s["step"] for s in summary["funnel"]] == ["ingest", *[s["name"] for s in stages]]
    for step, stage in zip(summary["funnel"][1:], stages, strict=True):
        assert (step["rows_in"], step["rows_out"], step["dropped"]) == (
            stage["rows_in"],
            stage["rows_out"],
            stage["dropped"],
        )
    ingest = summary["funnel"][0]
    assert ingest["rows_in"] == manifest["rows"]["read"]
    assert ingest["rows_out"] == stages[0]["rows_in"]

    by_name = {s["name"]: s for s in manifest["sources"]}
    for source in summary["sources"]:
        expected = by_name[source["name"]]
        assert source["rows_read"] == expected["rows_read"]
        assert source["rows_kept"] == expected["rows_kept"]
        assert source["rows_rejected"] == expected["rows_rejected"]

    con = duckdb.connect()
    records = dict(
        con.sql(
            f"SELECT source, count(*) FROM read_parquet('{demo_run}/data/*.parquet') GROUP BY 1"
        ).fetchall()
    )
    assert {s["name"]: s["records"] for s in summary["sources"] if s["records"]} == records
    rejects = {
        f"{stage}/{reason}": n
        for stage, reason, n in con.sql(
            f"SELECT stage, reason, count(*) FROM read_parquet('{demo_run}/rejects/*.parquet') "
            "GROUP BY ALL"
        ).fetchall()
    }
    assert summary["rejects_by_reason"] == rejects


def test_visible_tables_show_the_same_numbers(demo_run: Path) -> None:
    manifest = json.loads((demo_run / "manifest.json").read_text())
    parser = _Tables()
    parser.feed((demo_run / REPORT).read_text(encoding="utf-8"))
    for stage in manifest["stages"]:
        cells = parser.rows[f"step:{stage['name']}"]
        # columns: #, stage, kind, rows in, rows out, dropped, reasons, seconds
        assert _number(cells[3]) == stage["rows_in"]
        assert _number(cells[4]) == stage["rows_out"]
        assert _number(cells[5]) == sum(stage["dropped"].values())
        for reason in stage["dropped"]:
            assert reason in cells[6]
    for source in manifest["sources"]:
        cells = parser.rows[f"source:{source['name']}"]
        assert _number(cells[4]) == source["rows_read"]
        assert _number(cells[5]) == source["rows_kept"]
        assert _number(cells[6]) == source["rows_rejected"]
    reject_rows = {k for k in parser.rows if k.startswith("reason:")}
    assert reject_rows, "the rejects table lists every (stage, reason)"


def test_report_shows_examples_and_is_self_contained(demo_run: Path) -> None:
    html = (demo_run / REPORT).read_text(encoding="utf-8")
    for section in ("funnel", "sources", "languages", "tasks", "lengths", "duplicates", "rejects"):
        assert f'id="{section}"' in html
    assert html.count("<svg") >= 6
    # a duplicate cluster shows the removed row's text and its keeper
    con = duckdb.connect()
    [(instruction, keeper)] = con.execute(
        f"SELECT instruction, duplicate_of FROM read_parquet('{demo_run}/rejects/*.parquet') "
        "WHERE reason = 'exact_duplicate' ORDER BY source_file, source_row LIMIT 1"
    ).fetchall()
    assert keeper in html
    assert instruction.replace("'", "&#39;") in html
    # nothing is fetched: no scripts, stylesheets, images or fonts from anywhere
    without_namespaces = re.sub(r"xmlns='[^']*'", "", html)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", without_namespaces)
    assert "@import" not in html and "url(" not in html


def test_report_is_rebuilt_identically(demo_run: Path, tmp_path: Path) -> None:
    again = write_report(demo_run, tmp_path / "again.html")
    assert again.read_bytes() == (demo_run / REPORT).read_bytes()


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_renders_in_headless_chromium(demo_run: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    url = (demo_run / REPORT).resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the browser parsed the whole page: the last section and the data island are in its DOM
    assert 'id="rejects"' in dom.stdout and 'id="curate-report-data"' in dom.stdout
    assert dom.stdout.count("<svg") >= 6
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [CHROMIUM, *flags, "--window-size=1280,2400", f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _png_size(shot) == (1280, 2400)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one


def test_run_directory_loads_with_datasets(demo_run: Path, tmp_path: Path) -> None:
    import datasets

    manifest = json.loads((demo_run / "manifest.json").read_text())
    cache = str(tmp_path / "hf-cache")
    records = datasets.load_dataset(str(demo_run), split="train", cache_dir=cache)
    rejects = datasets.load_dataset(str(demo_run), "rejects", split="train", cache_dir=cache)
    assert records.num_rows == manifest["outputs"]["records"]
    assert rejects.num_rows == manifest["outputs"]["rejects"]
    assert records.column_names == manifest["outputs"]["columns"]
    assert {"stage", "reason", "duplicate_of"} <= set(rejects.column_names)
