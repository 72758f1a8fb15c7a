"""Assignment (balanced, seeded, batch-independent), few-shot assembly, inversion, rendering."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from testutils import records_table

from curate.records import compute_ids
from curate.templates import Expander, load_families
from curate.templates.render import count_tokens, record_context, render


def table_of(rows: list[dict[str, Any]], source: str = "s") -> pa.Table:
    return records_table(rows, source, output="out")


ROUND_ROBIN = """\
id: rr
applies_to: {}
few_shot: {k: 2, separator: "\\n---\\n", shot_separator: " => ", max_chars: 200}
examples:
  - {instruction: a, output: b, task: t}
  - {instruction: c, output: d, task: t}
templates:
"""


def family_dir(tmp_path: Path, zero_shot: int = 7, few_shot: bool = False) -> Path:
    text = ROUND_ROBIN
    for i in range(zero_shot):
        text += f'  - {{id: t{i}, type: zs_noopt, prompt: "T{i} {{{{ instruction }}}}", completion: "{{{{ output }}}}"}}\n'
    if few_shot:
        text += '  - {id: shots, type: fs_noopt, prompt: "Q {{ instruction }}", completion: "{{ output }}"}\n'
    (tmp_path / "rr.yaml").write_text(text)
    return tmp_path


def records(n: int, tasks: tuple[str, ...] = ("t",)) -> pa.Table:
    return table_of(
        [
            {"instruction": f"question {i}", "output": f"answer {i}", "task": tasks[i % len(tasks)]}
            for i in range(n)
        ]
    )


def run(expander: Expander, batches: list[pa.Table]) -> pa.Table:
    expander.fit(batches)
    return pa.concat_tables([expander.expand(b).table for b in batches])


def test_every_template_is_used_within_one_per_task(tmp_path: Path) -> None:
    expander = Expander(load_families([family_dir(tmp_path)]), seed=3)
    out = run(expander, [records(100, ("t", "u"))])
    for task in ("t", "u"):
        counts = Counter(r["template_id"] for r in out.to_pylist() if r["task"] == task)
        assert len(counts) == 7  # every template used
        assert max(counts.values()) - min(counts.values()) <= 1  # 50 records / 7 templates: 7 or 8
        assert sorted(counts.values()) == [7] * 6 + [8]
    assert expander.stats.summary()["balance"]["max_spread"] <= 1


def test_per_record_gives_distinct_templates_and_stays_balanced(tmp_path: Path) -> None:
    out = run(Expander(load_families([family_dir(tmp_path)]), per_record=3), [records(10)])
    assert out.num_rows == 30
    by_parent: dict[str, list[str]] = {}
    for row in out.to_pylist():
        by_parent.setdefault(row["parent_id"], []).append(row["template_id"])
    assert all(len(set(ids)) == 3 for ids in by_parent.values())
    counts = Counter(out.column("template_id").to_pylist())
    assert sorted(counts.values()) == [4, 4, 4, 4, 4, 5, 5]  # 30 slots over 7 templates


def test_assignment_does_not_depend_on_batch_boundaries(tmp_path: Path) -> None:
    families = load_families([family_dir(tmp_path, few_shot=True)])
    table = records(40, ("t", "u"))
    whole = run(Expander(families, seed=1), [table])
    parts = run(
        Expander(families, seed=1), [table.slice(0, 13), table.slice(13, 20), table.slice(33)]
    )
    assert whole.equals(parts)


def test_seed_changes_the_assignment_and_same_seed_repeats_it(tmp_path: Path) -> None:
    families = load_families([family_dir(tmp_path)])
    table = records(30)
    first = run(Expander(families, seed=0), [table]).column("template_id").to_pylist()
    assert run(Expander(families, seed=0), [table]).column("template_id").to_pylist() == first
    assert run(Expander(families, seed=1), [table]).column("template_id").to_pylist() != first


def test_output_rows_carry_lineage_messages_and_new_ids(tmp_path: Path) -> None:
    table = records(3)
    out = run(Expander(load_families([family_dir(tmp_path)])), [table])
    original = table.to_pylist()
    for row, parent in zip(out.to_pylist(), original, strict=True):
        assert row["parent_id"] == parent["id"]
        assert (row["source"], row["source_file"], row["source_row"]) == (
            parent["source"],
            parent["source_file"],
            parent["source_row"],
        )
        assert row["instruction"].endswith(parent["instruction"]) and row["instruction"].startswith(
            "T"
        )
        assert row["input"] == ""
        assert row["messages"] == [
            {"role": "user", "content": row["instruction"]},
            {"role": "assistant", "content": parent["output"]},
        ]
        assert (
            row["template_type"] == "zs_noopt"
            and row["inverted"] is False
            and row["exemplar_ids"] == []
        )
        assert row["id"] != parent["id"]
    assert out.column("id").to_pylist() == compute_ids(out).to_pylist()


def test_chats_and_already_templated_rows_pass_through_unchanged(tmp_path: Path) -> None:
    table = table_of(
        [
            {
                "instruction": "",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "hello"},
                ],
            },
            {
                "instruction": "Premise ... OPTIONS:\n- yes\n- no",
                "output": "yes",
                "template_type": "zs_opt",
            },
            {"instruction": "plain", "output": "x"},
        ]
    )
    expander = Expander(load_families([family_dir(tmp_path)]))
    out = run(expander, [table])
    assert out.slice(0, 2).equals(table.slice(0, 2))
    assert out.column("template_id").to_pylist()[2].startswith("rr/")
    assert expander.stats.summary()["passthrough"] == {"already_templated": 1, "has_messages": 1}


def test_few_shot_uses_same_task_never_self_and_records_ids(tmp_path: Path) -> None:
    families = load_families([family_dir(tmp_path, zero_shot=0, few_shot=True)])
    table = records(12, ("t", "u"))
    out = run(Expander(families, seed=5), [table])
    ids = dict(zip(table.column("id").to_pylist(), table.column("task").to_pylist(), strict=True))
    for row in out.to_pylist():
        assert len(row["exemplar_ids"]) == 2
        assert row["parent_id"] not in row["exemplar_ids"]
        assert {ids[e] for e in row["exemplar_ids"]} == {row["task"]}
        assert row["template_type"] == "fs_noopt"
        # "Q ex1 => out1" --- "Q ex2 => out2" --- "Q record"
        shots = row["instruction"].split("\n---\n")
        assert len(shots) == 3 and " => " in shots[0] and shots[2].startswith("Q question")


def test_few_shot_drops_shots_from_the_end_to_fit_the_budget(tmp_path: Path) -> None:
    (family,) = load_families([family_dir(tmp_path, zero_shot=0, few_shot=True)])
    template = family.templates[0]
    assert template.few_shot is not None
    ctx = record_context({"id": "r", "instruction": "x" * 100, "output": "y"})
    shots = [
        record_context({"id": f"e{i}", "instruction": "e" * 40, "output": "o"}) for i in range(2)
    ]
    # budget 200 chars: "Q " + 100 + completion 1 = 103; each shot "Q eee…(40) => o" = 47 + separator 5.
    result = render(template, ctx, 0, shots, template.few_shot)
    assert result.exemplar_ids == ["e0"] and result.shots_dropped == 1
    assert len(result.prompt) + len(result.completion) <= 200
    roomy = template.few_shot.model_copy(update={"max_chars": 1000})
    assert render(template, ctx, 0, shots, roomy).exemplar_ids == ["e0", "e1"]
    tight = template.few_shot.model_copy(update={"max_chars": None, "max_tokens": 3})
    result = render(template, ctx, 0, shots, tight)
    assert result.exemplar_ids == [] and result.prompt == "Q " + "x" * 100
    assert count_tokens("Q: what's up?") == 7  # Q : what ' s up ?


def test_all_shots_dropped_becomes_zero_shot(tmp_path: Path) -> None:
    families = load_families([family_dir(tmp_path, zero_shot=0, few_shot=True)])
    table = table_of([{"instruction": "z" * 300, "task": "t"} for _ in range(3)])
    out = run(Expander(families), [table])
    assert set(out.column("template_type").to_pylist()) == {"zs_noopt"}
    assert out.column("exemplar_ids").to_pylist() == [[], [], []]


def test_niv2_positive_examples_are_preferred_as_exemplars() -> None:
    families = load_families(only=["niv2"])
    rows = []
    for i in range(30):
        meta = {"niv2_part": "positive_example" if i in (7, 19, 23) else "instance"}
        rows.append(
            {
                "instruction": "Give the antonym.",
                "input": f"w{i}",
                "output": f"a{i}",
                "task": "t1",
                "task_source": "niv2",
                "meta": meta,
            }
        )
    table = table_of(rows)
    positives = {table.column("id")[i].as_py() for i in (7, 19, 23)}
    out = run(Expander(families, per_record=6), [table])
    few = [r for r in out.to_pylist() if r["template_type"].startswith("fs")]
    assert few
    for row in few:
        shots = set(row["exemplar_ids"])
        k = len(row["exemplar_ids"])
        if row["parent_id"] in positives:
            # The other two positives come first; a 3-shot template fills up with an instance.
            assert positives - {row["parent_id"]} <= shots and row["parent_id"] not in shots
        else:
            assert shots <= positives and k in (2, 3)
    assert {json.loads(r["meta"])["niv2_part"] for r in few} == {"positive_example", "instance"}


def test_inversion_swaps_instruction_and_response() -> None:
    families = load_families(only=["invert_instruction"])
    long = "A long answer. " * 30
    out = run(
        Expander(families), [table_of([{"instruction": "Describe the sea.", "output": long}])]
    )
    (row,) = out.to_pylist()
    assert row["inverted"] is True
    assert row["output"] == "Describe the sea."
    assert long.strip() in row["instruction"]


def test_multiple_choice_options_from_text_and_marker_targets() -> None:
    families = load_families(only=["multiple_choice"])
    table = table_of(
        [
            {
                "instruction": f"Q{i}?\\nOptions:\\n(A) red\\n(B) blue\\n(C) green",
                "output": "(B)",
                "task": "cot_aqua",
            }
            for i in range(40)
        ]
    )
    out = run(Expander(families, seed=2), [table])
    targets = set()
    for row in out.to_pylist():
        assert row["options"] == ["red", "blue", "green"]
        prompt, target = row["instruction"], row["output"]
        assert "\\n" not in prompt  # the escaped newlines of the source became line breaks
        # The original block was taken out of the question: options appear once per shot.
        assert prompt.count("red") == 1 + len(row["exemplar_ids"])
        line = next(line for line in prompt.split("\n") if line.endswith(" blue"))
        if target == "blue":  # text markers: the target is the option's text
            assert line in ("- blue", "* blue")
        else:  # letters or numbers: the target is the marker of the right option
            assert line.startswith(target) and target in ("(B)", "B", "b", "2", "(2)")
        targets.add(target)
        if row["template_id"] == "multiple_choice/fixed_options":
            assert prompt.endswith("OPTIONS:\n- red\n- blue\n- green") and target == "blue"
    assert len(targets) >= 3  # several marker schemes were drawn


def test_answer_choices_from_the_template() -> None:
    families = load_families(only=["yes_no"])
    out = run(
        Expander(families, per_record=2),
        [table_of([{"instruction": "Is ice cold?", "output": "yes"}])],
    )
    rows = out.to_pylist()
    assert {r["template_id"] for r in rows} == {"yes_no/yes_or_no", "yes_no/true_question"}
    fixed = next(r for r in rows if r["template_id"] == "yes_no/yes_or_no")
    assert fixed["instruction"] == "Is ice cold?\n\nOPTIONS:\n- yes\n- no"
    assert fixed["output"] == "yes" and fixed["options"] == ["yes", "no"]


def test_empty_render_is_a_reject_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(
        "id: e\nexamples: [{instruction: a, input: b, output: c}]\ntemplates:\n"
        '  - {id: maybe, type: zs_noopt, prompt: "{{ input }}", completion: "{{ output }}"}\n'
    )
    families = load_families([tmp_path])
    expander = Expander(families)
    table = table_of([{"instruction": "only an instruction", "output": "c"}])
    expander.fit([table])
    result = expander.expand(table)
    assert result.table.num_rows == 0
    assert result.reasons == ["template_empty"] and result.failed.column(
        "template_id"
    ).to_pylist() == ["e/maybe"]


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_batches(tmp_path: Path, n: int) -> None:
    expander = Expander(load_families([family_dir(tmp_path)]))
    out = run(expander, [records(n)])
    assert out.num_rows == n


def test_the_token_budget_counts_with_the_counter_given(tmp_path: Path) -> None:
    (family,) = load_families([family_dir(tmp_path, zero_shot=0, few_shot=True)])
    template = family.templates[0]
    assert template.few_shot is not None
    budget = template.few_shot.model_copy(update={"max_chars": None, "max_tokens": 40})
    ctx = record_context({"id": "r", "instruction": "short question", "output": "yes"})
    shots = [
        record_context({"id": f"e{i}", "instruction": "an example", "output": "o"})
        for i in range(2)
    ]
    # Words and punctuation: both shots fit in 40; a tokenizer that sees one token per
    # character fits none of them.
    assert render(template, ctx, 0, shots, budget).exemplar_ids == ["e0", "e1"]
    by_char = render(template, ctx, 0, shots, budget, len)
    assert by_char.exemplar_ids == [] and by_char.shots_dropped == 2


def test_a_copy_of_the_fit_expands_any_batch_on_its_own_as_the_stream_does(
    tmp_path: Path,
) -> None:
    # What lets an engine expand the shards in parallel: a pickled copy of the fitted expander,
    # told which batch it has (seek), gives that batch's rows of the in-order expansion, and the
    # copies' counters add up to the in-order ones.
    import pickle

    families = load_families([family_dir(tmp_path, zero_shot=5, few_shot=True)])
    batches = [records(37, ("t", "u", "v")), records(23, ("u", "v")), records(41, ("t",))]
    in_order = Expander(families, seed=4, per_record=2)
    in_order.fit(batches)
    expected = [in_order.expand(batch).table for batch in batches]
    fitted = Expander(families, seed=4, per_record=2)
    fitted.fit(batches)
    state = pickle.dumps(fitted.fitted_state())
    merged = Expander(families, seed=4, per_record=2)
    merged.restore(pickle.loads(state))
    for index in (2, 0, 1):  # any order
        copy = Expander(families, seed=4, per_record=2)
        copy.restore(pickle.loads(state))
        copy.seek(index)
        assert copy.expand(batches[index]).table.equals(expected[index])
        merged.stats.merge(copy.stats)
    assert merged.stats.summary() == in_order.stats.summary()
    assert merged.stats.summary()["few_shot"]["rows"] > 0
    with pytest.raises(IndexError):
        merged.seek(3)


@pytest.mark.parametrize("width", [1, 8, 10, 17])
def test_unique_rows_is_numpys_unique_over_rows(width: int) -> None:
    import numpy as np

    from curate.templates.expander import unique_rows

    rng = np.random.default_rng(width)
    bits = rng.random((5000, width * 8)) < 0.05
    bits[:, ::3] |= rng.random((5000, 1)) < 0.5  # repeated patterns
    packed = np.packbits(bits, axis=1)
    expected, inverse = np.unique(packed, axis=0, return_inverse=True)
    rows, codes = unique_rows(packed)
    assert np.array_equal(rows, expected)
    assert np.array_equal(codes, inverse.reshape(-1))
    assert len(rows) < len(packed)
