"""Expand + mix through the real executor: byte-identical reruns, the funnel, real-data shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from testutils import REPO, SHARED_DATA, needs_shared_data

from curate.engine.run import run_recipe
from curate.recipe import load_recipe

SAMPLE_RECIPE: dict[str, Any] = {
    "name": "expand_mix",
    "seed": 0,
    "sources": [
        {"name": "alpaca", "path": str(REPO / "data_samples" / "alpaca.json")},
        {"name": "dolly", "path": str(REPO / "data_samples" / "dolly.jsonl")},
        {"name": "flan_cot", "path": str(REPO / "data_samples" / "cot_gsm8k_train.tsv")},
        {"name": "niv2", "path": str(REPO / "data_samples" / "niv2_task001_sample_antonyms.json")},
        {"name": "chat", "path": str(REPO / "data_samples" / "sharegpt.json")},
    ],
    "stages": [
        {"normalize": {}},
        {"expand": {"per_record": 2, "seed": 0}},
        {"mix": {"target": 30, "cap": 6, "seed": 0, "weights": {"alpaca": 0.4}}},
    ],
}


def run(tmp_path: Path, recipe: dict[str, Any], name: str) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_recipe(load_recipe(path), out=tmp_path / name, workers=1)
    return result.out_dir, result.manifest


def stage_info(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    (entry,) = [s for s in manifest["stages"] if s["name"] == name]
    return entry["info"]


def test_same_seed_gives_byte_identical_parquet(tmp_path: Path) -> None:
    first, manifest = run(tmp_path, SAMPLE_RECIPE, "one")
    second, _ = run(tmp_path, SAMPLE_RECIPE, "two")
    for folder in ("data", "rejects"):
        files = sorted(p.name for p in (first / folder).glob("*.parquet"))
        assert files and files == sorted(p.name for p in (second / folder).glob("*.parquet"))
        for name in files:
            assert (first / folder / name).read_bytes() == (second / folder / name).read_bytes()
    records = pq.read_table(first / "data")
    assert records.num_rows == 30
    mix = stage_info(manifest, "mix_v1")
    assert mix["by_source"]["alpaca"] == 12  # 40% of 30
    assert sum(mix["by_source"].values()) == 30
    # The funnel adds up per source: every ingested row is in the mix or only in the rejects.
    for source in manifest["sources"]:
        assert source["rows_kept"] + source["rows_rejected"] == source["rows_read"], source["name"]
    other = dict(
        SAMPLE_RECIPE,
        stages=[
            {"normalize": {}},
            {"expand": {"per_record": 2, "seed": 1}},
            SAMPLE_RECIPE["stages"][2],
        ],
    )
    third, _ = run(tmp_path, other, "three")
    assert (third / "data" / files[0]).read_bytes() != (first / "data" / files[0]).read_bytes()


@needs_shared_data
@pytest.mark.realdata
@pytest.mark.slow
def test_real_data_mix_holds_caps_and_weights(tmp_path: Path) -> None:
    recipe = yaml.safe_load((REPO / "bench" / "recipes" / "mix_real.yaml").read_text())
    data = str(SHARED_DATA)
    for source in recipe["sources"]:
        source["path"] = source["path"].replace("../shared/data", data)
    recipe["stages"] = [
        s for s in recipe["stages"] if "normalize" not in s and "exact_dedup" not in s
    ]
    recipe["stages"][-1]["mix"]["target"] = 8000
    out, manifest = run(tmp_path, recipe, "real")
    mix = stage_info(manifest, "mix_v1")
    assert (
        mix["realized"] == 8000 == pq.read_metadata(next((out / "data").glob("*.parquet"))).num_rows
    )
    by_source = mix["by_source"]
    # weights: alpaca 30%, dolly 25%, reasoning 45% = flan_cot 2/3 (0.6667) + niv2 the rest
    assert by_source["alpaca"] == 2400 and by_source["dolly"] == 2000
    assert (
        by_source["flan_cot"] == round(0.6667 * 3600)
        and by_source["niv2"] == 3600 - by_source["flan_cot"]
    )
    for unit in mix["units"]:
        assert abs(unit["realized"] - unit["expected"]) < 1, unit
    # within a source, tasks take shares proportional to min(n, cap)
    dolly = [u for u in mix["units"] if u["source"] == "dolly"]
    masses = sum(min(u["available"], 3000) for u in dolly)
    for unit in dolly:
        assert abs(unit["realized"] - 2000 * min(unit["available"], 3000) / masses) < 1
    assert (
        mix["diversity"]["tasks"] == len(mix["units"])
        and mix["diversity"]["largest_task"] == "alpaca"
    )
    expand = stage_info(manifest, "expand_v1")
    assert expand["balance"]["max_spread"] <= 1
    assert set(mix["by_template_type"]) >= {"zs_noopt", "zs_opt", "fs_noopt", "fs_opt", "cot"}
