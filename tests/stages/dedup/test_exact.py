from __future__ import annotations

import pickle
import random

import pyarrow as pa
from testutils import records_table

from curate.stages import get_stage
from curate.stages.dedup.exact import ExactDedup, dedup_key


def table_of(*rows: dict, source: str = "s") -> pa.Table:
    return records_table(rows, source, output="")


def test_first_occurrence_kept_and_rejects_point_at_it() -> None:
    table = table_of(
        {"instruction": "Name the capital of Australia.", "output": "Canberra"},
        {"instruction": "name the capital of australia", "output": "Canberra is the capital."},
        {"instruction": "Name the capital of Austria.", "output": "Vienna"},
        {"instruction": "NAME THE CAPITAL OF AUSTRALIA?!", "output": "It is Canberra."},
    )
    kept, rejected = ExactDedup().run(table)
    assert kept.column("instruction").to_pylist() == [
        "Name the capital of Australia.",
        "Name the capital of Austria.",
    ]
    keeper = kept.column("id")[0].as_py()
    rows = rejected.to_pylist()
    assert [r["reason"] for r in rows] == ["exact_duplicate", "exact_duplicate"]
    assert [r["duplicate_of"] for r in rows] == [keeper, keeper]
    assert [r["source_row"] for r in rows] == [1, 3]
    assert all(r["stage"] == "exact_dedup_v1" for r in rows)


def test_key_fields_are_configurable() -> None:
    table = table_of(
        {"instruction": "Summarize.", "input": "Text one."},
        {"instruction": "Summarize.", "input": "Text two."},
    )
    assert ExactDedup().run(table).kept.num_rows == 2  # default key: instruction + input
    assert get_stage("exact_dedup")(fields=["instruction"]).run(table).kept.num_rows == 1


def test_conversations_match_only_when_the_whole_user_side_matches() -> None:
    def conv(first: str) -> dict:
        return {
            "instruction": "And then?",
            "output": "ok",
            "messages": [
                {"role": "user", "content": first},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": "And then?"},
                {"role": "assistant", "content": "ok"},
            ],
        }

    table = table_of(conv("Tell me a story."), conv("Explain TCP."), conv("Tell me a story!"))
    kept, rejected = ExactDedup().run(table)
    assert kept.num_rows == 2 and rejected.num_rows == 1
    assert ExactDedup(include_conversation=False).run(table).kept.num_rows == 1


def test_streaming_fit_apply_matches_single_batch_run_across_sources() -> None:
    a = table_of({"instruction": "q1"}, {"instruction": "q2"}, source="a")
    b = table_of({"instruction": "Q2"}, {"instruction": "q3"}, {"instruction": "q1."}, source="b")
    stage = ExactDedup()
    stage.fit([a, b])
    streamed = [stage.apply(a), stage.apply(b)]
    kept = pa.concat_tables([r.kept for r in streamed])
    whole = ExactDedup().run(pa.concat_tables([a, b]))
    assert kept.equals(whole.kept)
    assert kept.column("instruction").to_pylist() == ["q1", "q2", "q3"]
    rejected = pa.concat_tables([r.rejected for r in streamed])
    assert rejected.column("source").to_pylist() == ["b", "b"]  # cross-source: earlier source wins


def test_identical_rows_are_all_but_one_dropped() -> None:
    table = table_of(
        {"instruction": "same", "output": "same"},
        {"instruction": "same", "output": "same"},
        {"instruction": "same", "output": "same"},
    )
    kept, rejected = ExactDedup().run(table)
    assert kept.num_rows == 1 and rejected.num_rows == 2
    assert kept.num_rows + rejected.num_rows == table.num_rows


def test_every_row_points_at_the_first_row_with_its_key_across_shards() -> None:
    # Many rows over few keys (spelled differently), fitted in shards of random sizes: each row
    # is kept iff no earlier row of the stream has its normalized key, else points at that row.
    rng = random.Random(5)
    words = ["alpha", "Beta", "GAMMA", "delta"]
    rows = [
        {"instruction": f"{rng.choice(words)} {rng.choice(words)}{rng.choice(['', '.', '?!'])}"}
        for _ in range(300)
    ]
    table = table_of(*rows)
    cuts = sorted(rng.sample(range(1, len(rows)), 6))
    shards = [table.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    stage = ExactDedup()
    stage.fit(shards)
    results = [stage.apply(shard) for shard in shards]

    keys = dedup_key(table, ["instruction", "input", "messages"]).to_pylist()
    ids = table.column("id").to_pylist()
    first: dict[str, str] = {}
    expected_kept, expected_dup_of = [], []
    for key, row_id in zip(keys, ids, strict=True):
        if key in first:
            expected_dup_of.append(first[key])
        else:
            first[key] = row_id
            expected_kept.append(row_id)
    kept = pa.concat_tables([r.kept for r in results])
    rejected = pa.concat_tables([r.rejected for r in results])
    assert kept.column("id").to_pylist() == expected_kept
    assert rejected.column("duplicate_of").to_pylist() == expected_dup_of
    assert 4 < len(expected_kept) < len(rows) // 2  # keys repeat, and not all into one


def test_a_shard_copy_applies_its_shard_as_the_whole_fit_does() -> None:
    # An engine sends each shard's process a copy holding only that shard's keepers and their
    # ids: the same rows and rejects as applying every shard in order with the whole fit, and a
    # copy that grows with its shard, not with the stream.
    rng = random.Random(7)
    words = ["alpha", "Beta", "GAMMA", "delta", "eps"]
    rows = [{"instruction": f"{rng.choice(words)} {rng.choice(words)}"} for _ in range(400)]
    table = table_of(*rows)
    cuts = sorted(rng.sample(range(1, len(rows)), 7))
    bounds = list(zip([0, *cuts], [*cuts, len(rows)], strict=True))
    shards = [table.slice(a, b - a) for a, b in bounds]
    stage = ExactDedup()
    stage.fit(shards)
    copies = [
        pickle.loads(pickle.dumps(stage.shard_copy(batch, a, b - a)))
        for batch, (a, b) in enumerate(bounds)
    ]
    pairs = enumerate(zip(copies, shards, strict=True))
    by_copies = [copy.apply_shard(shard, b) for b, (copy, shard) in pairs]
    in_order = [stage.apply(shard) for shard in shards]

    assert stage.applies_per_shard()
    for ours, reference in zip(by_copies, in_order, strict=True):
        assert ours.kept.equals(reference.kept)
        assert ours.rejected.equals(reference.rejected)
    assert sum(r.rejected.num_rows for r in in_order) > len(rows) // 2
    # The last shard's duplicates point at rows kept in earlier shards: its copy carries their ids.
    last = by_copies[-1].rejected.column("duplicate_of").to_pylist()
    earlier = {i for r in in_order[:-1] for i in r.kept.column("id").to_pylist()}
    assert last and set(last) <= earlier
    smallest = min(range(len(bounds)), key=lambda b: bounds[b][1] - bounds[b][0])
    assert len(pickle.dumps(copies[smallest])) < len(pickle.dumps(stage)) / 2
