"""The length stage: exact token counts under chat templates, limits, truncation, errors."""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testutils import SAMPLES, SHARED_DATA, needs_shared_data, records_table, tiny_tokenizer_json

from curate.errors import StageError
from curate.ingest import read_file
from curate.lib.tokens import (
    SHIPPED_TEMPLATES,
    conversation,
    count_conversations,
    load_chat_template,
    load_tokenizer,
    rendered_texts,
    table_conversations,
)
from curate.lib.tokens import tokenizer as tokenizer_module
from curate.lib.tokens.chat import TemplateFailure
from curate.records import MESSAGE_TYPE, REJECT_SCHEMA
from curate.stages import get_stage
from curate.stages.length import Length
from curate.stages.normalize import Normalize

THREE_TURNS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
]
# The public formats, rendered on THREE_TURNS (the whole conversation, then the prompt).
EXPECTED = {
    "chatml": (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\nBlue.<|im_end|>\n",
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n"
        "<|im_start|>assistant\n",
    ),
    "llama3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nBlue.<|eot_id|>",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nName a colour.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    "mistral": (
        "<s>[INST] You are terse.\n\nName a colour. [/INST] Blue.</s>",
        "<s>[INST] You are terse.\n\nName a colour. [/INST]",
    ),
    "gemma": (
        "<bos><start_of_turn>user\nYou are terse.\n\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\nBlue.<end_of_turn>\n",
        "<bos><start_of_turn>user\nYou are terse.\n\nName a colour.<end_of_turn>\n"
        "<start_of_turn>model\n",
    ),
    "alpaca": (
        "You are terse.\n\n### Instruction:\nName a colour.\n\n### Response:\nBlue.",
        "You are terse.\n\n### Instruction:\nName a colour.\n\n### Response:\n",
    ),
}


def conversation_row(turns: list[tuple[str, str]], **fields: Any) -> dict[str, Any]:
    messages = [{"role": r, "content": c} for r, c in turns]
    instruction, output = "", ""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "assistant":
            output = messages[index]["content"]
            instruction = next(
                m["content"] for m in reversed(messages[:index]) if m["role"] == "user"
            )
            break
    return {"instruction": instruction, "output": output, "messages": messages, **fields}


