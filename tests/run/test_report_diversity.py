"""report.html's Diversity section: a metrics table (before vs after the dedup stages), a
nearest-neighbour histogram and a map of the kept sample, byte-identical when rebuilt, and one
line instead when the embedder (extra [embed]) is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from curate.engine.run import run_recipe
from curate.errors import StageError
from curate.lib import embed
from curate.recipe import load_recipe
from curate.run.report import REPORT, collect, write_report
from curate.run.report.diversity import (
    BEFORE_REASONS,
    farthest_point_centroids,
    nearest_neighbours,
    principal_map,
    texts,
)

pytest.importorskip("wordllama", reason="the static embedder is extra [embed]")

DISTINCT_ALPHA = [
    "Write a haiku about autumn leaves.",
    "Explain how photosynthesis works.",
    "List three uses of baking soda.",
    "Translate 'good morning' into Spanish.",
    "What is the boiling point of water at sea level?",
    "Describe the plot of Romeo and Juliet.",
    "Give me a recipe for pancakes.",
    "Why is the sky blue?",
    "Write a Python function that reverses a string.",
    "What causes earthquakes?",
    "Summarize the history of the Roman Empire in two sentences.",
    "Name five mammals that live in the ocean.",
    "How does a bicycle stay upright?",
    "Suggest a name for a coffee shop.",
    "What is the difference between weather and climate?",
    "Compose a short email declining a meeting invitation.",
]
DISTINCT_BETA = [
    "What are the health benefits of green tea?",
    "Explain the rules of chess to a beginner.",
    "Who painted the Mona Lisa?",
    "Write a limerick about a cat.",
    "How do vaccines train the immune system?",
    "Classify these animals as reptiles or birds: gecko, parrot, iguana, owl.",
    "What is a black hole?",
    "Give three tips for a job interview.",
    "Convert 100 degrees Fahrenheit to Celsius.",
    "Why do leaves change color in the fall?",
    "Describe the taste of a mango.",
    "What is the capital of Australia?",
    "Plan a one-day itinerary for Paris.",
    "How do I change a flat tire?",
]
# Pairs semantic_dedup removes (real Alpaca/Dolly requests; see tests/stages/dedup).
PARAPHRASES = [
    ("Which country has the largest population?", "Which country has the biggest population?"),
    ("How do you train for a marathon?", "How would you train for a marathon?"),
    ("Who is the best NBA player of all time?", "Who is the greatest NBA player of all time?"),
    ("What are the colors of the rainbow?", "Which colors are in a rainbow?"),
]


def _rows(instructions: list[str], tag: str) -> list[dict[str, str]]:
    return [
        {"instruction": text, "input": "", "output": f"Answer {i} from {tag}: see above."}
        for i, text in enumerate(instructions)
    ]


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def diversity_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("diversity")
    alpha = [
        *_rows(DISTINCT_ALPHA, "alpha"),
        *_rows([a for a, _ in PARAPHRASES], "alpha"),
        *_rows(DISTINCT_ALPHA[:5], "alpha"),  # exact duplicates
    ]
    beta = [
        *_rows(DISTINCT_BETA, "beta"),
        *_rows([b for _, b in PARAPHRASES], "beta"),
        *_rows(DISTINCT_BETA[:4] + DISTINCT_ALPHA[5:8], "beta"),  # exact duplicates
        # a conversation: its user turns are its text
        {
            "messages": [  # type: ignore[dict-item]
                {"role": "user", "content": "Tell me a fun fact about octopuses."},
                {"role": "assistant", "content": "They have three hearts."},
            ]
        },
    ]
    _write_jsonl(root / "alpha.jsonl", alpha)
    _write_jsonl(root / "beta.jsonl", beta[:-1])
    _write_jsonl(root / "chat.jsonl", beta[-1:])
    (root / "recipe.yaml").write_text(
        "name: diversity\n"
        "seed: 7\n"
        "sources:\n"
        f"  - {{name: alpha, path: {root / 'alpha.jsonl'}}}\n"
        f"  - {{name: beta, path: {root / 'beta.jsonl'}}}\n"
        f"  - {{name: chat, path: {root / 'chat.jsonl'}}}\n"
        "stages:\n"
        "  - normalize: {}\n"
        "  - exact_dedup: {}\n"
        "  - semantic_dedup: {}\n"
        "  - response_format: {}\n",
        encoding="utf-8",
    )
    out = root / "run"
    run_recipe(load_recipe(root / "recipe.yaml"), out=out, workers=1)
    return out


def _section(html: str) -> str:
    match = re.search(r'<section id="diversity">.*?</section>', html, re.S)
    assert match, "the report has a Diversity section"
    return match.group(0)


def _summary(html: str) -> dict[str, Any]:
    match = re.search(r'id="curate-report-data">(.*?)</script>', html, re.S)
    assert match
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def _count(run: Path, sql: str) -> int:
    con = duckdb.connect()
    [(n,)] = con.execute(sql.format(data=run / "data", rejects=run / "rejects")).fetchall()
    return int(n)


def test_section_shows_metrics_table_histogram_and_map(diversity_run: Path) -> None:
    html = (diversity_run / REPORT).read_text(encoding="utf-8")
    section = _section(html)
    assert 'href="#diversity"' in html
    assert 'id="diversity-table"' in section
    for metric in ("rows", "mean_nn_cosine", "near_share", "cluster_entropy_bits"):
        assert f'data-metric="{metric}"' in section
    assert "largest cluster" in section
    assert section.count("<svg") == 2  # the histogram and the map
    assert "<script" not in section

    kept = _count(diversity_run, "SELECT count(*) FROM read_parquet('{data}/*.parquet')")
    summary = _summary(html)["diversity"]
    assert summary["status"] == "ok"
    assert summary["after"]["rows"] == summary["after"]["total"] == kept
    assert summary["map_points"] == kept
    # one small circle per sampled kept row, coloured by source (the legend is squares)
    [map_svg] = [s for s in re.findall(r"<svg.*?</svg>", section, re.S) if "<circle" in s]
    assert map_svg.count("<circle") == kept
    for source in ("alpha", "beta", "chat"):
        assert re.search(rf">{source} \(\d+\)</text>", map_svg)
    # the response-format table: every kept record of a source is counted once
    assert 'id="diversity-formats"' in section
    by_source = summary["response_formats"]
    assert sum(sum(counts.values()) for counts in by_source.values()) == kept


def test_before_and_after_metrics_are_sane(diversity_run: Path) -> None:
    summary = collect(diversity_run).summary()["diversity"]
    before, after = summary["before"], summary["after"]
    reasons = ", ".join(f"'{r}'" for r in BEFORE_REASONS)
    removed = _count(
        diversity_run,
        f"SELECT count(*) FROM read_parquet('{{rejects}}/*.parquet') WHERE reason IN ({reasons})",
    )
    semantic = _count(
        diversity_run,
        "SELECT count(*) FROM read_parquet('{rejects}/*.parquet') "
        "WHERE reason = 'semantic_duplicate'",
    )
    assert semantic >= 1 and removed > semantic  # exact and semantic duplicates were removed
    assert before["rows"] == before["total"] == after["rows"] + removed
    # the removed rows were near-copies: before has more rows with a near-same neighbour
    assert before["near_share"] > 0
    assert after["near_share"] <= before["near_share"]
    assert after["mean_nn_cosine"] <= before["mean_nn_cosine"]
    for side in (before, after):
        assert -1.0 <= side["mean_nn_cosine"] <= 1.0
        assert 0.0 < side["cluster_entropy_bits"] <= np.log2(summary["centroids"]) + 1e-9
        assert 0.0 < side["largest_cluster_share"] <= 1.0
    assert 1 <= summary["centroids"] <= 32


def test_the_section_is_rebuilt_byte_identically(diversity_run: Path, tmp_path: Path) -> None:
    first = write_report(diversity_run, tmp_path / "one.html").read_text(encoding="utf-8")
    second = write_report(diversity_run, tmp_path / "two.html").read_text(encoding="utf-8")
    assert _section(first) == _section(second)
    assert first == second
    # ...and equal to the report the run itself wrote
    assert _section(first) == _section((diversity_run / REPORT).read_text(encoding="utf-8"))


def test_without_the_embedder_the_section_says_so_and_the_rest_is_unchanged(
    diversity_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(spec: str) -> embed.Embedder:
        raise StageError("embedder 'static' needs the wordllama package")

    full = write_report(diversity_run, tmp_path / "full.html").read_text(encoding="utf-8")
    monkeypatch.setattr(embed, "load_embedder", missing)
    html = write_report(diversity_run, tmp_path / "bare.html").read_text(encoding="utf-8")
    section = _section(html)
    assert "curate[embed]" in section
    assert "<svg" not in section and 'id="diversity-table"' not in section
    assert _summary(html)["diversity"]["status"] == "unavailable"

    def outside(page: str) -> str:
        page = page.replace(_section(page), "")
        return re.sub(r'id="curate-report-data">.*?</script>', "", page, flags=re.S)

    assert outside(html) == outside(full)


def test_a_failure_inside_the_section_is_named_and_the_report_still_builds(
    diversity_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(
        embed, "load_embedder", lambda spec: embed.Embedder("static", "m", 256, "p", broken)
    )
    html = write_report(diversity_run, tmp_path / "report.html").read_text(encoding="utf-8")
    section = _section(html)
    assert "could not be computed" in section and "the model fell over" in section
    assert _summary(html)["diversity"]["status"] == "failed"
    assert 'id="rejects-table"' in html and 'id="diversity-formats"' in section


def test_nearest_neighbours_are_exact_and_blocked() -> None:
    rng = np.random.default_rng(3)
    vectors = embed.quantize(_unit(rng.normal(size=(300, 16))))
    vectors[7] = vectors[250]  # a copy: its neighbour is at cosine 1
    nearest = nearest_neighbours(vectors, block=64)
    x = vectors.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    full = (x @ x.T) / np.outer(norms, norms)
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_allclose(nearest, full.max(axis=1), rtol=0, atol=1e-12)
    assert nearest[7] == nearest[250] == 1.0
    assert np.array_equal(nearest, nearest_neighbours(vectors, block=512))


def test_farthest_points_and_the_map_are_deterministic() -> None:
    rng = np.random.default_rng(5)
    vectors = embed.quantize(_unit(rng.normal(size=(200, 32))))
    vectors[10] = 0  # a row without text is never a centroid
    picked = farthest_point_centroids(vectors, 12)
    assert len(picked) == len(set(picked.tolist())) == 12
    assert picked[0] == 0 and 10 not in picked
    assert np.array_equal(picked, farthest_point_centroids(vectors.copy(), 12))
    # copies only: one centroid
    same = np.repeat(vectors[:1], 5, axis=0)
    assert farthest_point_centroids(same, 4).tolist() == [0]

    coords, (first, second) = principal_map(vectors)
    assert coords.shape == (200, 2) and first >= second > 0
    assert np.allclose(coords.mean(axis=0), 0, atol=1e-9)
    again, _ = principal_map(vectors.copy())
    assert np.array_equal(coords, again)
    # the sign does not depend on the data's orientation
    flipped, _ = principal_map(-vectors)
    assert np.allclose(flipped, -coords)


def test_text_is_instruction_and_input_or_the_user_turns() -> None:
    turn = pa.struct([("role", pa.string()), ("content", pa.string())])
    table = pa.table(
        {
            "instruction": ["Summarize.", "Repeated last turn", None],
            "input": ["A long passage.", "", None],
            "messages": pa.array(
                [
                    None,
                    [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi there"},
                        {"role": "assistant", "content": "Hello"},
                        {"role": "user", "content": "Tell me a joke"},
                    ],
                    None,
                ],
                pa.list_(turn),
            ),
        }
    )
    got = texts(table)
    assert got[0] == "Summarize.\nA long passage."
    assert "Hi there" in got[1] and "Tell me a joke" in got[1]
    assert "Be brief." not in got[1] and "Hello" not in got[1]
    assert got[2].strip() == ""


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_a_text_sampled_before_and_after_is_embedded_once(
    diversity_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = embed.load_embedder("static")
    calls: list[list[str]] = []

    def recording(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.asarray(real._encode(texts))

    full = write_report(diversity_run, tmp_path / "full.html").read_text(encoding="utf-8")
    monkeypatch.setattr(
        embed,
        "load_embedder",
        lambda spec: embed.Embedder(real.name, real.model, real.dimension, real.package, recording),
    )
    html = write_report(diversity_run, tmp_path / "once.html").read_text(encoding="utf-8")
    embedded = [text for call in calls for text in call]
    assert len(embedded) == len(set(embedded))
    summary = _summary(full)["diversity"]
    # Both samples were measured, from fewer texts than their rows together.
    assert len(embedded) < summary["before"]["rows"] + summary["after"]["rows"]
    assert _section(html) == _section(full)
