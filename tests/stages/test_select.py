"""select: the greedy selection under a budget equals a brute-force reference over all pairs;
every row not taken says why; per-group budgets, scores (a column or a DuckDB expression), the
diversity knob; the same rows whatever the batches."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import StageError
from curate.lib import embed
from curate.records import RECORD_SCHEMA
from curate.stages import get_stage
from curate.stages.select import Select

pytest.importorskip("wordllama", reason="the static embedder is extra [embed]")

# Paraphrases (cosine of the static embedder's int8 vectors in the comment) and unrelated
# requests, as they come in Alpaca, Dolly and user logs.
PAIRS = [
    ("Which country has the largest population?", "Which country has the biggest population?"),
    ("How do you train for a marathon?", "How would you train for a marathon?"),  # 0.973
    ("Who is the best NBA player of all time?", "Who is the greatest NBA player of all time?"),
    ("What are the colors of the rainbow?", "Which colors are in a rainbow?"),  # 0.974
    ("Give three tips for staying healthy.", "Give me three tips to stay healthy."),  # 0.962
    ("Write a haiku about autumn.", "Compose a haiku about the fall season."),  # 0.749
    ("What is the capital of France?", "What's the capital city of France?"),  # 0.917
    (
        "Explain photosynthesis in simple terms.",
        "Explain in simple words how photosynthesis works.",
    ),
    ("Name three primary colors.", "List the three primary colors."),  # 0.652
    ("How can I be a good geologist?", "What should I do to be a great geologist?"),  # 0.865
    ("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?"),
    ("Suggest a name for a coffee shop.", "Come up with a name for a new coffee shop."),  # 0.714
    ("What are the benefits of meditation?", "What are some benefits of meditating?"),  # 0.796
    ("Why is the sky blue?", "Why does the sky look blue?"),  # 0.931
]
SINGLES = [
    (
        "Summarize the paragraph in one sentence.",
        "The Panama Canal connects the Atlantic Ocean "
        "with the Pacific Ocean and divides North and South America.",
    ),
    ("Classify each animal as a mammal or a reptile.", "dog, lizard, whale, snake"),
    ("Write a Python function that reverses a string.", ""),
    ("What is the difference between a virus and a bacterium?", ""),
    ("Give me a list of five fruits that are high in vitamin C.", ""),
    ("Rewrite the sentence in the passive voice.", "The cat chased the mouse."),
    ("When did the first Moon landing happen?", ""),
    ("Generate a creative story about a robot who learns to paint.", ""),
    ("Convert 25 degrees Celsius to Fahrenheit.", ""),
    ("What is the time complexity of binary search?", ""),
    ("Describe the water cycle.", ""),
    ("Who wrote Pride and Prejudice?", ""),
    ("Find the grammatical error in the sentence.", "She don't like apples."),
    ("What should I pack for a weekend camping trip?", ""),
    ("Explain the rules of chess to a beginner.", ""),
    ("What is a black hole?", ""),
    ("Write an email asking my manager for a day off.", ""),
    ("Compute the area of a circle with radius 3.", ""),
    (
        "Extract the dates mentioned in the text.",
        "The treaty was signed on 4 July 1776 and ratified in January 1784.",
    ),
    ("What are some good board games for a family night?", ""),
    ("How does a bill become a law in the United States?", ""),
    ("Tell me about the history of the Roman Empire.", ""),
    ("Is a tomato a fruit or a vegetable?", ""),
    ("Create a SQL query that counts the orders per customer.", ""),
    ("Recommend three science fiction novels.", ""),
    ("What is the boiling point of water at sea level?", ""),
    ("Give me a recipe for banana bread.", ""),
    ("Why do cats purr?", ""),
    ("What causes inflation?", ""),
    ("Describe your ideal vacation in three sentences.", ""),
    ("List the planets of the solar system in order.", ""),
    ("How do I change a flat tire?", ""),
]
SOURCES = ("alpaca", "dolly", "oasst")


def table(rows: list[dict[str, Any]], **extra: list[Any]) -> pa.Table:
    full = []
    for index, row in enumerate(rows):
        base: dict[str, Any] = dict.fromkeys(RECORD_SCHEMA.names)
        base.update(id=f"r{index:02d}", instruction="", input="", output="", source="t", meta="{}")
        base.update(source_format="alpaca", source_file="t.json", source_row=index)
        base.update(row)
        full.append(base)
    data = pa.Table.from_pylist(full, schema=RECORD_SCHEMA)
    for name, values in extra.items():
        data = data.append_column(name, pa.array(values))
    return data


def corpus() -> pa.Table:
    """60 rows: the paraphrase pairs interleaved with the singles, three sources, a quality
    score (some null) and outputs of various lengths."""
    rows: list[dict[str, Any]] = []
    singles = iter(SINGLES)
    for first, second in PAIRS:
        rows.append({"instruction": first})
        rows.append(dict(zip(("instruction", "input"), next(singles), strict=True)))
        rows.append({"instruction": second})
    rows.extend(dict(zip(("instruction", "input"), s, strict=True)) for s in singles)
    rng = np.random.default_rng(7)
    for index, row in enumerate(rows):
        row["source"] = SOURCES[index % 3]
        row["output"] = "word " * int(rng.integers(1, 40))
    quality = [None if i % 11 == 5 else round(float(q), 3) for i, q in enumerate(rng.random(60))]
    assert len(rows) == 60
    return table(rows, quality_score=quality)


def cosine_matrix(data: pa.Table) -> np.ndarray:
    """Every pair's cosine: the requests (instruction + input) embedded, int8, numpy."""
    texts = [
        f"{i}\n{j}".strip()
        for i, j in zip(data["instruction"].to_pylist(), data["input"].to_pylist(), strict=True)
    ]
    q = embed.quantize(embed.load_embedder("static").embed(texts)).astype(np.int64)
    norms = np.sqrt((q**2).sum(axis=1).astype(np.float64))
    denominator = np.outer(norms, norms)
    return np.divide(
        (q @ q.T).astype(np.float64),
        denominator,
        out=np.zeros(denominator.shape),
        where=denominator > 0,
    )


