"""The ``minhash_dedup`` stage: clusters, keeper rule, rejects accounting, determinism."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from testutils import SAMPLES, SHARED_DATA, needs_shared_data, records_table

from curate.engine.pipeline import Pipeline
from curate.errors import StageError
from curate.ingest import read_file
from curate.lib.minhash.lsh import band_bucket_pairs, band_partition, bucket_pairs, doc_bits_for
from curate.lib.minhash.signatures import MinHasher, document_text, reference_shingles
from curate.recipe import parse_recipe
from curate.records import REJECT_SCHEMA, compute_ids, conform
from curate.stages import get_stage
from curate.stages.dedup.exact import ExactDedup
from curate.stages.dedup.minhash import (
    CLUSTER_SIZE_COLUMN,
    SIGNATURE_COLUMN,
    MinHashDedup,
    MinHashDedupV2,
    MinHashDedupV3,
    MinHashDedupV4,
)
from curate.util.text import matching_text

VOCAB = [f"tok{i}" for i in range(3000)]


def records(rows: list[dict[str, Any]]) -> pa.Table:
    full = [{"instruction": "", "input": "", "output": "", "source": "s", **row} for row in rows]
    table = conform(pa.Table.from_pylist(full))
    return table.set_column(table.column_names.index("id"), "id", compute_ids(table))


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def edited(base: list[str], rng: random.Random, edits: int) -> list[str]:
    out = list(base)
    for _ in range(edits):
        out[rng.randrange(len(out))] = rng.choice(VOCAB)
    return out


def jaccard(a: str, b: str, n: int = 5) -> float:
    na, nb = matching_text(pa.array([a, b])).to_pylist()
    sa, sb = set(reference_shingles(na, "word", n)), set(reference_shingles(nb, "word", n))
    return len(sa & sb) / len(sa | sb)


def planted_corpus(seed: int = 0, bases: int = 60) -> tuple[pa.Table, dict[int, int]]:
    """Unrelated 100-word records plus 1-word-edit variants (case/punctuation changed)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    variant_of: dict[int, int] = {}
    for b in range(bases):
        text = words(rng, 100)
        base_row = len(rows)
        rows.append(
            {
                "instruction": " ".join(text[:10]),
                "input": " ".join(text[10:]),
                "output": "x" * rng.randrange(1, 30),
                "source": rng.choice(["a", "b"]),
            }
        )
        if b % 3 == 0:
            var = edited(text, rng, 1)
            variant_of[len(rows)] = base_row
            rows.append(
                {
                    "instruction": " ".join(var[:10]).upper() + "!",
                    "input": ", ".join(var[10:]),
                    "output": "y",
                    "source": rng.choice(["a", "c"]),
                }
            )
    return records(rows), variant_of


# ------------------------------------------------------------------------------ registration


def test_registered_under_its_recipe_key() -> None:
    # The recipe key resolves to v3 (minimal pairs kept apart); v1 and v2 stay for old recipes.
    assert get_stage("minhash_dedup") is MinHashDedupV4
    assert get_stage("minhash_dedup_v2") is MinHashDedupV2
    assert get_stage("minhash_dedup_v1") is MinHashDedup
    assert MinHashDedup.name == "minhash_dedup_v1"
    from curate.stages import MinHashDedup as imported

    assert imported is MinHashDedup


def test_recipe_keys_and_defaults() -> None:
    assert MinHashDedup({}).params == MinHashDedup().params
    recipe = parse_recipe(
        {
            "name": "t",
            "sources": [{"name": "a", "path": "x.json"}],
            "stages": [
                {"exact_dedup": {}},
                {
                    "minhash_dedup": {
                        "threshold": 0.8,
                        "num_perm": 128,
                        "shingle": "word",
                        "ngram": 5,
                        "fields": ["instruction", "input"],
                        "keep": ["source", "quality", "longer_output", "smallest_id"],
                    }
                },
            ],
        }
    )
    stage = recipe.build_stages()[1]
    assert isinstance(stage, MinHashDedup)
    assert stage.banding() == (21, 6)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": 0}, "threshold"),
        ({"bands": 20, "rows": 7}, "bands \\* rows"),
        ({"shingle": "sentence"}, "shingle"),
        ({"keep": ["biggest"]}, "keep"),
        ({"thresold": 0.8}, "thresold"),
    ],
)
def test_bad_params_fail_with_the_key(params: dict[str, Any], match: str) -> None:
    with pytest.raises(StageError, match=match):
        MinHashDedup(params)


