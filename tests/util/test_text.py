"""record_text: the one builder of the text records are compared and detected on."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curate.records import MESSAGE_TYPE
from curate.util.text import ASSISTANT_ROLES, PROMPT_ROLES, matching_text, record_text

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi?"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Bye?"},
    {"role": "assistant", "content": "Bye."},
]


def _table() -> pa.Table:
    """Row 0: single-turn with a null input; row 1: a conversation; row 2: all null."""
    return pa.table(
        {
            "instruction": pa.array(["Say hi", "Bye?", None], pa.string()),
            "input": pa.array([None, "", None], pa.string()),
            "output": pa.array(["hi", "Bye.", None], pa.string()),
            "messages": pa.array([None, CHAT, None], pa.list_(MESSAGE_TYPE)),
        }
    )


def test_fields_in_order_joined_by_separator_nulls_empty() -> None:
    table = _table()
    assert record_text(table, ["instruction", "input"], separator="\n").to_pylist() == [
        "Say hi\n",
        "Bye?\n",
        "\n",
    ]
    assert record_text(table, ["output", "instruction"], separator=" | ").to_pylist() == [
        "hi | Say hi",
        "Bye. | Bye?",
        " | ",
    ]
    assert record_text(table, ["output"], separator="\n").to_pylist() == ["hi", "Bye.", ""]
    assert record_text(table, [], separator="\n").to_pylist() == ["", "", ""]


def test_roles_choose_turns_and_others_stay_empty_turns() -> None:
    table = _table()
    prompt = record_text(table, ["messages"], separator="\n", roles=PROMPT_ROLES)
    assert prompt.to_pylist() == ["", "Be brief.\nHi?\n\nBye?\n", ""]
    answer = record_text(table, ["messages"], separator="\n\n", roles=ASSISTANT_ROLES)
    assert answer.to_pylist() == ["", "\n\n\n\nHello.\n\n\n\nBye.", ""]
    every = record_text(table, ["messages"], separator=" ", roles=None)
    assert every.to_pylist() == ["", "Be brief. Hi? Hello. Bye? Bye.", ""]
    user_only = record_text(table, ["messages"], separator="/", roles=["user"])
    assert user_only.to_pylist() == ["", "/Hi?//Bye?/", ""]


def test_messages_as_a_field_with_its_own_turn_separator() -> None:
    text = record_text(
        _table(),
        ["instruction", "messages"],
        separator="\x1f",
        roles=PROMPT_ROLES,
        turn_separator="\n",
    )
    assert text.to_pylist() == ["Say hi\x1f", "Bye?\x1fBe brief.\nHi?\n\nBye?\n", "\x1f"]


def test_prefer_messages_replaces_fields_on_conversation_rows() -> None:
    table = _table()
    text = record_text(
        table, ["instruction", "input", "output", "messages"], separator="\n", prefer_messages=True
    )
    assert text.to_pylist() == [
        "Say hi\n\nhi",
        "Be brief.\nHi?\nHello.\nBye?\nBye.",
        "\n\n",
    ]
    assistant = record_text(
        table,
        ["output", "messages"],
        separator="\n\n",
        roles=ASSISTANT_ROLES,
        prefer_messages=True,
    )
    assert assistant.to_pylist() == ["hi", "\n\n\n\nHello.\n\n\n\nBye.", ""]
    # Only messages: rows without a conversation get "".
    only = record_text(table, ["messages"], separator="\n", prefer_messages=True)
    assert only.to_pylist() == ["", "Be brief.\nHi?\nHello.\nBye?\nBye.", ""]


def test_no_conversation_in_the_batch() -> None:
    table = _table().slice(0, 1)
    assert record_text(
        table, ["instruction", "messages"], separator="\n", roles=PROMPT_ROLES
    ).to_pylist() == ["Say hi\n"]
    assert record_text(
        table, ["instruction", "messages"], separator="\n", prefer_messages=True
    ).to_pylist() == ["Say hi"]


def test_matching_folds_each_part_before_the_join() -> None:
    table = pa.table(
        {
            "instruction": pa.array(["Hello,  World! ", None], pa.string()),
            "input": pa.array(["(ＡＢＣ)", "x"], pa.string()),
        }
    )
    key = record_text(table, ["instruction", "input"], separator="\x1f", matching=True)
    assert key.to_pylist() == ["hello world\x1fabc", "\x1fx"]


def test_null_turn_content_gives_empty_row() -> None:
    loose = pa.struct([("role", pa.string()), ("content", pa.string())])
    table = pa.table(
        {
            "messages": pa.array(
                [
                    [{"role": "user", "content": None}, {"role": "user", "content": "b"}],
                    [{"role": "user", "content": "c"}],
                ],
                pa.list_(loose),
            )
        }
    )
    assert record_text(table, ["messages"], separator="\n", roles=PROMPT_ROLES).to_pylist() == [
        "",
        "c",
    ]


@pytest.mark.parametrize("chunks", [1, 3])
def test_chunked_and_sliced_columns(chunks: int) -> None:
    table = _table()
    sliced = table.slice(1, 2)
    whole = pa.concat_tables([table.slice(i, 1) for i in range(3)]) if chunks == 3 else table
    expected = ["Bye?\x1fBe brief.\nHi?\n\nBye?\n", "\x1f"]
    for source in (
        sliced,
        whole.slice(1, 2),
        pa.RecordBatch.from_arrays(
            [c.combine_chunks().slice(1, 2) for c in table.columns], names=table.column_names
        ),
    ):
        text = record_text(
            source,
            ["instruction", "messages"],
            separator="\x1f",
            roles=PROMPT_ROLES,
            turn_separator="\n",
        )
        assert text.to_pylist() == expected


def test_matching_text_keeps_symbols_that_carry_meaning() -> None:
    # Exact dedup on Alpaca + Dolly collapsed "What is C?" / "What is C#?" onto "What is C++?".
    texts = ["What is C++?", "What is C#?", "What is C?", "Compute 2+2.", "Compute 2 * 2", "2 - 2"]
    folded = matching_text(pa.array(texts)).to_pylist()
    assert len(set(folded)) == len(texts)
    # Case, spacing and ordinary punctuation still fold.
    same = matching_text(pa.array(["what is c++", "WHAT IS  C++ ?", "Compute 2 + 2!"])).to_pylist()
    assert same[0] == same[1] and same[2] == folded[3]


# --- the byte-level (numpy) paths give what the regexes give -----------------------------------

_PIECES = ["a", "Bb", "é", "日本", " ", "  ", "\t", "\n", "\v", "\f", "\r", "\u3000", "\xa0"]
_PIECES += [",", "...", "!?", "$", "+", "C++", "-", "_", "~", "«", "»", "—", "'", '"', "(x)"]


def _random_texts(count: int, seed: int, ascii_only: bool = False) -> list[str | None]:
    import random

    rng = random.Random(seed)
    pieces = [p for p in _PIECES if p.isascii()] if ascii_only else _PIECES
    texts: list[str | None] = []
    for _ in range(count):
        if rng.random() < 0.03:
            texts.append(None)
            continue
        texts.append("".join(rng.choice(pieces) for _ in range(rng.choice([0, 1, 2, 5, 20]))))
    return texts


def test_the_ascii_fold_table_is_what_the_regex_folds() -> None:
    import pyarrow.compute as pc

    from curate.util.text import _FOLD, _FOLDED_ASCII

    chars = [chr(i) for i in range(128)]
    folded = pc.replace_substring_regex(pa.array([f"a{c}a" for c in chars]), _FOLD, " ")
    by_regex = [text == "a a" for text in folded.to_pylist()]
    assert by_regex == _FOLDED_ASCII[:128].tolist()


@pytest.mark.parametrize("ascii_only", [True, False])
@pytest.mark.parametrize("large", [False, True])
def test_fold_punctuation_equals_the_regex(ascii_only: bool, large: bool) -> None:
    import pyarrow.compute as pc

    from curate.util.text import _FOLD, fold_punctuation

    texts = [t or "" for t in _random_texts(4000, 3, ascii_only)]
    values = pa.array(texts, pa.large_string() if large else pa.string())
    # sliced: the buffers' offsets do not start at zero
    for array in (values, values.slice(37, 2000)):
        expected = pc.replace_substring_regex(array, _FOLD, " ")
        assert fold_punctuation(array).equals(expected)
    mixed = pa.array(["a, b", "é, é", "x  y", "", "¿qué?"] * 10)  # some rows ASCII, some not
    assert fold_punctuation(mixed).equals(pc.replace_substring_regex(mixed, _FOLD, " "))


@pytest.mark.parametrize("large", [False, True])
def test_count_words_equals_the_regex(large: bool) -> None:
    import pyarrow.compute as pc

    from curate.util.text import count_words

    values = pa.array(_random_texts(4000, 5), pa.large_string() if large else pa.string())
    for array in (values, values.slice(11, 3000), pa.chunked_array([values[:5], values[5:]])):
        expected = pc.count_substring_regex(array, r"\S+")
        got = count_words(array)
        assert got.equals(expected if isinstance(expected, pa.Array) else expected.combine_chunks())
    assert count_words(pa.array(["", " a  b ", None, "日本\u3000語", "\va"])).to_pylist() == [
        0,
        2,
        None,
        1,
        1,
    ]


@pytest.mark.parametrize("pattern", [r"\pL", r"\p{Latin}"])
def test_the_ascii_letter_table_is_what_the_regex_matches(pattern: str) -> None:
    import pyarrow.compute as pc

    from curate.util.text import ASCII_LETTERS

    chars = pa.array([chr(i) for i in range(128)])
    by_regex = pc.match_substring_regex(chars, pattern).to_pylist()
    assert by_regex == ASCII_LETTERS[:128].tolist()


@pytest.mark.parametrize(("pattern", "runs"), [(r"\pL", False), (r"\p{Latin}+", True)])
def test_count_class_equals_the_regex(pattern: str, runs: bool) -> None:
    import numpy as np
    import pyarrow.compute as pc

    from curate.util.text import ASCII_LETTERS, count_class

    for ascii_only in (True, False):
        values = pa.array(_random_texts(4000, 9, ascii_only))
        for array in (values, values.slice(21, 3000)):
            expected = pc.count_substring_regex(pc.fill_null(array, ""), pattern)
            got = count_class(array, pattern, ASCII_LETTERS, runs=runs)
            assert np.array_equal(got, expected.to_numpy(zero_copy_only=False))
    assert count_class(pa.array(["ab cd", "", "é a"]), pattern, ASCII_LETTERS, runs).tolist() == (
        [2, 0, 2] if runs else [4, 0, 2]
    )


def test_collapse_whitespace_equals_the_regex() -> None:
    import pyarrow.compute as pc

    from curate.util.text import collapse_whitespace

    values = pa.array([t or "" for t in _random_texts(4000, 11)])
    for array in (values, values.slice(5, 3500)):
        expected = pc.replace_substring_regex(array, r"\s+", " ")
        assert collapse_whitespace(array).equals(expected)


def test_the_other_whitespace_is_every_code_point_the_unicode_split_adds() -> None:
    import pyarrow.compute as pc

    from curate.util.text import _OTHER_WHITESPACE

    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    texts = pa.array([f"a{chr(c)}b" for c in points])
    unicode_split = pc.list_value_length(pc.utf8_split_whitespace(texts)).to_numpy() == 2
    ascii_split = pc.list_value_length(pc.ascii_split_whitespace(texts)).to_numpy() == 2
    listed = pc.match_substring_regex(texts, _OTHER_WHITESPACE).to_numpy(zero_copy_only=False)
    assert (listed == (unicode_split & ~ascii_split)).all()
    # The only ASCII ones are the separators \x1c-\x1f.
    assert [p for p, hit in zip(points, listed, strict=True) if hit and p < 128] == [28, 29, 30, 31]


@pytest.mark.parametrize("large", [False, True])
def test_split_whitespace_equals_the_unicode_kernel(large: bool) -> None:
    import pyarrow.compute as pc

    from curate.util.text import split_whitespace

    pieces = ["\x1c", "\x1f", "\x85", "\u2028", "\u2003", "\u202f", "\u1680", "“x”", "\x0b"]
    texts = [
        None if t is None else t + pieces[i % len(pieces)] + t
        for i, t in enumerate(_random_texts(4000, 13))
    ]
    values = pa.array(texts, pa.large_string() if large else pa.string())

    def words(lists: pa.Array | pa.ChunkedArray) -> list[list[str] | None]:
        # The kernels differ only in the empty strings at a row's edges ("  " gives three).
        return [None if row is None else [w for w in row if w] for row in lists.to_pylist()]

    for array in (values, values.slice(17, 3000), pa.chunked_array([values[:9], values[9:]])):
        got = split_whitespace(array)
        assert isinstance(got, pa.Array)
        assert got.to_pylist() == words(pc.utf8_split_whitespace(array))
    ascii_only = pa.array([t or "" for t in _random_texts(500, 14, ascii_only=True)])
    assert split_whitespace(ascii_only).to_pylist() == words(pc.utf8_split_whitespace(ascii_only))
    assert split_whitespace(pa.array(["", " ", None, " a\u3000b "])).to_pylist() == [
        [],
        [],
        None,
        ["a", "b"],
    ]


def test_nfkc_equals_the_kernel() -> None:
    import pyarrow.compute as pc

    from curate.util.text import nfkc

    extra = ["ﬁ", "①", "Ｆｕｌｌ", "e\u0301", "…", "\xa0"]
    texts = [
        t if t is None else t + extra[i % len(extra)] * (i % 2)
        for i, t in enumerate(_random_texts(3000, 15))
    ]
    values = pa.array(texts)
    for array in (values, values.slice(3, 2000), pa.array(["plain", None]), pa.array(["ﬁ"])):
        assert nfkc(array).equals(pc.utf8_normalize(array, "NFKC"))


def test_matching_text_within_is_the_matching_text_of_every_row_that_can_be_that_short() -> None:
    import pyarrow.compute as pc

    from curate.util.text import matching_text_within

    tricky = ["N/A" + "!" * 300, "e\u0301" * 3, "C++", "2+2", "…" * 50, "ab" * 50, "\u0130"]
    texts = [t or "" for t in _random_texts(3000, 17)] + tricky
    values = pa.array(texts)
    full = matching_text(values)
    for limit in (0, 3, 8, 40):
        within = matching_text_within(values, limit)
        short = pc.less_equal(pc.binary_length(full), limit)
        # Every row whose matching text is that short is there, and equal to it.
        assert pc.all(pc.is_valid(within.filter(short))).as_py()
        kept = pc.is_valid(within)
        assert within.filter(kept).equals(full.filter(kept))
    assert matching_text_within(values, 3).to_pylist()[-7] == "n a"
    large = pa.array(["N/A", "many letters here", None], pa.large_string())
    assert matching_text_within(large, 3).to_pylist() == ["n a", None, ""]
