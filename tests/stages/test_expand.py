"""The expand_v1 stage: params, rejects, pass-through, manifest info, real-data balance."""

from __future__ import annotations

import glob
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from testutils import (
    SHARED_DATA,
    needs_shared_data,
    normalized_samples,
    records_table,
)

from curate.errors import StageError, TemplateError
from curate.ingest import read_file
from curate.records import REJECT_SCHEMA
from curate.stages import get_stage
from curate.stages.expand import ExpandTemplates
from curate.stages.normalize import Normalize
from curate.templates import load_families


def table_of(rows: list[dict[str, Any]], source: str = "s") -> pa.Table:
    return records_table(rows, source, output="out")


def samples() -> pa.Table:
    names = (
        "alpaca.json",
        "dolly.jsonl",
        "cot_gsm8k_train.tsv",
        "niv2_task001_sample_antonyms.json",
        "sharegpt.json",
        "flan.jsonl",
    )
    return normalized_samples(names)


def test_registered_under_the_recipe_key() -> None:
    assert get_stage("expand") is ExpandTemplates
    assert ExpandTemplates.name == "expand_v1" and ExpandTemplates.kind == "global"


def test_samples_expand_with_every_row_accounted_for() -> None:
    table = samples()
    stage = ExpandTemplates(per_record=2, seed=7)
    kept, rejected = stage.run(table)
    assert rejected.num_rows == 0
    info = stage.manifest_info()
    passthrough = sum(info["passthrough"].values())
    assert info["passthrough"] == {"already_templated": 3, "has_messages": 2}
    assert kept.num_rows == 2 * (table.num_rows - passthrough) + passthrough
    templated = kept.filter(pa.compute.is_valid(kept.column("template_id")))
    assert set(templated.column("parent_id").to_pylist()) <= set(table.column("id").to_pylist())
    per_parent = Counter(templated.column("parent_id").to_pylist())
    assert set(per_parent.values()) == {2}
    assert info["balance"]["max_spread"] <= 1
    assert sum(info["rows_per_template"].values()) == templated.num_rows
    assert info["families"] == [f.id for f in load_families()]
    assert sum(info["rows_per_family"].values()) == templated.num_rows
    assert {"zs_noopt", "cot", "fs_noopt"} <= set(info["template_types"])


def test_families_param_and_unmatched_drop() -> None:
    table = samples()
    stage = ExpandTemplates(families=["cot"], unmatched="drop")
    kept, rejected = stage.run(table)
    assert set(kept.column("template_id").drop_null().to_pylist()) <= {
        f"cot/{t.spec.id}" for t in load_families(only=["cot"])[0].templates
    }
    assert (
        kept.filter(pa.compute.is_valid(kept.column("template_id"))).num_rows == 3
    )  # the 3 gsm8k rows
    assert set(rejected.column("reason").to_pylist()) == {"no_template"}
    assert rejected.schema == REJECT_SCHEMA
    assert set(rejected.column("stage").to_pylist()) == {"expand_v1"}
    # Chats and FLAN rows (already templated) are kept, not rejected, even with unmatched: drop.
    assert kept.num_rows == 3 + 2 + 3
    assert rejected.num_rows == table.num_rows - kept.num_rows


