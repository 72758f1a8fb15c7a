"""language_v1: labels, script rule, safe edge cases, keep-list and scores (v1 stays for
recipes that name it; ``language`` resolves to v3, tests/stages/filters/test_language_v2.py)."""

from __future__ import annotations

import gzip
import json

import pytest

from curate.errors import StageError
from curate.lib.langid import fasttext_backend, identify
from curate.records import RECORD_SCHEMA
from curate.stages import Language, get_stage

from .conftest import DATA, make_table


def test_registered_under_recipe_key() -> None:
    assert get_stage("language_v1") is Language  # the recipe key now resolves to language_v4


def test_labels_common_languages() -> None:
    texts = [
        "What is the capital of France? Paris is the capital of France.",
        "Wie spät ist es? Es ist drei Uhr nachmittags.",
        "¿Dónde está la biblioteca? Está al lado del parque.",
        "Где находится библиотека? Она рядом с парком.",
        "ヴァージン・オーストラリアはいつから運航を開始したのですか？",
        "안녕하세요, 만나서 반갑습니다.",
        "Καλημέρα, τι κάνεις σήμερα;",
    ]
    assert identify(texts).lang == ["en", "de", "es", "ru", "ja", "ko", "el"]


def test_script_rule_fixes_chinese_with_latin_words() -> None:
    # Stock langdetect labels these Korean / Norwegian / English.
    texts = [
        "要在数据库中查询 JSONField，请看 querying-jsonfield。",
        "Gerrit 禁止了此推送。您可能需要此仓库/分支拥有 forge author 权限的 Gerrit 账号。",
        "生成了双因素身份验证恢复代码",
    ]
    result = identify(texts)
    assert result.lang == ["zh", "zh", "zh"]
    assert result.method == ["script", "script", "script"]
    # An English sentence quoting two Chinese characters stays English.
    assert identify(
        ["The Chinese greeting 你好 means hello, and people use it every day."]
    ).lang == ["en"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n",
        "42",
        "3.14159",
        "2023-10-05",
        "+1 (555) 123-4567",
        "x = 5",
        "https://example.com/path?q=1",
        "user@example.com",
        "😀😀😀",
        "—",
        "{}",
        "```python\nprint(1)\n```",
    ],
)
def test_edge_texts_never_raise_and_are_und(text: str) -> None:
    for backend in ("langdetect",):
        result = identify([text], backend)  # type: ignore[arg-type]
        assert result.lang == ["und"]
        assert result.score.tolist() == [0.0]


def test_code_blocks_and_urls_are_ignored() -> None:
    text = "Voici le code demandé, il affiche un message.\n```python\ndef main():\n    print('hello world, this is the main function of the program')\n```\nVoir https://docs.python.org/3/tutorial/index.html"
    assert identify([text]).lang == ["fr"]


def test_deterministic_and_cached_results_agree() -> None:
    texts = ["Das ist ein kurzer Satz.", "Ceci est une phrase.", "Das ist ein kurzer Satz."]
    first = identify(texts, cache=False)
    second = identify(texts)
    third = identify(texts)
    assert first.lang == second.lang == third.lang
    assert first.score.tolist() == second.score.tolist() == third.score.tolist()


def test_stage_keeps_listed_languages_and_writes_columns() -> None:
    table = make_table(
        [
            {
                "instruction": "What is the capital of France?",
                "output": "Paris is the capital of France.",
            },
            {"instruction": "フランスの首都はどこですか？", "output": "パリです。"},
            {"instruction": "Wie spät ist es?", "output": "Es ist drei Uhr nachmittags."},
            {"instruction": "2 + 2", "output": "4"},
        ]
    )
    kept, rejected = Language().run(table)
    assert kept.column("lang").to_pylist() == ["en", "und"]
    assert kept.column("lang_backend").to_pylist() == ["langdetect", "too_few_letters"]
    assert kept.column("lang_score")[0].as_py() > 0.9
    assert rejected.column("lang").to_pylist() == ["ja", "de"]
    assert rejected.column("reason").to_pylist() == ["lang_not_kept", "lang_not_kept"]
    assert "detected ja" in rejected.column("detail")[0].as_py()
    kept, rejected = Language(keep=["en", "de"], keep_und=False).run(table)
    assert kept.column("lang").to_pylist() == ["en", "de"]
    assert sorted(rejected.column("reason").to_pylist()) == ["lang_not_kept", "lang_und"]
    kept, rejected = Language(keep=[]).run(table)
    assert kept.num_rows == 4 and rejected.num_rows == 0


def test_low_score_is_its_own_reason() -> None:
    table = make_table([{"instruction": "Hash", "output": "Name"}])
    kept, rejected = Language(keep=[], min_score=0.99).run(table)
    assert kept.num_rows == 1  # keep: [] labels only
    lang = kept.column("lang")[0].as_py()
    kept, rejected = Language(keep=[lang], min_score=1.0).run(table)
    if kept.num_rows == 0:
        assert rejected.column("reason").to_pylist() == ["lang_low_score"]


def test_conversations_are_detected_on_every_turn() -> None:
    messages = [
        {
            "role": "user",
            "content": "Bonjour, pouvez-vous m'aider à écrire une lettre de motivation ?",
        },
        {
            "role": "assistant",
            "content": "Bien sûr, voici une proposition de lettre pour votre candidature.",
        },
        {"role": "user", "content": "Merci"},
        {"role": "assistant", "content": "OK"},
    ]
    table = make_table([{"instruction": "Merci", "output": "OK", "messages": messages}])
    kept, _ = Language(keep=[]).run(table)
    assert kept.column("lang").to_pylist() == ["fr"]


def test_empty_table_and_params() -> None:
    kept, rejected = Language().run(RECORD_SCHEMA.empty_table())
    assert kept.num_rows == 0 and rejected.num_rows == 0
    params = Language(keep=["EN", "zh-CN"]).params
    assert params.keep == ["en", "zh"]
    assert Language(params.model_dump()).params == params
    with pytest.raises(StageError, match="backend"):
        Language(backend="cld3")


@pytest.mark.skipif(not fasttext_backend.available(), reason="fasttext extra not installed")
def test_fasttext_backend_works_offline() -> None:
    result = identify(
        [
            "Das ist ein kurzer deutscher Satz über das Wetter.",
            "This is an English sentence about the weather.",
        ],
        "fasttext",
    )
    assert result.lang == ["de", "en"]
    assert result.method == ["fasttext", "fasttext"]
    kept, _ = Language(backend="fasttext").run(
        make_table(
            [
                {
                    "instruction": "Tell me a joke about cats.",
                    "output": "Why did the cat sit on the computer? To keep an eye on the mouse.",
                }
            ]
        )
    )
    assert kept.column("lang_backend").to_pylist() == ["fasttext"]


@pytest.mark.realdata
@pytest.mark.skipif(not (DATA / "langid").exists(), reason="needs ../shared/data")
def test_accuracy_targets_on_the_labeled_benchmark() -> None:
    with gzip.open(DATA / "langid" / "testset.jsonl.gz", "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    targets = {"short": 0.73, "medium": 0.98, "long": 0.997}
    for bucket, target in targets.items():
        subset = [r for r in rows if r["bucket"] == bucket]
        langs = identify([r["text"] for r in subset], cache=False).lang
        accuracy = sum(lang == r["lang"] for lang, r in zip(langs, subset, strict=True)) / len(
            subset
        )
        assert accuracy >= target, (bucket, accuracy)
