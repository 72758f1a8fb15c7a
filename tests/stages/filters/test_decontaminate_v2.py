"""decontaminate_v2: one-word edits of short benchmark questions, and matches that cover most of an
item rather than one famous sentence of it (bench/audit/benchmark_ngram.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate.stages import Decontaminate, DecontaminateV2, get_stage

from .conftest import DATA, make_table

# A 20-word question: an edit in the middle leaves no intact 13-word window.
SHORT_GSM = "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?"
PASSAGE = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
    "of foolishness, it was the epoch of belief, it was the epoch of incredulity"
)
# A long reading-comprehension item that quotes a famous passage, then asks its own question.
LONG_ITEM = (
    f"This question refers to the following information. {PASSAGE}. There were a king with a large "
    "jaw and a queen with a plain face, on the throne of England; there were a king with a large jaw "
    "and a queen with a fair face, on the throne of France. Bliss was it in that dawn to be alive. "
    "But to be young was very heaven. Dickens's and Wordsworth's differing views about the French "
    "Revolution can be described, respectively, by which of the following adjectives? Options: "
    "A. Optimistic, encouraged, B. Understanding, accepting, C. Cynical, enthusiastic"
)


@pytest.fixture
def benchmarks(tmp_path: Path) -> list[str]:
    rows = [{"question": SHORT_GSM, "answer": "#### 3"}, {"question": LONG_ITEM, "answer": "C"}]
    path = tmp_path / "gsm8k_test.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return [str(path)]


def test_recipe_key_resolves_to_v2() -> None:
    assert get_stage("decontaminate") is DecontaminateV2
    assert get_stage("decontaminate_v1") is Decontaminate


def test_one_word_edits_of_a_short_question_are_caught(benchmarks: list[str]) -> None:
    words = SHORT_GSM.split()
    rows = [
        {"instruction": " ".join([*words[:10], "really", *words[11:]]), "output": "3"},  # replaced
        {"instruction": " ".join(words[:10] + words[11:]), "output": "3"},  # dropped
        {"instruction": " ".join([*words[:10], "very", *words[10:]]), "output": "3"},  # added
        {"instruction": "Solve: " + " ".join([*words[:3], "three", *words[4:]]), "output": "3"},
    ]
    v1 = Decontaminate(benchmarks=benchmarks).run(make_table(rows))
    v2 = DecontaminateV2(benchmarks=benchmarks).run(make_table(rows))
    # v1 sees only the edit near the start (17 intact words); a middle edit hides every 13-gram.
    assert v1.rejected.column("id").to_pylist() == ["r3"]
    assert v2.kept.num_rows == 0
    reasons = dict(
        zip(
            v2.rejected.column("id").to_pylist(),
            v2.rejected.column("reason").to_pylist(),
            strict=True,
        )
    )
    assert reasons == {
        "r0": "benchmark_edited",
        "r1": "benchmark_edited",
        "r2": "benchmark_edited",
        "r3": "benchmark_ngram",  # 17 of 21 words in shared windows
    }
    assert all("row 0" in d for d in v2.rejected.column("detail").to_pylist())


def test_two_edits_and_other_questions_are_not_contamination(benchmarks: list[str]) -> None:
    words = SHORT_GSM.split()
    rows = [
        {"instruction": " ".join([*words[:4], "x", *words[5:12], "y", *words[13:]]), "output": "3"},
        {
            "instruction": "A robe takes 2 bolts of blue fiber. What color is the robe?",
            "output": "b",
        },
        {"instruction": "How many bolts in total does it take to build a bridge?", "output": "9"},
    ]
    result = DecontaminateV2(benchmarks=benchmarks).run(make_table(rows))
    assert result.rejected.num_rows == 0, result.rejected.column("detail").to_pylist()


def test_a_famous_quote_is_not_the_item_that_quotes_it(benchmarks: list[str]) -> None:
    quote = {
        "instruction": "Classify the genre of this passage.",
        "input": PASSAGE,
        "output": "Novel",
    }
    copied = {"instruction": "Think step by step and answer this: " + LONG_ITEM, "output": "C"}
    v1 = Decontaminate(benchmarks=benchmarks).run(make_table([quote, copied]))
    v2 = DecontaminateV2(benchmarks=benchmarks).run(make_table([quote, copied]))
    assert v1.rejected.num_rows == 2
    assert v2.kept.column("instruction").to_pylist() == ["Classify the genre of this passage."]
    assert v2.rejected.column("reason").to_pylist() == ["benchmark_ngram"]
    assert "100% of the item" in v2.rejected.column("detail")[0].as_py()


@pytest.mark.realdata
@pytest.mark.skipif(not (DATA / "eval").exists(), reason="needs ../shared/data")
def test_real_gsm8k_one_word_edits_are_caught() -> None:
    from curate.ingest import read_file

    gsm_path = DATA / "eval" / "gsm8k" / "test.jsonl.gz"
    gsm = read_file(gsm_path, source="gsm").records.slice(0, 200).to_pylist()
    short = [r["instruction"] for r in gsm if len(r["instruction"].split()) <= 26][:20]
    assert short, "GSM8K has questions of at most 26 words"
    rows = []
    for question in short:
        words = question.split()
        middle = len(words) // 2
        rows.append({"instruction": " ".join([*words[:middle], "really", *words[middle + 1 :]])})
    table = make_table([{**r, "output": "42"} for r in rows])
    result = DecontaminateV2(benchmarks=[str(gsm_path)]).run(table)
    assert result.rejected.num_rows == len(rows)
    assert Decontaminate(benchmarks=[str(gsm_path)]).run(table).rejected.num_rows < len(rows)