def reference(
    data: pa.Table,
    score: list[float | None] | None,
    budget: int | None,
    threshold: float | None,
    by: str | None = None,
    per_group: int | None = None,
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Brute force: every pair's cosine from the int8 vectors (numpy), rows in score order."""
    cosines = cosine_matrix(data)
    n = data.num_rows
    ids = data["id"].to_pylist()
    values = score if score is not None else [0.0] * n

    def key(i: int) -> tuple[int, float, int]:
        v = values[i]
        missing = v is None or math.isnan(v)
        return (1, 0.0, i) if v is None or missing else (0, -float(v), i)

    groups = data[by].to_pylist() if by else [None] * n
    taken: list[int] = []
    per: dict[Any, int] = {}
    why: dict[str, dict[str, Any]] = {}
    for rank, i in enumerate(sorted(range(n), key=key), start=1):
        if budget is not None and len(taken) >= budget:
            why[ids[i]] = {"budget": budget, "rank": rank}
            continue
        if per_group is not None and per.get(groups[i], 0) >= per_group:
            why[ids[i]] = {"by": by, "group": groups[i], "per_group": per_group, "rank": rank}
            continue
        if threshold is not None and taken:
            sims = cosines[i, taken]
            best = int(np.argmax(sims))  # the first taken among equals
            if sims[best] >= threshold:
                why[ids[i]] = {
                    "nearest": ids[taken[best]],
                    "cosine": round(float(sims[best]), 4),
                    "threshold": threshold,
                }
                continue
        taken.append(i)
        per[groups[i]] = per.get(groups[i], 0) + 1
    return [ids[i] for i in taken], why


def selected(result: Any) -> list[str]:
    """Kept ids in the order they were taken."""
    rows = sorted(
        result.kept.select(["id", "select_rank"]).to_pylist(), key=lambda r: r["select_rank"]
    )
    assert [r["select_rank"] for r in rows] == list(range(1, len(rows) + 1))
    return [r["id"] for r in rows]


def details(result: Any) -> dict[str, dict[str, Any]]:
    rejected = result.rejected.to_pylist()
    assert {r["reason"] for r in rejected} <= {"not_selected"}
    assert {r["stage"] for r in rejected} <= {"select_v1"}
    return {r["id"]: json.loads(r["detail"]) for r in rejected}


@pytest.mark.parametrize(
    ("score", "budget", "max_similarity", "diversity"),
    [
        (None, None, 0.9, 1.0),
        (None, 25, 0.9, 1.0),
        ("quality_score", 40, 0.9, 1.0),
        ("quality_score", None, 0.7, 1.0),
        ("quality_score", 30, 0.7, 0.5),
        ("length(output)", 20, 0.8, 1.0),
    ],
)
def test_greedy_equals_brute_force(
    score: str | None, budget: int | None, max_similarity: float, diversity: float
) -> None:
    data = corpus()
    stage = Select(budget=budget, score=score, max_similarity=max_similarity, diversity=diversity)
    result = stage.run(data)
    values: list[Any] | None = None
    if score == "quality_score":
        values = data["quality_score"].to_pylist()
    elif score == "length(output)":
        values = [float(len(o)) for o in data["output"].to_pylist()]
    threshold = stage.threshold
    assert threshold == pytest.approx(max_similarity + (1 - diversity) * (1 - max_similarity))
    want, why = reference(data, values, budget, threshold)
    assert selected(result) == want
    assert details(result) == why
    assert result.kept.num_rows + result.rejected.num_rows == 60
    info = stage.manifest_info()
    assert info["selected"] == len(want)
    assert info["rejected"]["similar"] > 0  # every case has paraphrases above its threshold
    causes = [("nearest" in d, "budget" in d) for d in why.values()]
    assert info["rejected"]["similar"] == sum(s for s, _ in causes)
    assert info["rejected"]["budget"] == sum(b for _, b in causes)
    assert info["threshold"] == pytest.approx(threshold)


def close_neighbours() -> pa.Table:
    """300 templated requests: 50 questions ("what is the capital of Peru?" ...) each asked six
    ways ("Hey, ...", "Quick question: ..."), at cosines of 0.85 to 0.98 to each other."""
    prefixes = ["", "Please answer: ", "Quick question: ", "Can you tell me this: ", "Hey, "]
    prefixes.append("I was wondering, ")
    templates = [
        "what is the capital of {}?",
        "what language do people speak in {}?",
        "how would you plan a one-week trip to {}?",
        "what is the climate like in {}?",
        "what food is {} famous for?",
    ]
    places = ["Peru", "Kenya", "Japan", "Norway", "Egypt", "Canada", "India", "Italy", "Cuba"]
    places.append("Iceland")
    questions = [t.format(place) for place in places for t in templates]
    texts = [prefix + question for question in questions for prefix in prefixes]
    return table(
        [{"instruction": text, "output": "x" * ((i * 7) % 23)} for i, text in enumerate(texts)]
    )


@pytest.mark.parametrize("max_similarity", [0.95, 0.9, 0.8])
def test_many_close_neighbours_exact_lsh_equals_brute_force(max_similarity: float) -> None:
    """Most rows have several taken neighbours near the threshold: with 4 bits per band every
    close pair is a candidate, so the result is the brute force's, tie-breaks included."""
    data = close_neighbours()
    stage = Select(score="length(output)", max_similarity=max_similarity, rows=4)
    result = stage.run(data)
    lengths = [float(len(o)) for o in data["output"].to_pylist()]
    want, why = reference(data, lengths, None, max_similarity)
    assert selected(result) == want
    assert details(result) == why
    info = stage.manifest_info()
    assert info["rejected"]["similar"] >= 100
    assert info["p_candidate_at_threshold"] == 1.0


@pytest.mark.parametrize("max_similarity", [0.95, 0.9, 0.8])
def test_many_close_neighbours_default_lsh_misses_few(max_similarity: float) -> None:
    """With the default bits a pair at the threshold is a candidate with p >= 0.99, not 1: the
    selection may keep a rare pair at >= τ (documented), and everything it says is true."""
    data = close_neighbours()
    cosines = cosine_matrix(data)
    ids = data["id"].to_pylist()
    stage = Select(score="length(output)", max_similarity=max_similarity)
    result = stage.run(data)
    assert stage.manifest_info()["p_candidate_at_threshold"] >= 0.99
    taken = [ids.index(i) for i in selected(result)]
    close = cosines[np.ix_(taken, taken)] >= max_similarity
    missed = (close.sum() - len(taken)) // 2  # pairs, without each row with itself
    assert missed <= 2
    for row_id, detail in details(result).items():
        nearest = ids.index(detail["nearest"])
        assert nearest in taken
        assert detail["cosine"] == round(float(cosines[ids.index(row_id), nearest]), 4)
        assert detail["cosine"] >= max_similarity
    # Most decisions agree with the brute force (a miss changes what follows it, little).
    lengths = [float(len(o)) for o in data["output"].to_pylist()]
    want, _ = reference(data, lengths, None, max_similarity)
    assert len(set(want) ^ set(ids[i] for i in taken)) <= 10


def test_reasons_name_the_nearest_row_or_the_budget() -> None:
    data = table(
        [
            {"instruction": "Which country has the largest population?"},
            {"instruction": "Which country has the biggest population?"},
            {"instruction": "Describe the water cycle."},
            {"instruction": "Who wrote Pride and Prejudice?"},
        ]
    )
    kept, rejected = Select(budget=2).run(data)
    assert kept["instruction"].to_pylist() == [
        "Which country has the largest population?",
        "Describe the water cycle.",
    ]
    assert kept["select_rank"].to_pylist() == [1, 2]
    assert kept.schema.field("select_rank").type == pa.int64()
    rows = rejected.to_pylist()
    assert [r["reason"] for r in rows] == ["not_selected", "not_selected"]
    similar = json.loads(rows[0]["detail"])
    assert similar == {
        "nearest": "r00",
        "cosine": pytest.approx(0.957, abs=0.001),
        "threshold": 0.9,
    }
    assert rows[0]["duplicate_of"] == "r00"
    # The budget was full when "Who wrote ..." came: 4th in (stream) order.
    assert json.loads(rows[1]["detail"]) == {"budget": 2, "rank": 4}
    assert rows[1]["duplicate_of"] is None


def test_budget_zero_and_an_empty_table() -> None:
    data = corpus()
    kept, rejected = Select(budget=0).run(data)
    assert kept.num_rows == 0
    assert [json.loads(d)["rank"] for d in rejected["detail"].to_pylist()] == list(range(1, 61))
    stage = Select(budget=10, score="length(output)", by="source", per_group=2)
    empty = stage.run(RECORD_SCHEMA.empty_table())
    assert empty.kept.num_rows == 0 and empty.rejected.num_rows == 0
    assert "select_rank" in empty.kept.column_names
    info = stage.manifest_info()
    assert info["selected"] == 0 and info["docs"] == 0 and info["embedded"] == 0


def test_budget_per_group() -> None:
    data = corpus()
    result = Select(budget=8, by="source", per_group=2, score="quality_score").run(data)
    want, why = reference(data, data["quality_score"].to_pylist(), 8, 0.9, by="source", per_group=2)
    assert selected(result) == want
    assert details(result) == why
    # Three sources, two each: six rows, the group budgets stop it before the total.
    assert (
        sorted(result.kept["source"].to_pylist()) == ["alpaca"] * 2 + ["dolly"] * 2 + ["oasst"] * 2
    )
    group_rejects = [d for d in why.values() if "group" in d]
    assert group_rejects and all(d["by"] == "source" and d["per_group"] == 2 for d in group_rejects)
    assert {d["group"] for d in group_rejects} == set(SOURCES)
    info = Select(budget=8, by="source", per_group=2)
    info.run(data)
    assert info.manifest_info()["selected_per_group"] == dict.fromkeys(SOURCES, 2)
    rejected = info.manifest_info()["rejected"]
    assert rejected["budget"] == 0 and rejected["similar"] > 0
    assert rejected["group_budget"] + rejected["similar"] == 60 - 6


def test_score_as_a_column_and_as_an_expression() -> None:
    data = corpus()
    quality = data["quality_score"].to_pylist()
    by_column = selected(Select(score="quality_score", diversity=0).run(data))
    ids = data["id"].to_pylist()
    # Highest first, nulls last (in stream order), ties in stream order.
    want = sorted(range(60), key=lambda i: (quality[i] is None, -(quality[i] or 0.0), i))
    assert by_column == [ids[i] for i in want]
    assert sum(q is None for q in quality) == 5
    assert by_column[-5:] == [ids[i] for i in range(60) if quality[i] is None]
    # An expression over the columns, row by row.
    doubled = selected(Select(score="quality_score * 2", diversity=0).run(data))
    assert doubled == by_column
    reverse = selected(Select(score="-quality_score", diversity=0).run(data))
    ascending = sorted(range(60), key=lambda i: (quality[i] is None, quality[i] or 0.0, i))
    assert reverse == [ids[i] for i in ascending]
    lengths = [len(o) for o in data["output"].to_pylist()]
    longest = selected(Select(score="length(output)", budget=5, diversity=0).run(data))
    assert longest == [ids[i] for i in sorted(range(60), key=lambda i: (-lengths[i], i))[:5]]
    # A boolean expression: the matches first (true = 1), in stream order.
    instructions = data["instruction"].to_pylist()
    matches = [ids[i] for i in range(60) if "cat" in instructions[i].lower()]
    assert len(matches) == 2  # "cats purr", "vacation"
    cats = selected(Select(score="instruction ILIKE '%cat%'", budget=2, diversity=0).run(data))
    assert cats == matches


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("random()", "changes from run to run"),
        ("now()", "changes from run to run"),
        ("rank() OVER (ORDER BY length(output))", "window functions are refused"),
        ("(SELECT 1)", "subqueries are refused"),
        ("sum(length(output))", "aggregate sum"),
        (
            "1) AS DOUBLE) AS score, __curate_select_row FROM batch UNION ALL SELECT CAST((1",
            "one expression",
        ),
        ("length(", "not a DuckDB expression"),
        ("no_such_column * 2", "failed"),
        ("instruction", "not numeric"),
        ("length(output) FROM read_csv('/etc/passwd') --", "not a DuckDB expression"),
    ],
)
def test_bad_scores_are_refused(expression: str, message: str) -> None:
    with pytest.raises(StageError, match=message):
        Select(score=expression, budget=3).run(corpus())