def small_table() -> pa.Table:
    rows = [
        {"instruction": "Give three tips for staying healthy.", "output": "Eat, move, sleep."},
        {"instruction": "Translate to French", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Pick one", "output": "b", "options": ["a", "b"]},
        {"instruction": "2+2?", "output": "4", "rationale": "Two and two make four."},
        conversation_row(
            [
                ("system", "Be brief."),
                ("user", "Hi"),
                ("assistant", "Hello!"),
                ("user", "Code?\n```py\nprint('x')\n```"),
                ("assistant", "  Indented answer\n\n"),
            ]
        ),
        {"instruction": "Whitespace around", "output": "\n\nleading newlines"},
        {"instruction": "Special text <|endoftext|> <|im_start|>", "output": "ok <|im_end|>"},
        {"instruction": "Unicode: 中文 😀 é", "output": "数字 123456789 'll 've"},
    ]
    return records_table(rows)


CORPUS = [
    "Give three tips for staying healthy. Eat a balanced diet and exercise.",
    "The three primary colors are red, blue and yellow.",
    "Translate the sentence into French: good morning, how are you?",
    "def add(a, b):\n    return a + b\n",
    "Numbers 1234567 and punctuation!? (yes) [no] {maybe}",
] * 5


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("tok")
    return str(tiny_tokenizer_json(folder / "tokenizer.json", CORPUS))


def check_exact(table: pa.Table, tokenizer: str, template: str) -> int:
    """Counts equal the tokenizer's own encode of the rendered texts; returns rows checked."""
    tok = load_tokenizer(tokenizer)
    chat = load_chat_template(template)
    turns = table_conversations(table)
    counts = count_conversations(turns, chat, tok)
    checked = 0
    for index, pair in enumerate(rendered_texts(turns, chat)):
        if isinstance(pair, TemplateFailure):
            assert counts.error[index] == str(pair)
            continue
        prompt, full = pair
        assert counts.prompt[index] == len(tok.encode(prompt)), (template, index, prompt)
        assert counts.total[index] == len(tok.encode(full)), (template, index, full)
        checked += 1
    return checked


# --- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED_TEMPLATES)
def test_shipped_templates_render_the_public_format(name: str) -> None:
    template = load_chat_template(name)
    full, prompt = EXPECTED[name]
    assert template.render(THREE_TURNS, add_generation_prompt=False) == full
    assert template.render(THREE_TURNS[:2], add_generation_prompt=True) == prompt
    assert full.startswith(prompt)


@pytest.mark.parametrize("name", SHIPPED_TEMPLATES)
def test_batch_render_equals_one_by_one(name: str) -> None:
    template = load_chat_template(name)
    conversations = [*table_conversations(small_table()), THREE_TURNS]
    conversations.append([{"role": "user", "content": "holds \x00 a nul"}])
    items = [(c, g) for c in conversations for g in (False, True)]
    one_by_one: list[Any] = []
    for messages, generation in items:
        try:
            one_by_one.append(template.render(messages, generation))
        except TemplateFailure as failure:
            one_by_one.append(str(failure))
    batch = [str(r) if isinstance(r, TemplateFailure) else r for r in template.render_batch(items)]
    assert batch == one_by_one


# Templates whose batched render could differ from a render on its own, if wrapped carelessly.
TRICKY_TEMPLATES = {
    "leading_spaces_before_a_tag": "  {% if true %}X{% endif %}\n{{ messages|length }}  ",
    "leading_newlines": "\n\n{{ messages[0].content }}\n",
    "own_macro": "{% macro r(m) %}<{{ m.role }}>{% endmacro %}"
    "{% for m in messages %}{{ r(m) }}{% endfor %}",
    "reassigns_messages": "{% set messages = messages[1:] if messages[0].role == 'system' "
    "else messages %}{{ messages|length }}",
    "conditional_set": "{% if messages[0].role == 'system' %}{% set sys = messages[0].content %}"
    "{% endif %}[{{ sys if sys is defined else 'none' }}]",
    "loop_outside_a_loop": "{{ loop is defined }}",
    "namespace": "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
    "{% endfor %}{{ ns.n }}{% if add_generation_prompt %}G{% endif %}",
    "trailing_spaces": "{{ 'x' }}\n   ",
    "trim_blocks": "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n",
}


@pytest.mark.parametrize("name", sorted(TRICKY_TEMPLATES))
def test_batch_render_of_tricky_templates(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.jinja"
    path.write_text(TRICKY_TEMPLATES[name])
    template = load_chat_template(str(path))
    other = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    items = [(THREE_TURNS, False), (other, False), (THREE_TURNS[:2], True), (other[:1], True)]
    assert template._wrapped(items) == [template.render(m, g) for m, g in items]


def test_multi_turn_chatml_and_strict_templates() -> None:
    turns = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    assert load_chat_template("mistral").render(turns, False) == (
        "<s>[INST] a [/INST] b</s>[INST] c [/INST] d</s>"
    )
    for name in ("mistral", "gemma", "alpaca"):
        with pytest.raises(TemplateFailure, match="alternate"):
            load_chat_template(name).render(turns[1:], False)
        with pytest.raises(TemplateFailure, match="roles are supported"):
            load_chat_template(name).render([turns[0], {"role": "tool", "content": "x"}], False)


def test_template_from_tokenizer_config_and_jinja_file(tmp_path: Path) -> None:
    source = (
        "{{ bos_token }}{% for m in messages %}{% generation %}[{{ m.role }}]{{ m['content'] }}"
        "{% endgeneration %}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]"
        "{% endif %}\n"
    )
    config = tmp_path / "tokenizer_config.json"
    config.write_text(
        json.dumps({"chat_template": source, "bos_token": "<B>", "eos_token": {"content": "<E>"}})
    )
    template = load_chat_template(str(config))
    assert (
        template.render(THREE_TURNS[1:], False) == "<B>[user]Name a colour.<E>[assistant]Blue.<E>"
    )
    assert template.render(THREE_TURNS[1:2], True) == "<B>[user]Name a colour.<E>[assistant]"
    batch = template.render_batch([(THREE_TURNS[1:], False)] * 3)
    assert batch == [template.render(THREE_TURNS[1:], False)] * 3
    listed = tmp_path / "listed" / "tokenizer_config.json"
    listed.parent.mkdir()
    listed.write_text(
        json.dumps(
            {
                "chat_template": [
                    {"name": "tool_use", "template": "TOOLS"},
                    {"name": "default", "template": "{{ messages[0].content }}"},
                ]
            }
        )
    )
    assert load_chat_template(str(listed)).render(THREE_TURNS, False) == "You are terse."
    assert load_chat_template(str(listed.parent)).render(THREE_TURNS, False) == "You are terse."
    jinja_file = tmp_path / "mine.jinja"
    jinja_file.write_text("{{ raise_exception('no ' + strftime_now('%Y')[:0] + 'way') }}")
    with pytest.raises(TemplateFailure, match="no way"):
        load_chat_template(str(jinja_file)).render(THREE_TURNS, False)
    no_default = tmp_path / "nodefault.json"
    no_default.write_text(json.dumps({"chat_template": [{"name": "rag", "template": "x"}]}))
    with pytest.raises(StageError, match="none named 'default'"):
        load_chat_template(str(no_default))


def test_sandbox_blocks_escapes(tmp_path: Path) -> None:
    evil = tmp_path / "evil.jinja"
    evil.write_text("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateFailure):
        load_chat_template(str(evil)).render(THREE_TURNS, False)


# --- conversation ------------------------------------------------------------------------------


def test_conversation_of_single_turn_and_messages() -> None:
    assert conversation({"instruction": "Do", "input": "this", "output": "Done"}) == [
        {"role": "user", "content": "Do\n\nthis"},
        {"role": "assistant", "content": "Done"},
    ]
    assert conversation({"instruction": "Do", "input": "  ", "output": "x", "system": "S"}) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Do"},
        {"role": "assistant", "content": "x"},
    ]
    assert conversation({"messages": THREE_TURNS, "instruction": "ignored"}) == THREE_TURNS


def test_conversation_is_what_export_writes() -> None:
    from curate.run.export.writers import chat_messages

    tables = [
        read_file(SAMPLES / name, source=name.split(".")[0]).records
        for name in ("alpaca.json", "dolly.jsonl", "sharegpt.json", "cot_gsm8k_train.tsv")
    ]
    rows = [row for t in [*tables, small_table()] for row in t.to_pylist()]
    assert rows
    for row in rows:
        assert conversation(row) == chat_messages(row)


# --- exact counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("template", SHIPPED_TEMPLATES)
def test_counts_equal_own_encode_inline(template: str, hf_tokenizer: str) -> None:
    table = small_table()
    assert check_exact(table, "cl100k_base", template) >= 7
    assert check_exact(table, hf_tokenizer, template) >= 7


def test_tokenizers_backend_counts_added_tokens_once(hf_tokenizer: str) -> None:
    tok = load_tokenizer(hf_tokenizer)
    single, text, marked = tok.count_batch(["<|im_start|>", "user", "<|im_start|>user<|im_end|>"])
    assert single == 1 and marked == text + 2
    assert load_tokenizer(str(Path(hf_tokenizer).parent)) is not None


def test_stage_columns_equal_counts(hf_tokenizer: str) -> None:
    table = small_table()
    for tokenizer in ("cl100k_base", hf_tokenizer):
        kept, rejected = Length(tokenizer=tokenizer, max_total_tokens=None).run(table)
        assert rejected.num_rows == 0
        tok = load_tokenizer(tokenizer)
        chat = load_chat_template("chatml")
        for row in kept.to_pylist():
            turns = conversation(row)
            full = chat.render(turns, False)
            prompt = chat.render(turns[:-1], True)
            assert row["total_tokens"] == len(tok.encode(full))
            assert row["prompt_tokens"] == len(tok.encode(prompt))
            assert row["completion_tokens"] == row["total_tokens"] - row["prompt_tokens"]
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert kept.schema.field(name).type == pa.int64()


@pytest.fixture(scope="module")
def real_tables() -> dict[str, pa.Table]:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    files = {
        "alpaca": "alpaca/alpaca_data.json.gz",
        "lima": "lima/lima.json.gz",
        "sharegpt": "sharegpt/fastchat_dummy_conversation.json",
    }
    tables = {}
    for name, path in files.items():
        table = Normalize().run(read_file(SHARED_DATA / path, source=name).records).kept
        tables[name] = table.slice(0, 1500)
    return tables


@needs_shared_data
@pytest.mark.realdata
@pytest.mark.parametrize("template", SHIPPED_TEMPLATES)
def test_counts_equal_own_encode_on_real_records(
    real_tables: dict[str, pa.Table], template: str, hf_tokenizer: str
) -> None:
    table = pa.concat_tables(real_tables.values())
    assert table.num_rows >= 3000
    assert check_exact(table, "cl100k_base", template) >= 1000
    # The tiny BPE: few merges, so long token lists; a sample is enough to say it is exact.
    assert check_exact(table.take(np.arange(0, table.num_rows, 2)), hf_tokenizer, template) >= 1000


@pytest.fixture(scope="module")
def cl100k_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """cl100k_base rebuilt as tokenizer.json files, cut by its own pattern and by Llama 3's."""
    from curate.lib.tokens.convert import write_cl100k_tokenizer_json
    from curate.lib.tokens.tokenizer import LLAMA3_PATTERN

    folder = tmp_path_factory.mktemp("cl100k")
    return {
        "cl100k": str(write_cl100k_tokenizer_json(folder / "cl100k" / "tokenizer.json")),
        "llama3": str(write_cl100k_tokenizer_json(folder / "llama3.json", LLAMA3_PATTERN)),
    }


@needs_shared_data
@pytest.mark.realdata
@pytest.mark.parametrize("template", ["chatml", "llama3", "mistral"])
def test_a_byte_level_tokenizer_json_is_counted_in_two_parts_and_exactly(
    real_tables: dict[str, pa.Table], template: str, cl100k_json: dict[str, str]
) -> None:
    table = pa.concat_tables(real_tables.values())
    for path in cl100k_json.values():
        tok = load_tokenizer(path)
        assert tok.splits_cleanly("<|im_start|>assistant\n", "Hello")  # the fast path runs
        assert check_exact(table, path, template) >= 3000
    # The rebuilt tokenizer is cl100k_base: the same ids as tiktoken's, row for row.
    texts = [
        full for _, full in rendered_texts(table_conversations(table), load_chat_template(template))
    ]
    hf = load_tokenizer(cl100k_json["cl100k"])
    tiktoken = load_tokenizer("cl100k_base")
    assert [hf.encode(t) for t in texts] == [tiktoken.encode(t) for t in texts]


def test_tokenizers_without_known_pieces_are_never_counted_in_two_parts(hf_tokenizer: str) -> None:
    # The tiny BPE's pre-tokenizer is GPT-2's ByteLevel regex: "\n\n" + "Hi" is cut otherwise
    # than "\n\n" alone, so its counts are never added up from parts.
    tok = load_tokenizer(hf_tokenizer)
    assert not tok.splits_cleanly("assistant\n\n", "Hi")
    assert not tok.splits_cleanly("assistant\n", "Hi")
    assert tok.splits_cleanly("", "Hi") and tok.splits_cleanly("Hi", "")


@needs_shared_data
@pytest.mark.realdata
def test_conversation_is_what_export_writes_on_real_records(
    real_tables: dict[str, pa.Table],
) -> None:
    from curate.run.export.writers import chat_messages

    for table in real_tables.values():
        for row in table.to_pylist():
            assert conversation(row) == chat_messages(row)


_TRICKY = [*"ab Z19'sl] >|<.é中😀\n\r\t", "\u00a0", "\x1c", "  ", "\n\n", "'ll", "123456"]


@settings(max_examples=400, deadline=None)
@given(
    before=st.lists(st.sampled_from(_TRICKY), max_size=8).map("".join),
    after=st.lists(st.sampled_from(_TRICKY), max_size=8).map("".join),
)
def test_clean_split_rule_is_exact(before: str, after: str) -> None:
    tok = load_tokenizer("cl100k_base")
    if tok.splits_cleanly(before, after):
        assert tok.encode(before + after) == tok.encode(before) + tok.encode(after)


def test_clean_split_rule_covers_the_generation_prompts() -> None:
    tok = load_tokenizer("cl100k_base")
    for name in SHIPPED_TEMPLATES:
        full, prompt = EXPECTED[name]
        assert tok.splits_cleanly(prompt, full[len(prompt) :]), name


# --- limits, truncation, reasons ---------------------------------------------------------------


def test_limits_and_too_long_details() -> None:
    table = small_table()
    whole = Length(max_total_tokens=None).run(table).kept
    totals = whole.column("total_tokens").to_pylist()
    limit = sorted(totals)[len(totals) // 2]
    kept, rejected = Length(max_total_tokens=limit).run(table)
    assert all(t <= limit for t in kept.column("total_tokens").to_pylist())
    assert rejected.num_rows == sum(t > limit for t in totals) > 0
    assert set(rejected.column("reason").to_pylist()) == {"too_long"}
    for detail in rejected.column("detail").to_pylist():
        found = re.fullmatch(
            rf"total (\d+) > max_total_tokens {limit} \(prompt (\d+), completion (-?\d+)\)", detail
        )
        assert found, detail
        total, prompt, completion = map(int, found.groups())
        assert total == prompt + completion and total > limit

    kept, rejected = Length(max_total_tokens=None, max_completion_tokens=4).run(table)
    assert all(c <= 4 for c in kept.column("completion_tokens").to_pylist())
    assert re.fullmatch(
        r"completion \d+ > max_completion_tokens 4 \(prompt \d+, total \d+\)",
        rejected.column("detail")[0].as_py(),
    )
    _, rejected = Length(max_total_tokens=1, max_prompt_tokens=1, max_completion_tokens=1).run(
        table
    )
    assert rejected.num_rows == table.num_rows
    assert re.fullmatch(
        r"total \d+ > max_total_tokens 1; prompt \d+ > max_prompt_tokens 1; "
        r"completion \d+ > max_completion_tokens 1",
        rejected.column("detail")[0].as_py(),
    )


def long_conversation() -> dict[str, Any]:
    return conversation_row(
        [
            ("system", "Be helpful."),
            ("user", "First question?"),
            ("assistant", "First answer."),
            ("user", "Second question?"),
            ("assistant", "Second answer."),
            ("user", "Third question, the long one?"),
            ("assistant", "word " * 300),
        ],
        input="",
    )


def test_truncate_drops_trailing_whole_exchanges() -> None:
    table = records_table([long_conversation(), {"instruction": "Hi", "output": "Hello"}])
    full = Length(max_total_tokens=None).run(table).kept.column("total_tokens")[0].as_py()
    assert full > 300
    kept, rejected = Length(max_total_tokens=100, on_overflow="truncate").run(table)
    assert rejected.num_rows == 0
    row = kept.to_pylist()[0]
    assert row["truncated_turns"] == 2
    assert [m["content"] for m in row["messages"]][-2:] == ["Second question?", "Second answer."]
    assert (row["instruction"], row["input"], row["output"]) == (
        "Second question?",
        "",
        "Second answer.",
    )
    assert kept.column("truncated_turns")[1].as_py() == 0
    assert kept.column("messages").type == table.column("messages").type
    tok, chat = load_tokenizer("cl100k_base"), load_chat_template("chatml")
    turns = conversation(row)
    assert row["total_tokens"] == len(tok.encode(chat.render(turns, False))) <= 100
    assert row["prompt_tokens"] == len(tok.encode(chat.render(turns[:-1], True)))
    # The same limit without truncate: the row is dropped, content untouched in the rejects.
    kept, rejected = Length(max_total_tokens=100).run(table)
    assert rejected.num_rows == 1 and "truncated_turns" not in kept.column_names
    assert len(rejected.column("messages")[0].as_py()) == 7
    # Only the first exchange fits under a tighter limit.
    row = Length(max_total_tokens=50, on_overflow="truncate").run(table).kept.to_pylist()[0]
    assert row["truncated_turns"] == 4 and row["output"] == "First answer."


def test_truncate_never_cuts_an_answer() -> None:
    single = {"instruction": "Write a lot.", "output": "word " * 300}
    table = records_table([single, long_conversation()])
    kept, rejected = Length(max_total_tokens=10, on_overflow="truncate").run(table)
    assert kept.num_rows == 0
    details = rejected.column("detail").to_pylist()
    assert details[0].endswith("not truncated: a single exchange (that would cut the answer)")
    assert details[1].endswith("not truncated: no shorter run of whole exchanges fits")
    # A long completion limit on the last answer: an earlier exchange is kept instead.
    kept, _ = Length(max_total_tokens=None, max_completion_tokens=50, on_overflow="truncate").run(
        records_table([long_conversation()])
    )
    assert kept.column("output")[0].as_py() == "Second answer."


def test_no_text_and_template_error_are_reasons_not_crashes() -> None:
    table = records_table(
        [
            {"instruction": "", "output": ""},
            {"instruction": "  \n", "output": "\t"},
            conversation_row([("user", ""), ("assistant", " ")]),
            {"instruction": "Fine", "output": "Yes"},
            conversation_row([("user", "q"), ("tool_call", "{}"), ("assistant", "a")]),
        ]
    )
    result = Length().run(table)
    assert result.rejected.column("reason").to_pylist() == ["no_text"] * 3
    assert result.kept.num_rows == 2
    _, rejected = Length(chat_template="gemma").run(table)
    assert rejected.column("reason").to_pylist() == ["no_text"] * 3 + ["template_error"]
    assert "roles are supported" in rejected.column("detail")[3].as_py()
    assert rejected.schema == REJECT_SCHEMA


def test_no_assistant_turn_is_all_prompt() -> None:
    table = pa.table(
        {
            "messages": pa.array(
                [[{"role": "user", "content": "Only a question"}]], pa.list_(MESSAGE_TYPE)
            )
        }
    )
    kept, _ = Length().run(table)
    row = kept.to_pylist()[0]
    assert row["completion_tokens"] == 0 and row["prompt_tokens"] == row["total_tokens"] > 0


# --- configuration errors ----------------------------------------------------------------------


def test_missing_tokenizer_or_template_fails_in_prepare(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "tokenizer.json"
    stage = Length(tokenizer=str(missing))  # constructing reads nothing
    with pytest.raises(StageError, match=re.escape(str(missing))):
        stage.prepare()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StageError, match=r"has no tokenizer\.json"):
        Length(tokenizer=str(empty)).prepare()
    with pytest.raises(StageError, match=r"chatml, llama3, mistral, gemma, alpaca"):
        Length(chat_template="no_such_template").prepare()
    with pytest.raises(StageError, match=re.escape(str(tmp_path / "x.jinja"))):
        Length(chat_template=str(tmp_path / "x.jinja")).prepare()
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for %}")
    with pytest.raises(StageError, match=r"broken\.jinja: line 1"):
        Length(chat_template=str(broken)).prepare()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StageError, match="cannot read"):
        Length(tokenizer=str(bad)).prepare()


@pytest.mark.parametrize("package", ["tiktoken", "tokenizers"])
def test_missing_package_names_the_extra(
    package: str, monkeypatch: pytest.MonkeyPatch, hf_tokenizer: str
) -> None:
    monkeypatch.setattr(tokenizer_module, "_CACHE", {})
    monkeypatch.setitem(sys.modules, package, None)  # import fails
    spec = "cl100k_base" if package == "tiktoken" else hf_tokenizer
    with pytest.raises(StageError, match=re.escape("pip install 'curate[tokens]'")):
        Length(tokenizer=spec).prepare()


def test_template_from_the_tokenizer_folder(tmp_path: Path, hf_tokenizer: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(Path(hf_tokenizer).read_bytes())
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "<s>{{ messages[-1].content }}", "bos_token": "<s>"})
    )
    kept, _ = Length(tokenizer=str(folder), chat_template="tokenizer").run(small_table())
    assert kept.num_rows == small_table().num_rows
    with pytest.raises(StageError, match="tiktoken's"):
        Length(chat_template="tokenizer").check_recipe([])