def test_banding_overrides() -> None:
    assert MinHashDedup(bands=16, rows=8).banding() == (16, 8)
    assert MinHashDedup(rows=4).banding() == (32, 4)
    assert MinHashDedup(bands=8).banding() == (8, 16)
    assert MinHashDedup(threshold=0.7).banding() == (32, 4)


# ----------------------------------------------------------------------------- behaviour


def test_planted_near_duplicates_are_removed_with_keeper_and_similarity() -> None:
    table, variant_of = planted_corpus()
    kept, rejected = MinHashDedup().run(table)
    ids = table.column("id").to_pylist()
    texts = document_text(table, ["instruction", "input"]).to_pylist()
    # Every planted pair loses exactly one member; nothing else is touched.
    assert kept.num_rows + rejected.num_rows == table.num_rows
    assert rejected.num_rows == len(variant_of)
    removed = dict(
        zip(
            rejected.column("id").to_pylist(),
            rejected.column("duplicate_of").to_pylist(),
            strict=True,
        )
    )
    row = {v: i for i, v in enumerate(ids)}
    for variant, base in variant_of.items():
        pair = {ids[variant], ids[base]}
        assert len(pair & set(removed)) == 1
        gone = (pair & set(removed)).pop()
        assert removed[gone] == (pair - {gone}).pop()
    for r in rejected.to_pylist():
        assert r["stage"] == "minhash_dedup_v1"
        assert r["reason"] == "near_duplicate"
        detail = json.loads(r["detail"])
        assert detail["measure"] == "jaccard"
        expected = jaccard(texts[row[r["id"]]], texts[row[r["duplicate_of"]]])
        assert detail["similarity"] == pytest.approx(expected, abs=5e-5)
        assert detail["similarity"] >= 0.8
    assert rejected.schema == REJECT_SCHEMA
    # Keepers carry their cluster size; the sizes add up to the input.
    sizes = kept.column(CLUSTER_SIZE_COLUMN).to_pylist()
    assert sum(sizes) == table.num_rows
    assert sorted(set(sizes)) == [1, 2]


def test_deterministic_byte_identical_output() -> None:
    table, _ = planted_corpus(seed=3)

    def parquet_bytes() -> tuple[bytes, bytes]:
        kept, rejected = MinHashDedup().run(table)
        out = []
        for t in (kept, rejected):
            buf = io.BytesIO()
            pq.write_table(t, buf)
            out.append(buf.getvalue())
        return out[0], out[1]

    assert parquet_bytes() == parquet_bytes()
    # Row order of the input does not change which rows cluster together.
    shuffled = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    a = MinHashDedup(keep=["smallest_id"]).run(table)
    b = MinHashDedup(keep=["smallest_id"]).run(shuffled)
    assert sorted(a.rejected.column("id").to_pylist()) == sorted(
        b.rejected.column("id").to_pylist()
    )


def test_fit_over_batches_equals_one_table_and_checks_apply_order() -> None:
    table, _ = planted_corpus(seed=5)
    whole = MinHashDedup().run(table)
    batches = [table.slice(0, 20), table.slice(20, 30), table.slice(50)]
    stage = MinHashDedup()
    stage.fit(batches)
    results = [stage.apply(b) for b in batches]
    assert pa.concat_tables([r.kept for r in results]).equals(whole.kept)
    assert pa.concat_tables([r.rejected for r in results]).equals(whole.rejected)
    stage.fit(batches)
    with pytest.raises(StageError, match="differ from fit"):
        stage.apply(batches[1])
    with pytest.raises(StageError, match="before fit"):
        MinHashDedup().apply(table)


# ---------------------------------------------------------------------------- keeper rule


