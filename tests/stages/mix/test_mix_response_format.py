"""mix_v1 with ``by: response_format``: a cap balances answer formats across sources."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from testutils import records_table

from curate.errors import StageError
from curate.stages.mix.mix import Mix
from curate.stages.response_format import ResponseFormat


def answers(source: str, kinds: dict[str, int]) -> pa.Table:
    """``source`` rows whose answers have the given formats (as many of each as asked)."""
    makers = {
        "numbered_list": lambda i: f"1. Step {i} first\n2. Then step {i + 1}\n3. Done",
        "bullet_list": lambda i: f"- item {i}\n- item {i + 1}",
        "sentence": lambda i: f"The answer to question {i} is a full sentence.",
        "short_answer": lambda i: f"Answer {i}",
        "code": lambda i: f"def f{i}(x):\n    return x + {i}",
    }
    rows = [
        {"instruction": f"{source} {kind} question {i}", "output": makers[kind](i)}
        for kind, n in kinds.items()
        for i in range(n)
    ]
    return records_table(rows, source)


def labelled(*tables: pa.Table) -> pa.Table:
    return ResponseFormat().run(pa.concat_tables(tables)).kept


def shares(table: pa.Table) -> dict[str, float]:
    counts = Counter(table.column("response_format").to_pylist())
    return {name: count / table.num_rows for name, count in counts.items()}


def run(stage: Mix, batches: list[pa.Table]) -> tuple[pa.Table, pa.Table]:
    stage.fit(batches)
    results = [stage.apply(b) for b in batches]
    return (
        pa.concat_tables([r.kept for r in results]),
        pa.concat_tables([r.rejected for r in results]),
    )


def test_a_cap_reduces_the_dominant_format() -> None:
    # 80% numbered lists across two sources, as in a list-heavy instruction set.
    table = labelled(
        answers("a", {"numbered_list": 120, "sentence": 10, "code": 5}),
        answers("b", {"numbered_list": 40, "short_answer": 20, "bullet_list": 5}),
    )
    before = shares(table)
    assert before["numbered_list"] == 160 / 200
    kept, rejected = run(Mix(by="response_format", cap=20), [table])
    after = Counter(kept.column("response_format").to_pylist())
    # Every format counts as at most 20 rows: numbered lists are cut to 20, the rest stay.
    assert after == {
        "numbered_list": 20,
        "short_answer": 20,
        "sentence": 10,
        "code": 5,
        "bullet_list": 5,
    }
    assert shares(kept)["numbered_list"] == 20 / 60 < before["numbered_list"]
    assert rejected.num_rows == 140
    assert set(rejected.column("reason").to_pylist()) == {"not_sampled"}
    assert set(rejected.column("detail").to_pylist()) == {"numbered_list: 20 of 160 rows sampled"}
    # The numbered lists kept are drawn from both sources.
    lists = kept.filter(pc.equal(kept.column("response_format"), "numbered_list"))
    assert set(lists.column("source").to_pylist()) == {"a", "b"}


def test_by_task_with_the_same_cap_leaves_the_format_skew() -> None:
    # Units are sources here (no tasks): capping each source keeps lists dominant.
    table = labelled(
        answers("a", {"numbered_list": 120, "sentence": 10, "code": 5}),
        answers("b", {"numbered_list": 40, "short_answer": 20, "bullet_list": 5}),
    )
    kept, _ = run(Mix(by="task", cap=20, target=40), [table])
    by_format = run(Mix(by="response_format", cap=20, target=40), [table])[0]
    assert shares(by_format)["numbered_list"] < shares(kept)["numbered_list"]


def test_target_temperature_and_weights_name_formats() -> None:
    table = labelled(answers("a", {"numbered_list": 100, "sentence": 30, "code": 10}))
    stage = Mix(by="response_format", target=50, weights={"numbered_list": 0.2})
    kept, _ = run(stage, [table])
    counts = Counter(kept.column("response_format").to_pylist())
    # 10 numbered lists (20%), the other 40 rows by mass: 30 sentences, 10 code answers.
    assert counts == {"numbered_list": 10, "sentence": 30, "code": 10}
    info = stage.manifest_info()
    assert info["by"] == "response_format"
    units = {u["unit"]: u for u in info["units"]}
    assert set(units) == {"code", "numbered_list", "sentence"}
    assert units["numbered_list"]["weight_entry"] == "numbered_list"
    assert units["numbered_list"]["source"] == "" and units["numbered_list"]["task"] is None
    assert info["by_response_format"] == {"code": 10, "numbered_list": 10, "sentence": 30}
    assert info["by_source"] == {"a": 50}


def test_batch_boundaries_do_not_change_the_mix() -> None:
    table = labelled(
        answers("a", {"numbered_list": 50, "sentence": 10}),
        answers("b", {"numbered_list": 30, "code": 12}),
    )
    whole, whole_rejected = run(Mix(by="response_format", cap=15, seed=4), [table])
    parts, parts_rejected = run(
        Mix(by="response_format", cap=15, seed=4),
        [table.slice(0, 23), table.slice(23, 40), table.slice(63)],
    )
    assert whole.equals(parts) and whole_rejected.equals(parts_rejected)


def test_missing_column_names_the_stage_to_add() -> None:
    table = answers("a", {"sentence": 3})
    with pytest.raises(StageError, match="add the response_format stage before mix"):
        Mix(by="response_format", cap=2).run(table)
    # Even for an empty stream: the recipe is wrong whatever the data.
    with pytest.raises(StageError, match="response_format"):
        Mix(by="response_format").fit([table.slice(0, 0)])


def test_null_formats_are_one_unit() -> None:
    table = labelled(answers("a", {"sentence": 4, "code": 2}))
    column = table.column_names.index("response_format")
    nulled = table.set_column(
        column, "response_format", pa.array([None] * 3 + ["code"] * 3, pa.string())
    )
    stage = Mix(by="response_format", cap=2)
    kept, _ = run(stage, [nulled])
    assert Counter(kept.column("response_format").to_pylist()) == {None: 2, "code": 2}
    assert {u["unit"] for u in stage.manifest_info()["units"]} == {"(none)", "code"}


def test_by_task_manifest_unchanged_without_the_column() -> None:
    # Data without the column: the manifest holds exactly the keys it always did.
    stage = Mix(target=5)
    run(stage, [answers("a", {"sentence": 10})])
    assert "by_response_format" not in stage.manifest_info()
    # With the column, a task mix also reports the formats it kept.
    labelled_stage = Mix(target=5)
    run(labelled_stage, [labelled(answers("a", {"sentence": 10}))])
    assert labelled_stage.manifest_info()["by_response_format"] == {"sentence": 5}