def test_registered_and_params_checked() -> None:
    assert get_stage("length") is Length and Length.name == "length_v1"
    with pytest.raises(StageError, match="max_total_tokens"):
        Length(max_total_tokens=0)
    with pytest.raises(StageError, match="on_overflow"):
        Length(on_overflow="cut")


# --- determinism and the manifest --------------------------------------------------------------


def test_deterministic_across_runs_threads_and_pickles() -> None:
    table = pa.concat_tables([small_table()] * 200)
    first = Length(max_total_tokens=30).run(table)
    second = Length(max_total_tokens=30, threads=2).run(table)
    stage = Length(max_total_tokens=30)
    stage.prepare()
    third = pickle.loads(pickle.dumps(stage)).run(table)
    for other in (second, third):
        assert first.kept.equals(other.kept) and first.rejected.equals(other.rejected)


def test_manifest_info_merges_across_shards() -> None:
    table = pa.concat_tables([small_table(), records_table([long_conversation()])] * 5)
    whole = Length(max_total_tokens=60, on_overflow="truncate")
    whole.run(table)
    expected = whole.manifest_info()
    shards = []
    for start in range(0, table.num_rows, 4):
        stage = Length(max_total_tokens=60, on_overflow="truncate")
        stage.run(table.slice(start, 4))
        shards.append(stage.manifest_info())
    merged = whole.merge_manifest_info(shards)
    assert merged == expected
    assert expected["tokenizer"] == "cl100k_base" and expected["chat_template"] == "chatml"
    rows = expected["rows"]
    assert rows["kept"] + rows["too_long"] + rows["no_text"] + rows["template_error"] == (
        table.num_rows
    )
    result = Length(max_total_tokens=60, on_overflow="truncate").run(table).kept
    assert (
        rows["truncated"] == sum(t > 0 for t in result.column("truncated_turns").to_pylist()) == 10
    )
    kept = expected["total_tokens"]["kept"]
    totals = sorted(result.column("total_tokens").to_pylist())
    assert kept["max"] == totals[-1] and kept["rows"] == len(totals)
    median = totals[int(np.ceil(0.5 * len(totals))) - 1]
    assert median <= kept["p50"] <= median * 17 / 16  # the top of its bucket
    assert expected["tokens_kept"]["total"] == sum(totals)
    json.dumps(merged)  # the manifest is JSON