def _dup_pair(sources: tuple[str, str], outputs: tuple[str, str], **extra: Any) -> pa.Table:
    rng = random.Random(7)
    text = words(rng, 80)
    var = edited(text, rng, 1)
    return records(
        [
            {
                "instruction": " ".join(text),
                "output": outputs[0],
                "source": sources[0],
                **{k: v[0] for k, v in extra.items()},
            },
            {
                "instruction": " ".join(var),
                "output": outputs[1],
                "source": sources[1],
                **{k: v[1] for k, v in extra.items()},
            },
        ]
    )


def _kept_source(result: Any) -> list[str]:
    return [str(s) for s in result.kept.column("source").to_pylist()]


def test_keeper_rule_source_priority_then_quality_then_longer_output_then_id() -> None:
    table = _dup_pair(("a", "b"), ("short", "a much longer output"))
    # Default rule: no priority, no quality column -> the longer output wins.
    assert _kept_source(MinHashDedup().run(table)) == ["b"]
    # Source priority beats output length.
    assert _kept_source(MinHashDedup(source_priority=["a"]).run(table)) == ["a"]
    assert _kept_source(MinHashDedup(source_priority=["b", "a"]).run(table)) == ["b"]
    # A quality score beats output length (higher wins), when the column is present.
    scored = table.append_column("quality_score", pa.array([0.9, 0.1]))
    assert _kept_source(MinHashDedup().run(scored)) == ["a"]
    assert _kept_source(MinHashDedup(quality_column="other").run(scored)) == ["b"]
    assert _kept_source(MinHashDedup(keep=["shorter_output"]).run(table)) == ["a"]
    assert _kept_source(MinHashDedup(keep=["first"]).run(table)) == ["a"]
    # Full tie: the smallest id.
    tie = _dup_pair(("a", "b"), ("same", "same"))
    ids = tie.column("id").to_pylist()
    kept = MinHashDedup().run(tie).kept.column("id").to_pylist()
    assert kept == [min(ids)]
    # The rejected row points at the keeper.
    result = MinHashDedup().run(table)
    assert (
        result.rejected.column("duplicate_of").to_pylist() == result.kept.column("id").to_pylist()
    )


def test_cross_source_by_default_and_optional() -> None:
    table = _dup_pair(("alpaca", "dolly"), ("o", "o"))
    assert MinHashDedup().run(table).rejected.num_rows == 1
    assert MinHashDedup(cross_source=False).run(table).rejected.num_rows == 0
    same = _dup_pair(("alpaca", "alpaca"), ("o", "o"))
    assert MinHashDedup(cross_source=False).run(same).rejected.num_rows == 1


# ------------------------------------------------------------------------------ chains


def _chain() -> pa.Table:
    """A~B and B~C reach 0.8 (word sets, ngram=1); A~C is 8/12 = 0.67."""
    base = [f"w{i}" for i in range(10)]
    a = base
    b = [*base[:9], "x"]
    c = [*base[:8], "x", "y"]
    return records(
        [
            {"instruction": " ".join(a), "output": "keeper A has the longest output"},
            {"instruction": " ".join(b), "output": "B"},
            {"instruction": " ".join(c), "output": "C"},
        ]
    )


def test_chain_keeper_mode_removes_only_rows_similar_to_their_keeper() -> None:
    table = _chain()
    ids = table.column("id").to_pylist()
    kept, rejected = MinHashDedup(ngram=1).run(table)
    # A keeps, B (0.818 to A) goes, C (0.667 to A) stays: it duplicates nothing that is kept.
    assert kept.column("id").to_pylist() == [ids[0], ids[2]]
    assert rejected.column("id").to_pylist() == [ids[1]]
    assert rejected.column("duplicate_of").to_pylist() == [ids[0]]
    assert kept.column(CLUSTER_SIZE_COLUMN).to_pylist() == [2, 1]
    # When B is the keeper it removes both neighbours.
    kept_b, rejected_b = MinHashDedup(ngram=1, keep=["shorter_output", "first"]).run(
        table.set_column(
            table.column_names.index("output"), "output", pa.array(["AAAA", "B", "CC"])
        )
    )
    assert kept_b.column("id").to_pylist() == [ids[1]]
    assert rejected_b.column("duplicate_of").to_pylist() == [ids[1], ids[1]]


