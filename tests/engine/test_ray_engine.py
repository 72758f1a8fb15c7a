"""The Ray engine gives byte-identical output to the local engine (runs in CI on a local 2-CPU Ray).

``minhash_dedup`` runs its band grouping as a keyed repartition on Ray (manifest
``info.engine_path == "ray_band_repartition"``); settings it cannot split run as one task.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testutils import REPO, run_digests

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")

from curate.engine.ray_engine import (
    BAND_PATH,
    SHARD_TASKS_PATH,
    SINGLE_TASK_PATH,
    RayExecutor,
    SplitPartError,
    check_whole_parts,
)
from curate.engine.run import RunResult, run_recipe
from curate.recipe import Recipe, load_recipe, parse_recipe

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local 2-CPU Ray instance for the whole module (the engine reuses a running one)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def stage_info(run: RunResult, index: int) -> dict[str, Any]:
    info: dict[str, Any] = run.manifest["stages"][index]["info"]
    return info


def assert_same_runs(local: RunResult, distributed: RunResult) -> None:
    assert distributed.manifest["engine"]["name"] == "ray"
    assert local.manifest["engine"]["batches"] == distributed.manifest["engine"]["batches"]
    assert run_digests(local.out_dir) == run_digests(distributed.out_dir)
    assert local.manifest["rows"] == distributed.manifest["rows"]
    assert [s["dropped"] for s in local.manifest["stages"]] == [
        s["dropped"] for s in distributed.manifest["stages"]
    ]


def test_ray_output_is_identical_to_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    recipe = load_recipe(REPO / "data_samples" / "recipe.yaml", ["batch_size=5"])
    local = run_recipe(recipe, out=tmp_path / "local", workers=1)
    distributed = run_recipe(recipe, out=tmp_path / "ray", workers=2, engine="ray")
    assert local.manifest["engine"]["batches"] > 3
    assert_same_runs(local, distributed)
    keys = [s["key"] for s in distributed.manifest["stages"]]
    near = keys.index("minhash_dedup")
    assert stage_info(distributed, near)["engine_path"] == BAND_PATH
    assert "engine_path" not in stage_info(local, near)
    # exact_dedup's fit parts and both stages' shards run as tasks of their own (a part of the
    # fit per shard, a fitted copy per shard), with the same output and the same manifest counts.
    exact, expand, mix = keys.index("exact_dedup"), keys.index("expand"), keys.index("mix")
    assert stage_info(distributed, exact) == {
        "engine_path": SHARD_TASKS_PATH,
        "fit": "parts",
        "apply": "shards",
    }
    expand_info = stage_info(distributed, expand)
    assert expand_info.pop("engine_path") == SHARD_TASKS_PATH
    assert expand_info.pop("apply") == "shards"
    assert expand_info == stage_info(local, expand)
    assert expand_info["few_shot"]["rows"] > 0
    mix_info = stage_info(distributed, mix)
    assert (mix_info.pop("engine_path"), mix_info.pop("fit"), mix_info.pop("apply")) == (
        SHARD_TASKS_PATH,
        "parts",
        "shards",
    )
    assert mix_info == stage_info(local, mix)


# --------------------------------------------------------------- near-duplicate clusters

VOCAB = [f"w{i}" for i in range(2000)]


def write_near_duplicates(directory: Path, bases: int = 150, seed: int = 0) -> None:
    """Two sources of records in which most bases have 1-4 near-duplicate variants (word edits)
    scattered over the stream, some only in the output, some in both sources."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for b in range(bases):
        instruction = [rng.choice(VOCAB) for _ in range(20)]
        context = [rng.choice(VOCAB) for _ in range(40)] if b % 2 else []
        output = [rng.choice(VOCAB) for _ in range(30)]
        rows.append(
            {
                "instruction": " ".join(instruction),
                "input": " ".join(context),
                "output": " ".join(output),
            }
        )
        for _ in range(rng.choice([0, 1, 2, 4])):
            variant = [list(instruction), list(context), list(output)]
            for part in variant:
                for _ in range(rng.choice([0, 1, 2])):
                    if part:
                        part[rng.randrange(len(part))] = rng.choice(VOCAB)
            if rng.random() < 0.3:  # a different question with (nearly) the same answer
                variant[0] = [rng.choice(VOCAB) for _ in range(20)]
            rows.append(
                {
                    "instruction": " ".join(variant[0]).upper()
                    if rng.random() < 0.3
                    else " ".join(variant[0]),
                    "input": " ".join(variant[1]),
                    "output": " ".join(variant[2])
                    + ("" if rng.random() < 0.5 else " extra words here"),
                }
            )
    rng.shuffle(rows)
    for name, part in (("a", rows[::2]), ("b", rows[1::2])):
        with (directory / f"{name}.jsonl").open("w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in part)


def near_duplicate_recipe(directory: Path, stages: list[dict[str, Any]]) -> Recipe:
    return parse_recipe(
        {
            "name": "near",
            "batch_size": 40,
            "sources": [
                {"name": "a", "path": str(directory / "a.jsonl"), "format": "alpaca"},
                {"name": "b", "path": str(directory / "b.jsonl"), "format": "alpaca"},
            ],
            "stages": [{"normalize": {}}, *stages],
            "output": str(directory / "out"),
        }
    )


def test_band_repartition_equals_local_on_near_duplicate_clusters(tmp_path: Path) -> None:
    write_near_duplicates(tmp_path)
    stages: list[dict[str, Any]] = [
        {"minhash_dedup_v1": {"field_thresholds": {"instruction": 0.5}}},
        # Same answers to different questions, by char shingles with many false candidates
        # (rows=2: chains that verification must cut), the estimate, transitive clusters.
        {
            "minhash_dedup_v1": {
                "fields": ["output"],
                "shingle": "char",
                "rows": 2,
                "verify": "estimate",
                "clusters": "connected",
                "keep": ["shorter_output", "first"],
            }
        },
    ]
    recipe = near_duplicate_recipe(tmp_path, stages)
    local = run_recipe(recipe, out=tmp_path / "local", workers=1)
    distributed = run_recipe(recipe, out=tmp_path / "ray", workers=2, engine="ray")
    assert local.manifest["engine"]["batches"] >= 8
    assert_same_runs(local, distributed)
    for index in (1, 2):
        info = stage_info(distributed, index)
        assert info["engine_path"] == BAND_PATH
        assert info["band_partitions"] >= 2
        assert info["band_rows"] > 0
        # The distributed grouping found exactly the local candidates.
        assert info["candidate_pairs"] == stage_info(local, index)["candidate_pairs"]
    first, second = stage_info(local, 1), stage_info(local, 2)
    assert first["removed"] > 50 and first["largest_cluster"] >= 4
    assert second["removed"] > 50 and second["candidate_pairs"] > 5 * second["verified_pairs"]


def test_settings_that_cannot_split_run_as_one_task_with_the_same_output(tmp_path: Path) -> None:
    write_near_duplicates(tmp_path, bases=60, seed=1)
    recipe = near_duplicate_recipe(
        tmp_path,
        [
            {"minhash_dedup_v1": {"cross_source": False}},
            {"minhash_dedup_v1": {"fields": ["output"], "store_signatures": True}},
        ],
    )
    local = run_recipe(recipe, out=tmp_path / "local", workers=1)
    distributed = run_recipe(recipe, out=tmp_path / "ray", workers=2, engine="ray")
    assert_same_runs(local, distributed)
    for index, setting in ((1, "cross_source"), (2, "store_signatures")):
        info = stage_info(distributed, index)
        assert info["engine_path"] == SINGLE_TASK_PATH
        assert setting in info["engine_fallback"]
        assert info["removed"] == stage_info(local, index)["removed"] > 0
    # The switch the benchmark uses: every stage as one task, same output.
    single = RayExecutor(workers=2, band_grouping=False).run(recipe, out=tmp_path / "single")
    assert run_digests(single.out_dir) == run_digests(local.out_dir)
    assert "disabled" in single.manifest["stages"][1]["info"]["engine_fallback"]


def test_a_part_split_between_blocks_is_detected() -> None:
    check_whole_parts([np.array([1, 5], np.uint32), np.array([2], np.uint32)])
    check_whole_parts([])
    with pytest.raises(SplitPartError):
        check_whole_parts([np.array([1, 5], np.uint32), np.array([5, 7], np.uint32)])


def test_pii_and_toxicity_on_ray_equal_local(tmp_path: Path) -> None:
    rows = [
        {
            "instruction": f"Mail ann.lee{i}@gmail.com about order {i}",
            "input": "",
            "output": "Done.",
        }
        for i in range(30)
    ]
    rows[7]["output"] = "Shut up, you fucking idiot."
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = parse_recipe(
        {
            "name": "private",
            "batch_size": 5,
            "sources": [{"name": "s", "path": str(tmp_path / "rows.jsonl")}],
            "stages": [{"normalize": {}}, {"pii": {}}, {"toxicity": {}}],
            "output": str(tmp_path / "out"),
        }
    )
    local = run_recipe(recipe, out=tmp_path / "local", workers=1)
    distributed = run_recipe(recipe, out=tmp_path / "ray", workers=2, engine="ray")
    assert_same_runs(local, distributed)
    assert stage_info(distributed, 1)["found"] == {"email": {"redact": 30}}
    assert distributed.manifest["stages"][2]["dropped"] == {"toxic": 1}


def test_embedding_stages_on_ray_equal_local(tmp_path: Path) -> None:
    pytest.importorskip("wordllama", reason="the static embedder is extra [embed]")
    questions = [
        "Which country has the largest population?",
        "Which country has the biggest population?",
        "How do you train for a marathon?",
        "How would you train for a marathon?",
        "Name three primary colors.",
        "Write a haiku about the sea.",
        "What is the capital of France?",
        "Explain photosynthesis in one sentence.",
    ]
    rows = [
        {"instruction": q, "input": "", "output": f"Answer number {i} " + "x" * i}
        for i, q in enumerate(questions * 3)
    ]
    for i, row in enumerate(rows):
        row["instruction"] += f" ({i // len(questions)})" if i >= len(questions) else ""
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = parse_recipe(
        {
            "name": "meaning",
            "batch_size": 5,
            "sources": [{"name": "s", "path": str(tmp_path / "rows.jsonl")}],
            "stages": [
                {"normalize": {}},
                {"semantic_dedup": {}},
                {"response_format": {}},
                {"select": {"budget": 10, "score": "length(output)"}},
            ],
            "output": str(tmp_path / "out"),
        }
    )
    local = run_recipe(recipe, out=tmp_path / "local", workers=1)
    distributed = run_recipe(recipe, out=tmp_path / "ray", workers=2, engine="ray")
    assert_same_runs(local, distributed)
    dropped = distributed.manifest["stages"][1]["dropped"]
    assert dropped.get("semantic_duplicate", 0) >= 2
    # select keeps at most its budget, and never two rows at cosine >= 0.9 (the same questions
    # with another number in brackets are "not selected" as too similar).
    assert 0 < distributed.manifest["rows"]["output_records"] <= 10
    assert distributed.manifest["stages"][3]["dropped"]["not_selected"] > 0


def test_without_an_address_a_new_local_instance_is_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's bare init() attaches to the cluster it last recorded on the machine (a stale record
    then fails with "num_cpus ... must not be provided"): curate asks for a local one."""
    from curate.engine import ray_engine

    calls: list[dict[str, Any]] = []

    class FakeRay:
        class data:
            class DataContext:
                @staticmethod
                def get_current() -> Any:
                    return type("Context", (), {"execution_options": type("O", (), {})()})()

        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**kwargs: Any) -> None:
            calls.append(kwargs)

    monkeypatch.setattr(ray_engine, "_require_ray", lambda: FakeRay)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_engine.RayExecutor(workers=2)
    assert calls[-1]["address"] == "local" and calls[-1]["num_cpus"] == 2
    ray_engine.RayExecutor(address="ray://10.0.0.1:10001")
    assert calls[-1]["address"] == "ray://10.0.0.1:10001" and "num_cpus" not in calls[-1]