def test_percentiles_of_large_counts_are_within_the_bucket() -> None:
    from curate.stages.length import _bucket, _summary

    values = [100, 300, 1000, 5000, 5012, 70000]
    histogram: dict[int, int] = {}
    for v in values:
        histogram[_bucket(v)] = histogram.get(_bucket(v), 0) + 1
    summary = _summary(histogram, max(values))
    assert summary["max"] == 70000 and summary["p99"] == 70000
    assert 1000 <= summary["p50"] <= 1000 * 17 / 16
    assert _summary({_bucket(v): 1 for v in range(64)}, 63)["p50"] == 31  # exact below 64


def test_the_report_shows_token_lengths_per_source(tmp_path: Path) -> None:
    import json as _json

    from curate.engine.run import run_recipe
    from curate.recipe import parse_recipe

    rows = [{"instruction": f"Say hello {i} times.", "output": "hello " * i} for i in range(1, 9)]
    (tmp_path / "a.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in rows))
    recipe = parse_recipe(
        {
            "name": "tokens",
            "sources": [{"name": "a", "path": str(tmp_path / "a.jsonl")}],
            "stages": [{"normalize": {}}, {"length": {"max_total_tokens": 4096}}],
            "output": str(tmp_path / "out"),
        }
    )
    result = run_recipe(recipe, out=tmp_path / "out", workers=1)
    report = (result.out_dir / "report.html").read_text()
    assert 'id="token-lengths"' in report
    assert "<td>a</td>" in report.split('id="token-lengths"')[1]