def test_chain_connected_mode_is_transitive_and_reports_the_real_similarity() -> None:
    table = _chain()
    ids = table.column("id").to_pylist()
    kept, rejected = MinHashDedup(ngram=1, clusters="connected").run(table)
    assert kept.column("id").to_pylist() == [ids[0]]
    assert kept.column(CLUSTER_SIZE_COLUMN).to_pylist() == [3]
    assert rejected.column("duplicate_of").to_pylist() == [ids[0], ids[0]]
    sims = [json.loads(d)["similarity"] for d in rejected.column("detail").to_pylist()]
    assert sims == pytest.approx([9 / 11, 8 / 12], abs=1e-4)


def test_false_candidates_never_chain_unrelated_records() -> None:
    # rows=1: sharing any single MinHash value makes a candidate, so almost every pair of these
    # overlapping records is one; each overlaps its neighbour by half (J = 1/3).
    rng = random.Random(1)
    tokens = words(rng, 400)
    rows = [{"instruction": " ".join(tokens[i * 10 : i * 10 + 20])} for i in range(30)]
    table = records(rows)
    stage = MinHashDedup(ngram=1, bands=128, rows=1)
    kept, rejected = stage.run(table)
    assert stage.manifest_info()["candidate_pairs"] > 25
    assert rejected.num_rows == 0
    assert kept.num_rows == 30


# ----------------------------------------------------------------------- other parameters


def test_verify_estimate_and_char_shingles() -> None:
    table, variant_of = planted_corpus(seed=2)
    for params in ({"verify": "estimate"}, {"shingle": "char", "ngram": 5}):
        kept, rejected = MinHashDedup(params).run(table)
        assert kept.num_rows + rejected.num_rows == table.num_rows
        assert rejected.num_rows == len(variant_of), params
    detail = json.loads(
        MinHashDedup(verify="estimate").run(table).rejected.column("detail")[0].as_py()
    )
    assert detail["measure"] == "estimate"


def test_fields_option_includes_output() -> None:
    table = _dup_pair(
        ("a", "a"), ("completely different answer " * 20, "nothing alike at all here " * 20)
    )
    assert MinHashDedup().run(table).rejected.num_rows == 1
    assert MinHashDedup(fields=["instruction", "input", "output"]).run(table).rejected.num_rows == 0


def test_instruction_threshold_keeps_different_questions_about_one_passage() -> None:
    rng = random.Random(3)
    passage = " ".join(words(rng, 150))
    rows = [
        {
            "instruction": "What is the history of coffee?",
            "input": passage,
            "output": "long answer",
        },
        {"instruction": "List the places named in this text.", "input": passage, "output": "a"},
        {"instruction": "What is the history of coffee beans?", "input": passage, "output": "b"},
        {"instruction": "", "input": passage + " extra", "output": "c"},
        {"instruction": "", "input": passage, "output": "d"},
    ]
    table = records(rows)
    # The shared passage dominates the text: by default all five are one cluster.
    assert MinHashDedup().run(table).rejected.num_rows == 4
    kept, rejected = MinHashDedup(field_thresholds={"instruction": 0.5}).run(table)
    instructions = sorted(rejected.column("instruction").to_pylist())
    # Only the reworded question and the second empty-instruction row go.
    assert instructions == ["", "What is the history of coffee beans?"]
    details = [json.loads(d) for d in rejected.column("detail").to_pylist()]
    assert sorted(d["instruction_similarity"] for d in details) == pytest.approx(
        [6 / 7, 1], abs=1e-4
    )
    assert kept.num_rows == 3


def test_empty_texts_are_never_near_duplicates() -> None:
    table = records(
        [
            {"instruction": "", "output": "a"},
            {"instruction": "!!", "output": "b"},
            {"instruction": "   ", "output": "c"},
        ]
    )
    stage = MinHashDedup()
    kept, rejected = stage.run(table)
    assert kept.num_rows == 3 and rejected.num_rows == 0
    assert stage.manifest_info()["docs_without_shingles"] == 3


