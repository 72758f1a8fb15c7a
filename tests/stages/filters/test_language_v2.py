"""language_v2 decides on the request and drops only on strong evidence (issue: ~97 % of the v1
drops on Alpaca + Dolly were English requests)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from testutils import SHARED_DATA, needs_shared_data, records_table

from curate.ingest import read_file
from curate.stages import get_stage

# English requests v1 dropped on Alpaca + Dolly (its top-1 label in brackets).
ENGLISH = [
    ("How many sides a dodecagon has?", "12"),  # es
    ("Convert 3 kilometers to meters.", "3000 meters"),  # nl
    ("Name one famous scientist.", "Albert Einstein"),  # de
    ("Calculate 7 times 5.", "35"),  # ro
    ("Write a function to compute Fibonacci numbers", "def fib(n):\n    return n"),  # ro
    ("Create a multiplication table for 6.", "6 x 1 = 6\n6 x 2 = 12"),  # ca
    ('Translate "Ich bin ein Berliner" into English.', "I am a Berliner."),  # de
    ("List 5 famous Italian dishes.", "Pizza, Lasagna, Risotto, Carbonara, Tiramisu"),  # it
    ("Classify these Indian cities into states: Mumbai, Pune, Chennai, Kolkata", "Maharashtra"),
    ("Who was Yoshikazu Shirakawa?", "Yoshikazu Shirakawa was a Japanese politician."),
    ("Generate a motivational quote", "Believe you can and you're halfway there."),
    # A translation request: its answer is in the target language, not the user's.
    ('Translate "he is standing still"', "Él está quieto."),
]
FOREIGN = [
    ("Qui était Clovis?", "Clovis était le premier roi des Francs.", "fr"),
    ("Wat is goede vrijdag?", "Goede Vrijdag is de vrijdag voor Pasen.", "nl"),
    ("Quel a été l'impact de la révolution française ?", "Elle a changé l'Europe.", "fr"),
    ("日本の首都はどこですか？", "東京です。", "ja"),
]


def table(rows: list[tuple[str, ...]]) -> pa.Table:
    return records_table([{"instruction": r[0], "output": r[1]} for r in rows])


def test_english_requests_are_kept_and_foreign_ones_dropped() -> None:
    stage = get_stage("language_v2")()
    assert stage.name == "language_v2"
    kept, rejected = stage.run(table([*ENGLISH, *FOREIGN]))
    assert sorted(kept.column("instruction").to_pylist()) == sorted(r[0] for r in ENGLISH)
    assert set(kept.column("lang").to_pylist()) == {"en"}
    assert [(r["lang"], r["reason"]) for r in rejected.to_pylist()] == [
        (lang, "lang_not_kept") for *_, lang in FOREIGN
    ]
    # every drop says what decided it and by how much
    for row in rejected.to_pylist():
        assert row["detail"].startswith(f"detected {row['lang']}")
        assert "keep: en" in row["detail"]


def test_an_uncertain_row_is_kept_labeled_with_the_kept_language() -> None:
    kept, _ = get_stage("language_v2")().run(table([("Calculate 7 times 5.", "35")]))
    (row,) = kept.to_pylist()
    assert (row["lang"], row["lang_backend"]) == ("en", "langdetect:uncertain")
    assert row["lang_evidence"] < row["lang_margin"]
    labeled = get_stage("language_v2")(keep=[]).run(table([("Calculate 7 times 5.", "35")])).kept
    assert labeled.column("lang_backend")[0].as_py() == "langdetect"  # label only: the top-1


def test_quotes_numbers_lists_and_names_do_not_decide() -> None:
    rows = [
        ('Translate "Je suis très fatigué aujourd\'hui" into English.', "I am very tired today."),
        ("Sort these: Bratwurst, Sauerkraut, Brezel, Schnitzel, Strudel", "Brezel, Bratwurst"),
        ("Calculate 3^2 + 6 * (4 - 1) / 7", "11.57"),
        ("Who was José María Arizmendiarrieta?", "A Basque priest."),
    ]
    kept, rejected = get_stage("language_v2")().run(table(rows))
    assert rejected.num_rows == 0 and kept.num_rows == len(rows)


def test_a_request_too_short_to_tell_is_judged_with_its_output() -> None:
    kept, rejected = get_stage("language_v2")().run(
        table([("?", "Clovis était le premier roi des Francs, fils de Childéric.")])
    )
    assert rejected.column("lang").to_pylist() == ["fr"] and kept.num_rows == 0
    # with no fallback, a row without a request is kept as 'und'
    kept, _ = get_stage("language_v2")(fallback_fields=[]).run(
        table([("?", "Clovis était le premier roi des Francs, fils de Childéric.")])
    )
    assert kept.column("lang").to_pylist() == ["und"]


def test_margins_are_params() -> None:
    rows = [("Generate a motivational quote", "Believe you can.")]
    eager = get_stage("language_v2")(margin=0, margin_growth=0).run(table(rows))
    assert eager.rejected.num_rows == 1  # no margin: the top-1 label decides
    assert get_stage("language_v2")().run(table(rows)).rejected.num_rows == 0


@pytest.mark.realdata
@needs_shared_data
def test_real_data_recall_on_non_english_instructions() -> None:
    ja = read_file(SHARED_DATA / "dolly_ja" / "databricks-dolly-15k-ja.jsonl.gz", source="ja")
    sample = ja.records.slice(0, 2000)
    _, rejected = get_stage("language_v2")().run(sample)
    assert rejected.num_rows / sample.num_rows >= 0.995