def test_render_failures_are_rejects_with_the_template(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(
        "id: e\nexamples: [{instruction: a, input: b, output: c}]\ntemplates:\n"
        '  - {id: needs_input, type: zs_noopt, prompt: "{{ input }}", completion: "{{ output }}"}\n'
    )
    stage = ExpandTemplates(builtin=False, template_dirs=[str(tmp_path)])
    table = table_of([{"instruction": "no input here"}, {"instruction": "x", "input": "y"}])
    kept, rejected = stage.run(table)
    assert kept.column("instruction").to_pylist() == ["y"]
    (row,) = rejected.to_pylist()
    assert (row["reason"], row["template_id"], row["parent_id"]) == (
        "template_empty",
        "e/needs_input",
        table.column("id")[0].as_py(),
    )
    assert "prompt rendered empty" in row["detail"]


def test_a_bad_user_template_fails_at_prepare(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "id: bad\nexamples: [{instruction: a, output: c}]\ntemplates:\n"
        '  - {id: t, type: zs_noopt, prompt: "{{ cycler.__init__.__globals__ }}", completion: "{{ output }}"}\n'
    )
    # Construction only stores params; prepare() loads the families, and executors and
    # `curate validate` call it before any data is read.
    stage = ExpandTemplates(template_dirs=[str(tmp_path)])
    with pytest.raises(StageError, match=rf"{tmp_path / 'bad.yaml'}:4: .*refused"):
        stage.prepare()
    with pytest.raises(TemplateError, match="refused"):
        load_families([tmp_path])
    with pytest.raises(StageError, match="no families"):
        ExpandTemplates(builtin=False).prepare()


def test_same_seed_same_rows_other_seed_other_templates() -> None:
    table = samples()
    first = ExpandTemplates(seed=1).run(table).kept
    assert ExpandTemplates(seed=1).run(table).kept.equals(first)
    other = ExpandTemplates(seed=2).run(table).kept
    assert other.column("template_id").to_pylist() != first.column("template_id").to_pylist()


@needs_shared_data
@pytest.mark.realdata
def test_real_data_every_applicable_template_is_used_within_one_per_task() -> None:
    files = [SHARED_DATA / "dolly" / "databricks-dolly-15k.jsonl.gz"]
    files += [Path(p) for p in sorted(glob.glob(str(SHARED_DATA / "flan" / "*_train.tsv.gz")))[:3]]
    files += [
        Path(p)
        for p in sorted(glob.glob(str(SHARED_DATA / "natural_instructions" / "*" / "task1*.json")))
    ]
    batches = [
        Normalize().run(read_file(f, source=f.name.split(".")[0]).records).kept for f in files
    ]
    stage = ExpandTemplates(seed=0)
    stage.fit(batches)
    expander = stage._expander
    counts: dict[tuple[str, tuple[int, ...]], Counter[int]] = defaultdict(Counter)
    for batch in batches:
        prep = expander.prepare(batch)  # which templates apply to which row, and the row's task
        out = stage.apply(batch).kept
        row_of = {r: i for i, r in enumerate(batch.column("source_row").to_pylist())}
        index = {t.id: i for i, t in enumerate(expander.templates)}
        for source_row, template_id in zip(
            out.column("source_row").to_pylist(), out.column("template_id").to_pylist(), strict=True
        ):
            row = row_of[source_row]
            pool = tuple(prep.matrix[row].nonzero()[0].tolist())
            assert index[template_id] in pool  # only templates that apply are assigned
            counts[(prep.task_names[prep.task_codes[row]], pool)][index[template_id]] += 1
    assert len({task for task, _ in counts}) == 8 + 3 + 3  # Dolly categories, CoT tasks, NIv2 tasks
    used: set[int] = set()
    for (task, pool), counter in counts.items():
        values = [counter.get(t, 0) for t in pool]
        assert max(values) - min(values) <= 1, (task, values)  # balanced within ±1 per task
        used |= set(counter)
    applicable = {t for _, pool in counts for t in pool}
    assert used == applicable  # every template that applies to some record is used
    families = {t.family for t in (expander.templates[i] for i in used)}
    assert families >= {
        "cot",
        "multiple_choice",
        "invert_cot",
        "niv2",
        "dolly_open_qa",
        "dolly_closed_qa",
        "invert_question",
    }


def test_the_few_shot_budget_uses_the_recipe_tokenizer(tmp_path: Path) -> None:
    pytest.importorskip("tiktoken")
    from curate.lib.tokens import load_tokenizer
    from curate.recipe import Recipe

    recipe = Recipe.model_validate(
        {
            "name": "t",
            "sources": [{"name": "s", "path": str(tmp_path / "x.jsonl")}],
            "stages": [{"key": "expand", "params": {}}, {"key": "length", "params": {}}],
        }
    )
    expand, length = recipe.build_stages()
    assert expand.params.tokenizer == length.params.tokenizer == "cl100k_base"
    named = Recipe.model_validate(
        {**recipe.model_dump(), "stages": [{"key": "expand", "params": {"tokenizer": None}}]}
    )
    assert named.build_stages()[0].params.tokenizer is None
    # Every few-shot row fits its token budget as cl100k_base counts it.
    encode = load_tokenizer("cl100k_base").encode
    (tmp_path / "shots.yaml").write_text(
        "id: shots\napplies_to: {}\nfew_shot: {k: 3}\nexamples:\n"
        "  - {instruction: a, output: b, task: t}\n  - {instruction: c, output: d, task: t}\n"
        "templates:\n"
        '  - {id: q, type: fs_noopt, prompt: "Q {{ instruction }}", completion: "{{ output }}"}\n'
    )
    stage = get_stage("expand")(
        template_dirs=[str(tmp_path)], builtin=False, max_tokens=40, tokenizer="cl100k_base"
    )
    rows = [
        # Long numbers: one "word" for the approximation, a token per three digits for cl100k.
        {"instruction": f"Add {i}1234567890123 and 98765432109876", "output": f"{i}", "task": "t"}
        for i in range(20)
    ]
    stage.fit([records_table(rows)])
    out = stage.apply(records_table(rows)).kept.to_pylist()
    shot_rows = [r for r in out if r["exemplar_ids"]]
    assert shot_rows, "no row kept a shot"
    for row in shot_rows:
        assert len(encode(row["instruction"])) + len(encode(row["output"])) <= 40
    # The approximation (words and punctuation) lets other rows keep their shots.
    rough = get_stage("expand")(template_dirs=[str(tmp_path)], builtin=False, max_tokens=40)
    rough.fit([records_table(rows)])
    kept_shots = [len(r["exemplar_ids"]) for r in rough.apply(records_table(rows)).kept.to_pylist()]
    assert kept_shots != [len(r["exemplar_ids"]) for r in out]