def test_stored_signatures_enable_incremental_dedup(tmp_path: Path) -> None:
    table, variant_of = planted_corpus(seed=4)
    variants = sorted(variant_of)
    first_run = table.take(pa.array([i for i in range(table.num_rows) if i not in variant_of]))
    kept, _ = MinHashDedup(store_signatures=True).run(first_run)
    column = kept.column(SIGNATURE_COLUMN)
    assert column.type == pa.list_(pa.uint32(), 128)
    expected = MinHasher().signatures(document_text(kept, ["instruction", "input", "messages"])).sig
    assert np.array_equal(np.array(column.to_pylist(), np.uint32).T, expected)
    path = tmp_path / "earlier.parquet"
    pq.write_table(kept, path)
    # The second run sees only the variants: each is a near-duplicate of a row of the first run.
    second = table.take(pa.array(variants))
    stage = MinHashDedup(reference=[str(tmp_path / "*.parquet")])
    kept2, rejected2 = stage.run(second)
    assert kept2.num_rows == 0
    assert rejected2.num_rows == len(variants)
    base_ids = {table.column("id")[variant_of[v]].as_py() for v in variants}
    assert set(rejected2.column("duplicate_of").to_pylist()) == base_ids
    detail = json.loads(rejected2.column("detail")[0].as_py())
    assert detail["keeper"] == "reference"
    assert detail["measure"] == "jaccard"  # the earlier run's text is there: verified exactly
    assert stage.manifest_info()["reference_docs"] == first_run.num_rows
    # Text rewritten after dedup (e.g. by template expansion) no longer matches the stored
    # signatures: those rows are compared by the signature estimate, not by the new text.
    rewritten = kept.set_column(
        kept.column_names.index("instruction"),
        "instruction",
        pc.binary_join_element_wise(
            "Answer this, step by step. " * 8, kept.column("instruction"), ""
        ),
    )
    pq.write_table(rewritten, path)
    _, rejected_rewritten = MinHashDedup(reference=[str(path)]).run(second)
    assert rejected_rewritten.num_rows == len(variants)
    measures = {json.loads(d)["measure"] for d in rejected_rewritten.column("detail").to_pylist()}
    assert measures == {"estimate"}
    # Signatures alone (no text columns): verified with the signature estimate.
    pq.write_table(kept.select(["id", SIGNATURE_COLUMN]), path)
    _, rejected3 = MinHashDedup(reference=[str(path)]).run(second)
    assert rejected3.num_rows == len(variants)
    assert json.loads(rejected3.column("detail")[0].as_py())["measure"] == "estimate"
    # Signatures made with other parameters are refused, naming the difference.
    with pytest.raises(StageError, match="seed"):
        MinHashDedup(reference=[str(path)], seed=2).run(second)
    with pytest.raises(StageError, match="no files match"):
        MinHashDedup(reference=[str(tmp_path / "none*.parquet")]).run(second)


# -------------------------------------------------------------------------- integration


def test_pipeline_exact_then_near() -> None:
    tables = [
        read_file(SAMPLES / name, source=name.split(".")[0]).records
        for name in ("alpaca.json", "dolly.jsonl", "sharegpt.json")
    ]
    table = pa.concat_tables(tables)
    result = Pipeline([ExactDedup(), MinHashDedup()]).run(table)
    assert result.kept.num_rows + result.rejected.num_rows == table.num_rows
    assert set(result.rejected.column("stage").to_pylist()) <= {
        "exact_dedup_v1",
        "minhash_dedup_v1",
    }