def test_a_score_expression_reads_no_file_and_runs_one_statement() -> None:
    with pytest.raises(StageError, match="subqueries are refused"):
        Select(score="(SELECT count(*) FROM read_text('/etc/hostname'))", budget=1).run(corpus())
    with pytest.raises(StageError, match=r"not a DuckDB expression|one expression"):
        Select(score="1) FROM batch; COPY batch TO '/tmp/x.csv'; SELECT (1", budget=1).run(corpus())
    # The recipe check parses the expression before any data is read.
    with pytest.raises(StageError, match="window functions are refused"):
        Select(score="row_number() OVER ()").check_recipe([])
    Select(score="length(output) * 2").check_recipe([])
    # And the connection itself can read no file (a second line of defence).
    from curate.stages.select import _connect

    with _connect() as con, pytest.raises(Exception, match="disabled by configuration"):
        con.execute("SELECT * FROM read_text('/etc/hostname')")


def test_the_diversity_knob() -> None:
    """τ = 0.9: the pairs at 0.957 (population), 0.931 (sky) and 0.917 (capital) are all
    dropped at d = 1 (threshold 0.9); at d = 0.5 (threshold 0.95) only the first is; at d = 0
    none is (pure stream order)."""
    rows = [
        {"instruction": "Which country has the largest population?"},
        {"instruction": "Why is the sky blue?"},
        {"instruction": "What is the capital of France?"},
        {"instruction": "Which country has the biggest population?"},
        {"instruction": "Why does the sky look blue?"},
        {"instruction": "What's the capital city of France?"},
        {"instruction": "Give me a recipe for banana bread."},
    ]
    data = table(rows)
    kept = {}
    for diversity in (0.0, 0.5, 1.0):
        stage = Select(diversity=diversity)
        result = stage.run(data)
        kept[diversity] = result.kept["instruction"].to_pylist()
        info = stage.manifest_info()
        if diversity:
            assert info["threshold"] == pytest.approx(0.9 + (1 - diversity) * 0.1)
        else:
            assert info["threshold"] is None and info["embedder"] is None
    assert kept[0.0] == [r["instruction"] for r in rows]
    assert kept[0.5] == [r["instruction"] for i, r in enumerate(rows) if i != 3]
    assert kept[1.0] == [r["instruction"] for i, r in enumerate(rows) if i in (0, 1, 2, 6)]
    # With a budget, a lower d fills it with the best-scored rows, a higher d with distinct ones.
    assert Select(budget=4, diversity=0).run(data).kept["id"].to_pylist() == [
        "r00",
        "r01",
        "r02",
        "r03",
    ]
    assert Select(budget=4).run(data).kept["id"].to_pylist() == ["r00", "r01", "r02", "r06"]


