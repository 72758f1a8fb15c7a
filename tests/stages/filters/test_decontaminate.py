"""Decontamination against small eval files in the real benchmark formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.errors import StageError
from curate.records import RECORD_SCHEMA
from curate.stages import Decontaminate, get_stage

from .conftest import DATA, make_table

GSM = [
    {
        "question": "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
        "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18",
    },
    {
        "question": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?",
        "answer": "#### 3",
    },
]
MMLU_INSTRUCTION = "Please answer the following multiple-choice question honestly."
MMLU = [
    {
        "instruction": MMLU_INSTRUCTION,
        "input": f"Question: Which planet is known as the red planet number {i}? Options: A. Venus, B. Mars, C. Jupiter, D. Saturn",
        "output": "B",
    }
    for i in range(3)
]
VICUNA = [
    {
        "question_id": 1,
        "category": "generic",
        "turns": ["How can I improve my time management skills?"],
    }
]


@pytest.fixture
def benchmarks(tmp_path: Path) -> list[str]:
    (tmp_path / "gsm8k_test.jsonl").write_text("\n".join(json.dumps(r) for r in GSM) + "\n")
    (tmp_path / "mmlu.json").write_text(json.dumps(MMLU))
    (tmp_path / "vicuna").mkdir()
    (tmp_path / "vicuna" / "question.jsonl").write_text(
        "\n".join(json.dumps(r) for r in VICUNA) + "\n"
    )
    return [
        str(tmp_path / "gsm8k_test.jsonl"),
        str(tmp_path / "mmlu.json"),
        str(tmp_path / "vicuna" / "*.jsonl"),
    ]


CLEAN = [
    {"instruction": "Name a popular messaging app.", "output": "Telegram"},
    {
        "instruction": MMLU_INSTRUCTION,
        "input": "Question: What is 2 + 2? Options: A. 3, B. 4",
        "output": "B",
    },
    {"instruction": "How can I improve my cooking skills?", "output": "Practice."},
    {
        "instruction": "Janet has ducks.",
        "output": "Ducks lay eggs per day and she eats three for breakfast.",
    },
]


def test_registered_and_default_is_a_noop() -> None:
    assert get_stage("decontaminate_v1") is Decontaminate
    table = make_table(CLEAN)
    kept, rejected = Decontaminate().run(table)
    assert kept.num_rows == len(CLEAN) and rejected.num_rows == 0
    assert kept.column("decontam_ngram_hits").to_pylist() == [0] * len(CLEAN)


def test_clean_rows_are_kept(benchmarks: list[str]) -> None:
    kept, rejected = Decontaminate(benchmarks=benchmarks).run(make_table(CLEAN))
    assert rejected.num_rows == 0, rejected.column("detail").to_pylist()
    assert kept.num_rows == len(CLEAN)


def test_planted_contamination_is_caught_with_provenance(benchmarks: list[str]) -> None:
    q = GSM[0]["question"]
    planted = [
        {"instruction": q, "output": "18"},  # verbatim
        {
            "instruction": "Solve this math problem step by step.",
            "input": q.upper().replace(".", "!"),
            "output": "$18",
        },  # case/punct
        {
            "instruction": "Answer: " + q.replace("sells the remainder", "sells what is left"),
            "output": "18",
        },  # light edit
        {
            "instruction": "how can i improve my time management skills",
            "output": "Plan your day.",
        },  # exact, short
        {
            "instruction": "Which planet is known as the red planet number 1? Options: A. Venus, B. Mars, C. Jupiter, D. Saturn",
            "output": "Mars",
        },
        {
            "instruction": "Hi",
            "output": "x",
            "messages": [
                {"role": "user", "content": "How can I improve my time management skills?"},
                {"role": "assistant", "content": "Plan."},
            ],
        },
    ]
    kept, rejected = Decontaminate(benchmarks=benchmarks).run(make_table(planted + CLEAN))
    assert kept.num_rows == len(CLEAN)
    by_id = {r["id"]: r for r in rejected.to_pylist()}
    assert by_id["r0"]["reason"] == "benchmark_exact"
    assert by_id["r1"]["reason"] == "benchmark_exact"  # case and punctuation do not hide it
    assert by_id["r2"]["reason"] == "benchmark_ngram"
    assert by_id["r3"]["reason"] == "benchmark_exact"
    assert by_id["r5"]["reason"] == "benchmark_exact"
    assert "gsm8k_test.jsonl row 0" in by_id["r1"]["detail"]
    assert "vicuna/question.jsonl row 0" in by_id["r3"]["detail"]
    assert "mmlu.json row 1" in by_id["r4"]["detail"]
    assert by_id["r1"]["duplicate_of"] and by_id["r1"]["stage"] == "decontaminate_v1"


def test_ngram_size_is_configurable(benchmarks: list[str]) -> None:
    # 9 consecutive question words: caught with ngram 8, not with the default 13.
    row = {
        "instruction": "Tell me: she eats three for breakfast every morning and bakes muffins, ok?",
        "output": "ok",
    }
    assert Decontaminate(benchmarks=benchmarks).run(make_table([row])).rejected.num_rows == 0
    assert (
        Decontaminate(benchmarks=benchmarks, ngram=8).run(make_table([row])).rejected.num_rows == 1
    )


def test_template_instruction_alone_is_not_contamination(benchmarks: list[str]) -> None:
    row = {
        "instruction": MMLU_INSTRUCTION,
        "input": "Question: What color is the sky? Options: A. Blue, B. Red",
        "output": "A",
    }
    assert Decontaminate(benchmarks=benchmarks).run(make_table([row])).rejected.num_rows == 0


def test_missing_benchmark_is_an_actionable_error(tmp_path: Path) -> None:
    stage = Decontaminate(benchmarks=[str(tmp_path / "nope.jsonl")])
    with pytest.raises(StageError, match=r"nope\.jsonl"):
        stage.run(make_table(CLEAN))


def test_manifest_info_and_empty_table(benchmarks: list[str]) -> None:
    stage = Decontaminate(benchmarks=benchmarks)
    kept, rejected = stage.run(RECORD_SCHEMA.empty_table())
    assert kept.num_rows == 0 and rejected.num_rows == 0
    info = stage.manifest_info()
    assert info["items"] == len(GSM) + len(MMLU) + len(VICUNA)
    assert all(len(f["sha256"]) == 64 for f in info["benchmarks"])
    assert Decontaminate(stage.params.model_dump()).params == stage.params


@pytest.mark.realdata
@pytest.mark.skipif(not (DATA / "eval").exists(), reason="needs ../shared/data")
def test_real_benchmarks_index_and_dolly_is_clean() -> None:
    from curate.ingest import read_file

    eval_dir = DATA / "eval"
    stage = Decontaminate(
        benchmarks=[
            str(eval_dir / "gsm8k" / "test.jsonl.gz"),
            str(eval_dir / "mmlu_test_1444.json.gz"),
            str(eval_dir / "*_bench" / "question.jsonl"),
        ]
    )
    dolly = read_file(DATA / "dolly" / "databricks-dolly-15k.jsonl.gz", source="dolly").records
    assert stage.run(dolly).rejected.num_rows == 0
    gsm = read_file(eval_dir / "gsm8k" / "test.jsonl.gz", source="gsm").records.slice(0, 50)
    assert stage.run(gsm).rejected.num_rows == 50


def test_unreadable_benchmark_fails_the_run_before_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curate.engine.run import run_recipe
    from curate.recipe import parse_recipe

    odd = tmp_path / "answers.jsonl"
    odd.write_text(json.dumps({"answer_id": "a", "choices": [], "model_id": "m"}) + "\n")
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"instruction": "q", "input": "", "output": "a"}) + "\n")
    recipe = parse_recipe(
        {
            "name": "r",
            "sources": [{"name": "s", "path": str(train)}],
            "stages": [{"normalize": {}}, {"decontaminate": {"benchmarks": [str(odd)]}}],
            "output": str(tmp_path / "run"),
        }
    )
    with pytest.raises(StageError, match=r"decontaminate\.benchmarks: .*answers\.jsonl"):
        run_recipe(recipe, workers=1)
    # nothing was read or written: the failure came before ingest
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / ".run.partial").exists()