@pytest.mark.realdata
@needs_shared_data
def test_real_dolly_has_near_duplicates() -> None:
    table = read_file(
        SHARED_DATA / "dolly" / "databricks-dolly-15k.jsonl.gz", source="dolly"
    ).records
    exact_kept, exact_rejected = ExactDedup().run(table)
    stage = MinHashDedup()
    kept, rejected = stage.run(exact_kept)
    assert exact_rejected.num_rows > 100
    assert rejected.num_rows > 100
    assert kept.num_rows + rejected.num_rows == exact_kept.num_rows
    sims = [json.loads(d)["similarity"] for d in rejected.column("detail").to_pylist()]
    assert min(sims) >= 0.8
    assert set(rejected.column("duplicate_of").to_pylist()) <= set(kept.column("id").to_pylist())


# ------------------------------------------------------------------- fit in steps (executors)


def fit_in_steps(stage: MinHashDedup, batches: list[pa.Table], groups: int) -> None:
    """What the Ray engine does, in-process: band rows per batch, pairs per group of whole parts
    (assigned to groups in an arbitrary way), fit_pairs on the union."""
    rows, offset = [], 0
    for batch in batches:
        rows.append(stage.band_rows(batch, offset))
        offset += batch.num_rows
    band_rows = pa.concat_tables(rows)
    parts = band_rows.column("part").to_numpy()
    max_doc = int(pc.max(band_rows.column("doc")).as_py() or 0)
    group = (parts * np.uint32(2654435761)) % np.uint32(groups)
    pairs = [
        stage.band_pairs(band_rows.filter(pa.array(group == g)), max_doc) for g in range(groups)
    ]
    stage.fit_pairs(batches, np.concatenate(pairs), band_rows.num_rows)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"field_thresholds": {"instruction": 0.5, "input": 0.5}},
        {"verify": "estimate", "clusters": "connected"},
        {"shingle": "char", "ngram": 4, "threshold": 0.6, "keep": ["first"]},
        # Nearly every pair is a candidate: long chains, cut by verification.
        {"ngram": 1, "bands": 128, "rows": 1},
    ],
)
def test_fit_in_steps_equals_fit(params: dict[str, Any]) -> None:
    table, _ = planted_corpus(seed=6, bases=120)
    empty = records([{"instruction": "", "output": "e"}, {"instruction": "!!", "output": "f"}])
    table = pa.concat_tables([table.slice(0, 50), empty, table.slice(50)])
    batches = [table.slice(start, 23) for start in range(0, table.num_rows, 23)]
    whole = MinHashDedup(params)
    whole.fit(batches)
    expected = [whole.apply(batch) for batch in batches]
    info_whole = whole.manifest_info()
    del info_whole["seconds"], info_whole["cpu_seconds"]
    assert info_whole["removed"] > 0 and info_whole["docs_without_shingles"] == 2
    for groups in (1, 5):
        split = MinHashDedup(params)
        fit_in_steps(split, batches, groups)
        for batch, result in zip(batches, expected, strict=True):
            kept, rejected = split.apply(batch)
            assert kept.equals(result.kept) and rejected.equals(result.rejected)
        info_split = split.manifest_info()
        del info_split["seconds"], info_split["cpu_seconds"]
        assert info_split == info_whole


def test_fit_in_steps_on_empty_input_and_its_fallbacks(tmp_path: Path) -> None:
    stage = MinHashDedup()
    assert stage.split_fallback() is None
    empty = records([])
    assert stage.band_rows(empty, 0).num_rows == 0
    stage.fit_pairs([empty], np.zeros(0, np.uint64), 0)
    kept, rejected = stage.apply(empty)
    assert kept.num_rows == rejected.num_rows == 0
    table, _ = planted_corpus(seed=1)
    for params, setting in (
        ({"cross_source": False}, "cross_source"),
        ({"store_signatures": True}, "store_signatures"),
        ({"reference": [str(tmp_path / "*.parquet")]}, "reference"),
    ):
        stage = MinHashDedup(params)
        assert setting in (stage.split_fallback() or "")
        with pytest.raises(StageError, match=f"{setting}.*use fit"):
            stage.band_rows(table, 0)
        with pytest.raises(StageError, match=setting):
            stage.fit_pairs([table], np.zeros(0, np.uint64), 0)


