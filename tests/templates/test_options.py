"""Finding options in question text and rendering them (fixed and seeded styles)."""

from __future__ import annotations

import pytest

from curate.templates.options import (
    FIXED_STYLE,
    MARKERS,
    OptionsStyle,
    answer_index,
    parse_options,
    random_style,
)


def test_flan_cot_block_with_escaped_newlines_and_letter_labels() -> None:
    # As the raw FLAN CoT TSV has it: "\n" written as two characters.
    text = "What is 2 + 3?\\nOptions:\\n(A) 4\\n(B) 5\\n(C) 6"
    parsed = parse_options(text)
    assert parsed is not None
    assert parsed.stem == "What is 2 + 3?"
    assert parsed.options == ["4", "5", "6"]
    assert parsed.labels == ["A", "B", "C"]
    assert answer_index("(B)", parsed.options, parsed.labels) == 1


def test_bulleted_block_matches_answer_by_text() -> None:
    parsed = parse_options("Where is milk kept?\nOptions:\n- oven\n- refrigerator\n- shelf")
    assert parsed is not None
    assert parsed.options == ["oven", "refrigerator", "shelf"]
    assert parsed.labels == []
    assert answer_index("Refrigerator", parsed.options) == 1


def test_dash_and_letter_labels_and_sentence_prefix_answers() -> None:
    qasc = parse_options("What do plants need?\nOptions:\n- (A) light\n- (B) sand\n- (C) salt")
    assert qasc is not None and qasc.labels == ["A", "B", "C"]
    assert qasc.options == ["light", "sand", "salt"]
    sense = parse_options(
        'Which is odd?\nOptions:\n- Sentence A: "He drinks apple."\n- Sentence B: "He drinks milk."\n'
    )
    assert sense is not None
    assert answer_index("Sentence A", sense.options, sense.labels) == 0


def test_inline_mmlu_options_on_the_last_line() -> None:
    parsed = parse_options("Find the order of Z_4.\n(A)1 (B)2 (C)4 (D)8 ")
    assert parsed is not None
    assert parsed.stem == "Find the order of Z_4."
    assert parsed.options == ["1", "2", "4", "8"]
    assert answer_index("C", parsed.options, parsed.labels) == 2


@pytest.mark.parametrize(
    "text",
    [
        "Write a poem about the sea.",
        "Options:\n- a\n- b",  # no question before the options
        "Pick one.\nOptions:\n- only one",  # a single option is not a choice
        "Choose.\nOptions:\n- a\nsomething else",  # not all lines are options
        "It says (A) and then (C) here",  # letters not consecutive / not the last line alone
    ],
)
def test_no_options_found(text: str) -> None:
    assert parse_options(text) is None


def test_answer_not_among_options() -> None:
    assert answer_index("purple", ["red", "blue"]) is None
    assert answer_index("(D)", ["a", "b"], ["A", "B"]) is None


def test_fixed_style_is_flan_options_block_with_text_target() -> None:
    assert FIXED_STYLE.block(["yes", "no"]) == "OPTIONS:\n- yes\n- no"
    assert FIXED_STYLE.answer(["yes", "no"], 1) == "no"


@pytest.mark.parametrize(
    ("marker", "block", "target"),
    [
        ("paren_letter", "Choices:\n(A) red\n(B) blue", "(B)"),
        ("letter_dot", "Choices:\nA. red\nB. blue", "B"),
        ("number_dot", "Choices:\n1. red\n2. blue", "2"),
        ("paren_number", "Choices:\n(1) red\n(2) blue", "(2)"),
        ("lower_paren", "Choices:\na) red\nb) blue", "b"),
        ("bullet", "Choices:\n* red\n* blue", "blue"),
    ],
)
def test_marker_schemes_and_their_targets(marker: str, block: str, target: str) -> None:
    style = OptionsStyle("Choices:", next(m for m in MARKERS if m.name == marker))
    assert style.block(["red", "blue"]) == block
    assert style.answer(["red", "blue"], 1) == target


def test_letters_fall_back_to_numbers_past_26_options() -> None:
    style = OptionsStyle("", next(m for m in MARKERS if m.name == "paren_letter"))
    options = [f"o{i}" for i in range(30)]
    assert style.block(options).split("\n")[27] == "28. o27"
    assert style.answer(options, 27) == "28"


def test_random_style_is_seeded_per_record_and_template() -> None:
    first = random_style(0, "mc/t", "record-1")
    assert random_style(0, "mc/t", "record-1") == first
    styles = {random_style(0, "mc/t", f"record-{i}") for i in range(200)}
    assert len({s.header for s in styles}) > 3
    assert len({s.marker.name for s in styles}) == len(MARKERS)
    assert any(
        random_style(1, "mc/t", f"record-{i}") != random_style(0, "mc/t", f"record-{i}")
        for i in range(10)
    )
