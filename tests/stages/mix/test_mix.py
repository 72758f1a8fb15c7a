"""The mix_v1 stage: sampling, upsampling, rejects, batch independence, manifest info."""

from __future__ import annotations

import math
import pickle
import random
from collections import Counter
from typing import Any

import pyarrow as pa
from testutils import records_table

from curate.records import REJECT_SCHEMA
from curate.stages import get_stage
from curate.stages.mix.mix import Mix


def source(name: str, n: int, **row: Any) -> pa.Table:
    rows = (
        {"instruction": f"{name} question {i}", "output": f"answer {i}", **row} for i in range(n)
    )
    return records_table(rows, name)


def run(stage: Mix, batches: list[pa.Table]) -> tuple[pa.Table, pa.Table]:
    stage.fit(batches)
    results = [stage.apply(b) for b in batches]
    return pa.concat_tables([r.kept for r in results]), pa.concat_tables(
        [r.rejected for r in results]
    )


def test_registered_and_identity_by_default() -> None:
    assert get_stage("mix") is Mix
    table = pa.concat_tables([source("a", 5), source("b", 3)])
    kept, rejected = Mix().run(table)
    assert kept.equals(table) and rejected.num_rows == 0


def test_downsampling_rejects_the_rest_as_not_sampled() -> None:
    a, b = source("a", 100), source("b", 10)
    kept, rejected = run(Mix(target=30, cap=20), [a, b])
    # masses 20 and 10 -> 20 and 10 rows
    assert Counter(kept.column("source").to_pylist()) == {"a": 20, "b": 10}
    assert rejected.num_rows == 80
    assert rejected.schema == REJECT_SCHEMA
    assert set(rejected.column("reason").to_pylist()) == {"not_sampled"}
    assert set(rejected.column("detail").to_pylist()) == {"a: 20 of 100 rows sampled"}
    kept_a = set(
        kept.filter(pa.compute.equal(kept.column("source"), "a")).column("source_row").to_pylist()
    )
    rejected_a = set(rejected.column("source_row").to_pylist())
    assert (
        len(kept_a) == 20
        and kept_a.isdisjoint(rejected_a)
        and kept_a | rejected_a == set(range(100))
    )


def test_upsampling_by_whole_repeats_plus_a_seeded_remainder() -> None:
    table = source("a", 4)
    kept, rejected = Mix(target=10).run(table)
    # 10 rows from 4: every row twice, and 2 rows a third time
    repeats = Counter(kept.column("source_row").to_pylist())
    assert sorted(repeats.values()) == [2, 2, 3, 3]
    assert rejected.num_rows == 0
    again = Counter(Mix(target=10).run(table).kept.column("source_row").to_pylist())
    assert again == repeats
    seeds = {
        tuple(
            sorted(
                r
                for r, c in Counter(
                    Mix(target=10, seed=s).run(table).kept.column("source_row").to_pylist()
                ).items()
                if c == 3
            )
        )
        for s in range(10)
    }
    assert len(seeds) > 1  # the remainder depends on the seed


def test_a_larger_target_keeps_what_a_smaller_one_drew() -> None:
    table = source("a", 200)
    small = set(Mix(target=20).run(table).kept.column("source_row").to_pylist())
    large = set(Mix(target=60).run(table).kept.column("source_row").to_pylist())
    assert len(small) == 20 and len(large) == 60 and small <= large


def test_batch_boundaries_do_not_change_the_mix() -> None:
    table = pa.concat_tables(
        [source("a", 50, task="t1"), source("a", 30, task="t2"), source("b", 20)]
    )
    whole, whole_rejected = run(Mix(target=40, seed=3), [table])
    parts, parts_rejected = run(
        Mix(target=40, seed=3), [table.slice(0, 17), table.slice(17, 41), table.slice(58)]
    )
    assert whole.equals(parts) and whole_rejected.equals(parts_rejected)