def test_band_partitions_keep_truncated_buckets_whole() -> None:
    # Keys that differ only in the low bits bucket_pairs gives to document numbers: one bucket
    # per (band, top bits), which every grouping by part must keep in one piece.
    rng = np.random.default_rng(0)
    n = 3000
    band = rng.integers(0, 4, n).astype(np.uint16)
    keys = (rng.integers(0, 40, n).astype(np.uint64) << np.uint64(32)) | rng.integers(
        0, 1 << 12, n
    ).astype(np.uint64)
    docs = rng.permutation(n).astype(np.int64)
    doc_bits = doc_bits_for(n - 1)
    expected = np.unique(
        np.concatenate([bucket_pairs(keys[band == b], docs[band == b], doc_bits) for b in range(4)])
    )
    assert len(expected) > n
    parts = np.concatenate([band_partition(int(b), keys[band == b], 1 << 16) for b in range(4)])
    order = np.concatenate([np.flatnonzero(band == b) for b in range(4)])
    for groups in (1, 3, 7):
        group = parts % groups
        found = [
            band_bucket_pairs(band[order][g], keys[order][g], docs[order][g], doc_bits)
            for g in (group == k for k in range(groups))
        ]
        assert np.array_equal(np.unique(np.concatenate(found)), expected)
    with pytest.raises(StageError, match="2\\*\\*32"):
        doc_bits_for(1 << 32)


def test_v2_keeps_different_questions_about_one_passage_apart() -> None:
    passage = (
        "Swarcliffe Hall is a large hall that was constructed in 1800 in Birstwith, near Harrogate, "
        "England. The current house was built by John Greenwood in 1850 and was later visited by "
        "the Duke of Cambridge in 1888; it has been a school and is now a private residence again. "
    ) + " ".join(  # a long shared passage, as Dolly gives many questions
        f"Room {i} of the hall has a {colour} door and {i + 2} windows facing the {side}."
        for i, (colour, side) in enumerate(
            zip(
                ["red", "blue", "green", "white", "black", "grey"] * 3,
                ["north", "south", "east"] * 6,
                strict=True,
            )
        )
    )
    table = records_table(
        [
            {
                "instruction": "Which duke visited Swarcliffe Hall in 1888?",
                "input": passage,
                "output": "The Duke of Cambridge.",
            },
            {
                "instruction": "Who built the current house at Swarcliffe Hall?",
                "input": passage,
                "output": "John Greenwood.",
            },
            {
                "instruction": "Which duke visited Swarcliffe Hall in 1888 ?",
                "input": passage,
                "output": "Cambridge.",
            },
        ]
    )
    v1 = MinHashDedup().run(table)
    v2 = MinHashDedupV2().run(table)
    assert v1.rejected.num_rows == 2  # v1 sees one passage: three duplicates
    # v2: the second question is different; the third is the first one again
    assert v2.kept.column("instruction").to_pylist()[:2] == [
        "Which duke visited Swarcliffe Hall in 1888?",
        "Who built the current house at Swarcliffe Hall?",
    ]
    assert v2.rejected.column("instruction").to_pylist() == [
        "Which duke visited Swarcliffe Hall in 1888 ?"
    ]
    assert MinHashDedupV2(field_thresholds={}, same_names=False).run(table).rejected.num_rows == 2


def test_v3_keeps_minimal_pairs_apart() -> None:
    """Wrong drops of v2 read in bench/audit/near_duplicate.jsonl: one word flips the request."""
    pairs = [
        (
            "What are the official forms of written Norwegian?",
            "What are the unofficial forms of written Norwegian?",
        ),
        (
            "Tell me whether these countries hosted the Olympics: Afghanistan, Albania, Algeria, Andorra, Angola",
            "Tell me whether these countries won the football World Cup: Afghanistan, Albania, Algeria, Andorra, Angola",
        ),
    ]
    table = records(
        [{"instruction": text, "output": "An answer."} for pair in pairs for text in pair]
    )
    loose = MinHashDedupV3(
        threshold=0.3, ngram=2, field_thresholds={}, same_names=False, minimal_pairs=False
    )
    assert loose.run(table).rejected.num_rows == 2  # word overlap alone calls them duplicates
    assert (
        MinHashDedupV3(threshold=0.3, ngram=2, field_thresholds={}, same_names=False)
        .run(table)
        .rejected.num_rows
        == 0
    )


