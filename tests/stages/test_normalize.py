from __future__ import annotations

import pyarrow as pa
from testutils import records_table

from curate.stages import get_stage


def table_of(*rows: dict) -> pa.Table:
    return records_table(rows)


def test_nfc_controls_whitespace_and_placeholders() -> None:
    table = table_of(
        {
            "instruction": "  Cafe\u0301   menu\t please  ",
            "input": "N/A",
            "output": "line one   \r\nline two\x00\n\n\n\n    indented code",
        },
        {"instruction": "x", "input": "<noinput>", "output": "y"},
        {"instruction": "x", "input": "None of the above is true.", "output": "y"},
    )
    out = get_stage("normalize")().run(table).kept.to_pylist()
    assert out[0]["instruction"] == "Café menu please"  # NFC + collapsed spaces
    assert out[0]["input"] == ""  # whole-field placeholder
    # newlines and indentation kept in outputs; CRLF, NUL and trailing spaces gone; blank runs capped
    assert out[0]["output"] == "line one\nline two\n\n    indented code"
    assert out[1]["input"] == ""
    assert out[2]["input"] == "None of the above is true."  # only whole-field placeholders


def test_ids_are_recomputed_from_normalized_content() -> None:
    a = table_of({"instruction": "Hello  world", "output": "x "})
    b = table_of({"instruction": "Hello world", "output": "x"})
    stage = get_stage("normalize")()
    assert a.column("id") != b.column("id")
    assert stage.run(a).kept.column("id") == stage.run(b).kept.column("id")


def test_citations_stripped_only_when_asked() -> None:
    table = table_of(
        {
            "instruction": "q",
            "input": "Founded in 1901.[3] Moved in 1920.[12]",
            "output": "In 1901[1].",
        }
    )
    kept = get_stage("normalize")().run(table).kept.to_pylist()[0]
    assert "[3]" in kept["input"]
    stripped = get_stage("normalize")(strip_citations=True).run(table).kept.to_pylist()[0]
    assert stripped["input"] == "Founded in 1901. Moved in 1920."
    assert stripped["output"] == "In 1901."


def test_messages_content_is_normalized() -> None:
    table = table_of(
        {
            "instruction": "hi",
            "output": "yo",
            "messages": [
                {"role": "user", "content": " hi\u200b "},
                {"role": "assistant", "content": "yo  \n"},
            ],
        },
        {"instruction": "plain", "output": "row"},
    )
    out = get_stage("normalize")().run(table).kept.to_pylist()
    assert out[0]["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]
    assert out[1]["messages"] is None


def test_nfc_false_keeps_the_composition_as_read() -> None:
    decomposed = "Cafe\u0301"
    table = table_of(
        {"instruction": decomposed, "input": "", "output": decomposed},
        {
            "instruction": "hi",
            "output": "ok",
            "messages": [
                {"role": "user", "content": decomposed},
                {"role": "assistant", "content": "ok"},
            ],
        },
    )
    kept = get_stage("normalize")(nfc=False).run(table).kept.to_pylist()
    assert kept[0]["instruction"] == decomposed and kept[0]["output"] == decomposed
    assert kept[1]["messages"][0]["content"] == decomposed
    composed = get_stage("normalize")().run(table).kept.to_pylist()
    assert composed[0]["instruction"] == "Café" and composed[1]["messages"][0]["content"] == "Café"


def test_v2_cleans_label_fields_and_options_too() -> None:
    table = records_table(
        [
            {
                "instruction": "Pick one.",
                "output": "a",
                "category": " x\x1b]0;t\x07 <b>\n y ",
                "task": "\t\n",
                "task_source": None,
                "options": ["  a\x00 ", "b\r\n"],
            }
        ]
    )
    v1, v2 = get_stage("normalize_v1")(), get_stage("normalize")()
    assert v2.name == "normalize_v2"
    (row,) = v2.run(table).kept.to_pylist()
    assert row["category"] == "x]0;t <b> y"  # controls out, one line, trimmed
    assert row["task"] is None and row["task_source"] is None  # empty label -> null
    assert row["options"] == ["a", "b"]
    # v1 keeps its behaviour (old recipes that name it reproduce), and the ids see the options
    (old,) = v1.run(table).kept.to_pylist()
    assert old["category"] == table.column("category")[0].as_py() and old["id"] != row["id"]


def test_only_the_rows_a_step_would_change_are_rewritten_to_the_same_text() -> None:
    """``_clean`` rewrites only the rows one of its patterns matches: the result is the whole
    chain of replacements on every row, including the rows where one step makes the next match
    (a control character between newlines, a no-break space before a newline)."""
    import random

    import pyarrow.compute as pc

    from curate.stages import normalize

    rng = random.Random(3)
    pieces = ["word", " ", "  ", "\t", "\n", "\n\n\n", "\xa0", "\x00", "\u200b", "\ufeff", "[3]"]
    pieces += ["é", "\r\n", " \n", "\x85", "plain text"]
    texts = ["".join(rng.choices(pieces, k=rng.randrange(12))) for _ in range(3000)]
    texts += ["a\n\n\x00\nb", "a\xa0\nb", "x [1]\ny", "clean line", None]  # type: ignore[list-item]
    values = pa.array(texts, pa.string())
    for collapse in (False, True):
        for cite in (False, True):
            expected = values
            if pc.any(pc.match_substring(values, "\r")).as_py():
                expected = pc.replace_substring(
                    pc.replace_substring(expected, "\r\n", "\n"), "\r", "\n"
                )
            if cite:
                expected = pc.replace_substring_regex(expected, normalize._CITATION, "")
            if collapse:
                expected = pc.replace_substring_regex(expected, normalize._SPACE_RUNS, " ")
            expected = pc.replace_substring_regex(expected, normalize._CONTROL_OR_TRAILING, "\\1")
            expected = pc.replace_substring_regex(expected, normalize._EXTRA_BLANK_LINES, "\n\n")
            expected = pc.utf8_trim_whitespace(expected)
            got = normalize._clean(values, collapse, cite, nfc=False)
            assert got.equals(expected), (collapse, cite)