def test_units_are_tasks_of_sources_and_dolly_categories() -> None:
    table = pa.concat_tables(
        [
            source("dolly", 30, category="open_qa"),
            source("dolly", 10, category="closed_qa"),
            source("niv2", 10, task="niv2", task_source="niv2"),
        ]
    )
    stage = Mix(target=20, cap=10)
    run(stage, [table])
    info = stage.manifest_info()
    assert {u["unit"]: u["allocated"] for u in info["units"]} == {
        "dolly/closed_qa": 7,
        "dolly/open_qa": 7,
        "niv2": 6,
    }
    assert [round(u["expected"], 4) for u in info["units"]] == [6.6667] * 3
    by_source = Mix(target=20, cap=10, by="source")
    run(by_source, [table])
    assert {u["unit"]: u["allocated"] for u in by_source.manifest_info()["units"]} == {
        "dolly": 10,
        "niv2": 10,
    }


def test_manifest_info_realized_counts_and_diversity() -> None:
    a = source("a", 40, task="t1")
    b = source("b", 40, task="t2")
    b = b.set_column(
        b.column_names.index("template_type"), "template_type", pa.array(["zs_opt"] * 40)
    )
    b = b.set_column(
        b.column_names.index("template_id"),
        "template_id",
        pa.array([f"f/t{i % 3}" for i in range(40)]),
    )
    stage = Mix(target=20)
    kept, _ = run(stage, [a, b])
    info = stage.manifest_info()
    assert info["realized"] == 20 and info["total_allocated"] == 20
    assert [(u["unit"], u["allocated"], u["realized"]) for u in info["units"]] == [
        ("a/t1", 10, 10),
        ("b/t2", 10, 10),
    ]
    assert info["by_source"] == {"a": 10, "b": 10}
    assert info["by_task"] == {"t1": 10, "t2": 10}
    assert info["by_template_type"] == {"(none)": 10, "zs_opt": 10}
    diversity = info["diversity"]
    assert diversity["tasks"] == 2 and diversity["task_entropy_bits"] == 1.0
    assert diversity["task_entropy_normalized"] == 1.0 and diversity["largest_task_share"] == 0.5
    assert diversity["templates"] == len(set(kept.column("template_id").drop_null().to_pylist()))
    # The first word of "a question 1" / "b question 2": two leading words, half each.
    assert diversity["leading_words"]["top"] == {"a": 0.5, "b": 0.5}
    assert math.isclose(diversity["leading_words"]["entropy_bits"], 1.0)


def test_empty_and_unfitted() -> None:
    from curate.records import RECORD_SCHEMA

    stage = Mix(target=10)
    kept, rejected = stage.run(RECORD_SCHEMA.empty_table())
    assert kept.num_rows == 0 and rejected.num_rows == 0
    assert Mix().manifest_info() == {}


def test_shard_copies_apply_as_in_order_and_their_counts_add_up() -> None:
    # An engine applies each shard with a copy of its own (in another process): a unit's draw
    # continues where the shards before it left off, and the copies' realized counts come back.
    table = pa.concat_tables(
        [source("a", 50, task="t1"), source("a", 30, task="t2"), source("b", 20), source("c", 9)]
    )
    order = list(range(table.num_rows))
    random.Random(4).shuffle(order)
    table = table.take(pa.array(order))  # units interleave across the shards
    bounds = [(0, 23), (23, 41), (64, 0), (64, 45)]  # an empty shard too
    shards = [table.slice(first, rows) for first, rows in bounds]
    in_order = Mix(target=70, seed=5, cap=25)
    in_order.fit(shards)
    expected = [in_order.apply(shard) for shard in shards]

    fitted = Mix(target=70, seed=5, cap=25)
    fitted.fit_parts(fitted.fit_part(shard) for shard in shards)
    copies = [
        pickle.loads(pickle.dumps(fitted.shard_copy(batch, first, rows)))
        for batch, (first, rows) in enumerate(bounds)
    ]
    pairs = enumerate(zip(copies, shards, strict=True))
    got = [copy.apply_shard(shard, b) for b, (copy, shard) in pairs]
    fitted.absorb_applied([copy.applied_info() for copy in copies])

    assert fitted.applies_per_shard() and fitted.fits_in_parts()
    for ours, reference in zip(got, expected, strict=True):
        assert ours.kept.equals(reference.kept)
        assert ours.rejected.equals(reference.rejected)
    assert fitted.manifest_info() == in_order.manifest_info()
    assert 0 < sum(r.rejected.num_rows for r in expected) < table.num_rows
    kept_ids = [i for r in expected for i in r.kept.column("id").to_pylist()]
    assert len(kept_ids) > len(set(kept_ids))  # a small unit is upsampled (rows repeated) too