def test_v4_sees_the_shared_passage_and_a_changed_ask() -> None:
    """The two wrong drops of v3 in bench/audit/near_duplicate.jsonl (Dolly)."""
    azores = (
        "These islands can be divided into three recognizable groups located on the Azores "
        "Plateau: The Eastern Group of São Miguel, Santa Maria and Formigas Islets; The Central "
        "Group of Terceira, Graciosa, São Jorge, Pico and Faial; The Western Group of Flores and Corvo."
    )
    world = (
        "Imagine a world where life expectancy is fixed and the same for everyone at birth, yet "
        'people can engage in life expectancy "donation" – meaning that someone can extend your '
        "life three years longer at the expense of theirs. Talk about a likely scenario in this "
        "world that involves "
    )
    rows = [
        {
            "instruction": "Extract the names of the islands located on the Azores plateau from "
            "the text. Separate them with a comma.",
            "input": azores,
        },
        {
            "instruction": "Extract the names of the groups of islands located on the Azores "
            "plateau from the text. Separate them with a comma.",
            "input": azores,
        },
        {"instruction": world + "voluntary donation."},
        {"instruction": world + "manipulated, coerced donation."},
    ]
    table = records([{"output": "An answer.", **row} for row in rows])
    assert MinHashDedupV3().run(table).rejected.num_rows == 2
    assert MinHashDedupV4().run(table).rejected.num_rows == 0
    # The same request about the same passage is still a duplicate.
    again = records([{"output": "An answer.", **rows[0]}] * 2)
    assert MinHashDedupV4().run(again).rejected.num_rows == 1


def test_fit_in_steps_keeps_only_the_candidates_requests_and_guards_the_same_pairs() -> None:
    # minhash_dedup_v4 checks minimal pairs on the requests' text: fit in steps keeps the text of
    # candidate documents only (at 10M rows every instruction and input are gigabytes), and
    # decides exactly as the whole fit, minimal pairs included.
    table, _ = planted_corpus(seed=8, bases=80)
    story = " ".join(f"word{i}" for i in range(60))
    pairs = records(
        [
            {"instruction": f"Describe the official policy {story}", "output": "a"},
            {"instruction": f"Describe the unofficial policy {story}", "output": "b"},
            {"instruction": f"Summarize the report {story} carefully", "output": "c"},
            {"instruction": f"Summarize the report {story} carefully!", "output": "d"},
        ]
    )
    rng = random.Random(3)
    vocabulary = [f"term{i}" for i in range(500)]
    unique = records(
        [
            {"instruction": " ".join(rng.sample(vocabulary, 12)), "output": str(i)}
            for i in range(150)
        ]
    )
    table = pa.concat_tables([table.slice(0, 40), pairs, unique, table.slice(40)])
    batches = [table.slice(start, 31) for start in range(0, table.num_rows, 31)]
    whole = get_stage("minhash_dedup")()
    assert whole.name == "minhash_dedup_v4"
    whole.fit(batches)
    expected = [whole.apply(batch) for batch in batches]
    removed = pa.concat_tables([r.rejected for r in expected]).column("id").to_pylist()
    ids = pairs.column("id").to_pylist()
    assert ids[3] in removed or ids[2] in removed  # a near duplicate
    assert ids[0] not in removed and ids[1] not in removed  # a minimal pair

    split = get_stage("minhash_dedup")()
    fit_in_steps(split, batches, 3)
    for batch, result in zip(batches, expected, strict=True):
        kept, rejected = split.apply(batch)
        assert kept.equals(result.kept) and rejected.equals(result.rejected)
    kept_requests = sum(len(chunk) for chunk in split._requests)
    assert split._request_docs is not None
    assert kept_requests == len(np.concatenate(split._request_docs)) < table.num_rows // 2
    assert whole._request_docs is None
    assert sum(len(chunk) for chunk in whole._requests) == table.num_rows