def test_deterministic_and_independent_of_batches() -> None:
    data = corpus()
    params = {
        "budget": 30,
        "score": "length(output) + quality_score",
        "by": "source",
        "per_group": 12,
    }
    first = Select(**params).run(data)
    second = Select(**params).run(data)
    assert first.kept.equals(second.kept) and first.rejected.equals(second.rejected)
    for size in (1, 7, 25):
        shards = [data.slice(start, size) for start in range(0, 60, size)]
        stage = Select(**params)
        stage.fit(shards)
        parts = [stage.apply(shard) for shard in shards]
        kept = pa.concat_tables([p.kept for p in parts])
        rejected = pa.concat_tables([p.rejected for p in parts])
        assert kept.to_pylist() == first.kept.to_pylist()
        assert rejected.to_pylist() == first.rejected.to_pylist()
    with pytest.raises(StageError, match="differ from fit"):
        stage.apply(data)  # a second pass is not the batches fit saw
    fresh = Select(**params)
    fresh.fit([data])
    with pytest.raises(StageError, match="differ from fit"):
        fresh.apply(data.slice(1, 10))
    with pytest.raises(StageError, match="before fit"):
        Select().apply(data)


def test_params_resolve_and_validate() -> None:
    assert get_stage("select") is Select
    with pytest.raises(StageError, match="by and per_group"):
        Select(by="source")
    with pytest.raises(StageError, match="budget"):
        Select(budget=-1)
    with pytest.raises(StageError, match="'no_column' is not a column"):
        Select(by="no_column", per_group=1).run(corpus())
    stage = Select(max_similarity=0.7)
    assert stage.bits == 7  # the most bits with recall >= 0.99 at 0.7
    stage.run(corpus())
    info = stage.manifest_info()
    bit = 1 - math.acos(0.7) / math.pi
    assert info["p_candidate_at_threshold"] == round(1 - (1 - bit**7) ** 40, 4)
    assert info["p_candidate_at_threshold"] >= 0.99
    assert info["embedder"] == "static" and info["dimension"] == 256
    assert Select(rows=16).manifest_info() == {}


def test_conversations_are_embedded_by_their_user_turns() -> None:
    system = "You are a helpful assistant who answers every question carefully and politely."
    rows = [
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "..."},
            ]
        }
        for question in ("Why is the sky blue?", "Give me a recipe for banana bread.")
    ]
    kept = Select(fields=["messages"]).run(table(rows)).kept
    assert kept.num_rows == 2  # the shared system prompt does not make them alike


def test_a_missing_embedder_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    embed.load_embedder.cache_clear()
    monkeypatch.setitem(sys.modules, "wordllama", None)
    try:
        with pytest.raises(StageError, match=r"pip install 'curate\[embed\]'"):
            Select(budget=5).prepare()
        with pytest.raises(StageError, match=r"curate\[embed\]"):
            Select(budget=5).run(corpus())
        Select(budget=5, diversity=0).prepare()  # pure top score: no embedder needed
        assert Select(budget=5, diversity=0).run(corpus()).kept.num_rows == 5
    finally:
        embed.load_embedder.cache_clear()


def test_cluster_labels_are_a_reproducible_k_means() -> None:
    rng = np.random.default_rng(3)
    # Three tight groups of int8 vectors and a zero vector (a row without text).
    centers = rng.normal(size=(3, 32))
    points = np.concatenate([c + 0.05 * rng.normal(size=(20, 32)) for c in centers])
    vectors = embed.quantize(points / np.linalg.norm(points, axis=1, keepdims=True))
    vectors = np.concatenate([vectors, np.zeros((1, 32), np.int8)])
    labels = embed.cluster_labels(vectors, 3)
    assert labels[-1] == -1
    groups = [set(labels[i * 20 : (i + 1) * 20].tolist()) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 3
    assert np.array_equal(labels, embed.cluster_labels(vectors.copy(), 3))
    assert embed.cluster_labels(vectors, 1).max() == 0


def test_balance_takes_rows_round_robin_over_clusters() -> None:
    data = corpus()
    vectors = embed.quantize(embed.load_embedder("static").embed(Select().text(data).to_pylist()))
    labels = embed.cluster_labels(vectors, 4)
    # No score: stream order within each cluster; diversity 0: only the balance decides.
    result = Select(budget=8, balance="clusters", clusters=4, diversity=0.0).run(data)
    ranks = dict(
        zip(
            result.kept.column("id").to_pylist(),
            result.kept.column("select_rank").to_pylist(),
            strict=True,
        )
    )
    taken = sorted(ranks, key=ranks.__getitem__)
    ids = data.column("id").to_pylist()
    label_of = {ids[i]: int(labels[i]) for i in range(len(ids))}
    # Two rounds over four clusters: each cluster's first two rows in stream order.
    expected = []
    for round_ in range(2):
        firsts = []
        for cluster in range(4):
            members = [i for i in ids if label_of[i] == cluster]
            if len(members) > round_:
                firsts.append(members[round_])
        expected += sorted(firsts, key=ids.index)
    assert taken == expected[:8]
    assert Counter(label_of[i] for i in taken) == Counter({c: 2 for c in range(4)})
    info = Select(budget=8, balance="clusters", clusters=4).run(data)
    assert info.kept.num_rows == 8
    # Deterministic and independent of batches, like the plain greedy.
    stage = Select(budget=8, balance="clusters", clusters=4)
    shards = [data.slice(s, 7) for s in range(0, 60, 7)]
    stage.fit(shards)
    kept = pa.concat_tables([stage.apply(shard).kept for shard in shards])
    assert kept.to_pylist() == info.kept.to_pylist()
    assert stage.manifest_info()["clusters"] == 4


def test_balance_over_a_column_and_over_cells() -> None:
    data = corpus()
    # Two thirds of the rows are alpaca: balanced over source, a budget of 9 takes 3 of each.
    skewed = data.set_column(
        data.schema.get_field_index("source"),
        "source",
        pa.array(["alpaca" if i % 3 else "dolly" for i in range(60)]),
    )
    plain = Select(budget=9, diversity=0.0).run(skewed)
    assert Counter(plain.kept.column("source").to_pylist()) == {"alpaca": 6, "dolly": 3}
    balanced = Select(budget=9, diversity=0.0, balance="source").run(skewed)
    assert Counter(balanced.kept.column("source").to_pylist()) == {"alpaca": 5, "dolly": 4}
    ranks = balanced.kept.sort_by("select_rank").column("source").to_pylist()
    assert ranks[:2] in (["alpaca", "dolly"], ["dolly", "alpaca"])  # rounds alternate
    cells = Select(budget=12, balance=["clusters", "source"], clusters=2).run(skewed)
    assert cells.kept.num_rows == 12
    info = Select(budget=12, balance=["clusters", "source"], clusters=2)
    info.run(skewed)
    assert info.manifest_info()["cells"] <= 4
    with pytest.raises(StageError, match="balance: 'no_such_column' is not a column"):
        Select(budget=3, balance=["no_such_column"]).run(skewed)
    # An empty input selects nothing, balanced or not.
    assert (
        Select(budget=3, balance=["clusters", "source"]).run(skewed.slice(0, 0)).kept.num_rows == 0
    )
