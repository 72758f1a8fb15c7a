"""toxicity_v1: the prompt and the completion are scored apart, a conversation is as toxic as its
worst turn, every drop says which side, how much and (for word hits) which terms."""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa
import pytest

from curate.errors import StageError
from curate.records import RECORD_SCHEMA
from curate.stages import get_stage
from curate.stages.filters import toxicity
from curate.stages.filters.toxicity import TermMatcher, Toxicity

from .conftest import make_table

# Real Alpaca rows (the first ones of alpaca_data.json, answers shortened).
CLEAN = [
    {
        "instruction": "Give three tips for staying healthy.",
        "output": "1. Eat a balanced and nutritious diet: Make sure your meals are inclusive of a "
        "variety of fruits and vegetables, lean protein, whole grains, and healthy fats.\n"
        "2. Engage in regular physical activity.\n3. Get enough sleep.",
    },
    {
        "instruction": "What are the three primary colors?",
        "output": "The three primary colors are red, blue, and yellow.",
    },
    {
        "instruction": "Describe the structure of an atom.",
        "output": "An atom is made up of a nucleus, which contains protons and neutrons, "
        "surrounded by electrons that travel in orbits around the nucleus.",
    },
    {
        "instruction": "How can we reduce air pollution?",
        "input": "",
        "output": "There are a number of ways to reduce air pollution, such as shifting to "
        "renewable energy sources and encouraging the use of public transportation.",
    },
]
ABUSIVE_ANSWER = {
    "instruction": "Write a reply to my coworker.",
    "output": "Shut up, you fucking idiot. Nobody wants to hear your worthless bullshit.",
}
ABUSIVE_PROMPT = {
    "instruction": "Listen here you stupid bitch, tell me the capital of France.",
    "output": "The capital of France is Paris.",
}
# A long, clean answer (about 1,150 characters): one insult in its middle is diluted for a
# bag-of-words model scoring the whole text.
LONG_ANSWER = " ".join(
    [
        "Photosynthesis is the process by which green plants, algae and some bacteria turn light "
        "energy into chemical energy stored in sugars.",
        "It takes place mainly in the chloroplasts of leaf cells, which contain the pigment "
        "chlorophyll that absorbs red and blue light and reflects green light.",
        "In the light-dependent reactions, water molecules are split, oxygen is released as a "
        "by-product, and the energy carriers ATP and NADPH are produced.",
        "In the Calvin cycle, which does not need light directly, the plant uses ATP and NADPH "
        "to fix carbon dioxide from the air into three-carbon sugars.",
        "{insult}",
        "These sugars are used to build glucose, starch and cellulose, and they provide the "
        "energy that nearly every food chain on Earth depends on.",
        "The rate of photosynthesis depends on light intensity, the concentration of carbon "
        "dioxide, temperature and the availability of water.",
        "Farmers in greenhouses raise carbon dioxide levels and provide artificial light to "
        "increase the growth of their crops during the winter months.",
        "Understanding photosynthesis also helps scientists study climate change, because "
        "plants remove large amounts of carbon dioxide from the atmosphere every year.",
    ]
)


def classifier() -> None:
    pytest.importorskip("profanity_check")


def run(rows: list[dict[str, Any]], **params: Any) -> tuple[pa.Table, pa.Table]:
    # The cases below were written against the classifier at 0.9 (the defaults are the word list
    # and 0.98, chosen from bench/toxicity.py's hand-read drops).
    params.setdefault("backend", "classifier")
    params.setdefault("threshold", 0.9)
    table = make_table(rows)
    kept, rejected = Toxicity(**params).run(table)
    assert kept.num_rows + rejected.num_rows == table.num_rows
    return kept, rejected


def turns(*contents: str) -> list[dict[str, str]]:
    """A conversation alternating user and assistant turns."""
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text}
        for i, text in enumerate(contents)
    ]


def test_registered_under_recipe_key() -> None:
    assert get_stage("toxicity") is Toxicity
    assert Toxicity.name == "toxicity_v1" and Toxicity.kind == "filter"


def test_an_abusive_completion_is_dropped_and_clean_rows_are_kept() -> None:
    classifier()
    kept, rejected = run([*CLEAN, ABUSIVE_ANSWER])
    assert kept.column("id").to_pylist() == ["r0", "r1", "r2", "r3"]
    assert max(kept.column("toxicity_score").to_pylist()) < 0.2
    for name in ("toxicity_score", "toxicity_prompt_score", "toxicity_completion_score"):
        assert kept.schema.field(name).type == pa.float64()
    (row,) = rejected.to_pylist()
    assert (row["id"], row["reason"], row["stage"]) == ("r4", "toxic", "toxicity_v1")
    assert row["detail"].startswith("completion score ")
    assert row["detail"].endswith(" >= threshold 0.9")
    assert float(row["detail"].split()[2]) >= 0.9


def test_scores_are_the_max_of_both_sides() -> None:
    classifier()
    kept, _ = run([ABUSIVE_PROMPT], scope="completion")
    (row,) = kept.to_pylist()
    assert row["toxicity_prompt_score"] >= 0.9
    assert row["toxicity_completion_score"] < 0.2
    assert row["toxicity_score"] == row["toxicity_prompt_score"]


def test_prompt_only_toxicity_drops_under_scope_both_not_under_completion() -> None:
    classifier()
    kept, rejected = run([ABUSIVE_PROMPT, CLEAN[0]])
    assert rejected.column("detail").to_pylist()[0].startswith("prompt score ")
    assert kept.column("id").to_pylist() == ["r1"]
    kept, rejected = run([ABUSIVE_PROMPT, CLEAN[0]], scope="completion")
    assert rejected.num_rows == 0 and kept.num_rows == 2
    kept, rejected = run([ABUSIVE_PROMPT, ABUSIVE_ANSWER], scope="prompt")
    assert rejected.column("id").to_pylist() == ["r0"] and kept.column("id").to_pylist() == ["r1"]


def test_a_conversation_is_as_toxic_as_its_worst_assistant_turn() -> None:
    classifier()
    bad = turns(
        "Hello! Can you help me with my homework?",
        "Go fuck yourself, you pathetic loser.",  # only this (earlier) turn is toxic
        "What is the boiling point of water?",
        "Water boils at 100 degrees Celsius at sea level.",
    )
    clean = turns(
        "What is the boiling point of water?",
        "Water boils at 100 degrees Celsius at sea level.",
        "Thanks, that helps!",
        "You are welcome. Anything else?",
    )
    rude_user = turns(
        "You are a worthless piece of shit and I hope you die.",
        "I am sorry you feel that way. How can I help you today?",
    )
    rows = [
        # instruction/output repeat the last, clean exchange: the conversation decides.
        {"instruction": bad[2]["content"], "output": bad[3]["content"], "messages": bad},
        {"instruction": clean[2]["content"], "output": clean[3]["content"], "messages": clean},
        {"messages": rude_user},
    ]
    kept, rejected = run(rows, scope="completion")
    assert rejected.column("id").to_pylist() == ["r0"]
    assert rejected.column("detail")[0].as_py().startswith("completion score ")
    assert kept.column("id").to_pylist() == ["r1", "r2"]
    assert kept.column("toxicity_prompt_score").to_pylist()[1] >= 0.9  # the user was rude
    assert max(kept.column("toxicity_completion_score").to_pylist()) < 0.2
    _, rejected = run(rows)  # scope both: the rude user's row goes too
    assert rejected.column("id").to_pylist() == ["r0", "r2"]
    # Without "messages" in fields, only the last exchange (instruction/output) is scored.
    kept, _ = run(rows[:1], fields=["instruction", "input", "output"])
    assert kept.num_rows == 1


def test_roles_choose_the_turns_scored() -> None:
    classifier()
    row = {"messages": turns("You are a worthless piece of shit and I hope you die.", "Hi.")}
    kept, _ = run([row], roles=["assistant"])
    assert kept.column("toxicity_prompt_score").to_pylist() == [0.0]


def test_long_texts_are_scored_in_chunks() -> None:
    classifier()
    row = {
        "instruction": "Explain photosynthesis.",
        "output": LONG_ANSWER.format(insult="Shut up, you stupid bitch."),
    }
    assert len(row["output"]) > 1000
    kept, _ = run([row], chunk_chars=0)  # the whole answer: one insult is diluted
    assert kept.column("toxicity_completion_score")[0].as_py() < 0.5
    _, rejected = run([row])
    assert rejected.column("detail").to_pylist()[0].startswith("completion score ")
    clean = {"instruction": "Explain photosynthesis.", "output": LONG_ANSWER.format(insult="")}
    kept, _ = run([clean])
    assert kept.column("toxicity_score")[0].as_py() < 0.2


def test_wordlist_backend_matches_whole_words_and_names_them() -> None:
    rows = [
        {"instruction": "Reply to him.", "output": "What the FUCK is this shit?"},
        {"instruction": "Censor this: that fucking idiot", "output": "That ****ing idiot."},
        *CLEAN,
    ]
    kept, rejected = run(rows, backend="wordlist")
    assert rejected.column("detail").to_pylist() == [
        "completion score 1.00 >= threshold 0.9; terms: fuck, shit",
        "prompt score 1.00 >= threshold 0.9; terms: fucking",
    ]
    assert set(kept.column("toxicity_score").to_pylist()) == {0.0}
    assert kept.num_rows == len(CLEAN)


def test_wordlist_does_not_match_innocent_substrings_or_senses() -> None:
    rows = [
        {"instruction": "Which town is home to Scunthorpe United?", "output": "Scunthorpe."},
        {"instruction": "Assess the class.", "output": "The class passed the assessment."},
        {"instruction": "Who wrote Moby Dick?", "output": "Herman Melville; Dickens did not."},
        {"instruction": "Name a cat breed.", "output": "The Maine Coon."},
        {"instruction": "Cook shiitake.", "output": "Sauté the mushrooms; a cocktail helps."},
        {"instruction": "What is a hell of a deal?", "output": "Damn good, bloody cheap."},
        {"instruction": "Classify: shitstorm_bot", "output": "A Twitter handle."},
    ]
    kept, rejected = run(rows, backend="wordlist")
    assert rejected.num_rows == 0
    assert set(kept.column("toxicity_score").to_pylist()) == {0.0}


def test_extra_terms_force_a_score_of_one_with_either_backend() -> None:
    rows = [
        {"instruction": "What does frobnicate mean?", "output": "To tweak."},
        {"instruction": "Say it.", "output": "Son  of\na\tBitch!"},
        CLEAN[1],
    ]
    params = {"extra_terms": ["frobnicate", "son of a bitch"]}
    kept, rejected = run(rows, backend="wordlist", **params)
    assert kept.column("id").to_pylist() == ["r2"]
    assert rejected.column("detail").to_pylist() == [
        "prompt score 1.00 >= threshold 0.9; terms: frobnicate",
        "completion score 1.00 >= threshold 0.9; terms: son  of\na\tbitch",
    ]
    classifier()
    _, rejected = run(rows[:1], **params)
    assert rejected.column("detail").to_pylist() == [
        "prompt score 1.00 >= threshold 0.9; terms: frobnicate"
    ]


def test_allow_terms_are_never_counted() -> None:
    rows = [
        {"instruction": "Name a rap song.", "output": "Shit Shit by some band"},
        {"instruction": "Reply.", "output": "Oh shit, fuck off."},
    ]
    kept, rejected = run(rows, backend="wordlist", allow_terms=["shit"])
    assert kept.column("id").to_pylist() == ["r0"]
    assert rejected.column("detail").to_pylist() == [
        "completion score 1.00 >= threshold 0.9; terms: fuck"
    ]
    classifier()
    insult = [{"instruction": "Reply.", "output": "You fucking idiot."}]
    kept, _ = run(insult, allow_terms=["fucking", "idiot"])
    assert kept.column("toxicity_score")[0].as_py() < 0.5


def test_empty_and_missing_texts_score_zero() -> None:
    rows: list[dict[str, Any]] = [
        {"instruction": "", "output": ""},
        {"instruction": "   ", "input": "\n", "output": "..."},
        {"messages": []},
        {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]},
    ]
    table = make_table(rows)
    table = table.set_column(
        table.column_names.index("output"), "output", pa.array([None, "...", None, None])
    )
    for backend in ("wordlist", "classifier"):
        if backend == "classifier":
            classifier()
        kept, rejected = Toxicity(backend=backend).run(table)
        assert rejected.num_rows == 0
        assert set(kept.column("toxicity_score").to_pylist()) == {0.0}
    empty = Toxicity(backend="wordlist").run(RECORD_SCHEMA.empty_table())
    assert empty.kept.num_rows == 0 and empty.rejected.num_rows == 0


def test_scores_are_deterministic_and_batch_invariant() -> None:
    classifier()
    rows = [
        *CLEAN,
        ABUSIVE_ANSWER,
        ABUSIVE_PROMPT,
        {"messages": turns("hi", "Go fuck yourself.")},
        {"instruction": "Explain.", "output": LONG_ANSWER.format(insult="Shut up, bitch.")},
    ]
    table = make_table(rows)
    first = Toxicity(backend="classifier").run(table)
    second = Toxicity(backend="classifier").run(table)
    assert first.kept.equals(second.kept) and first.rejected.equals(second.rejected)
    parts = [
        Toxicity(backend="classifier").run(table.slice(i, 2)) for i in range(0, table.num_rows, 2)
    ]
    assert pa.concat_tables([p.kept for p in parts]).equals(first.kept)
    assert pa.concat_tables([p.rejected for p in parts]).equals(first.rejected)


def test_manifest_info_counts_per_side() -> None:
    classifier()
    stage = Toxicity(backend="classifier", threshold=0.9)
    stage.run(make_table([*CLEAN, ABUSIVE_ANSWER, ABUSIVE_PROMPT]))
    info = stage.manifest_info()
    assert info["backend"] == "classifier"
    assert info["package"].startswith("alt-profanity-check ")
    assert info["threshold"] == 0.9 and info["scope"] == "both"
    assert info["counts"]["rows"] == 6 and info["counts"]["dropped"] == 2
    assert info["counts"]["dropped_by"] == {"prompt": 1, "completion": 1}
    merged = stage.merge_manifest_info([info, info])
    assert merged["threshold"] == 0.9 and merged["counts"]["rows"] == 12
    words = Toxicity(backend="wordlist")
    words.run(make_table([ABUSIVE_ANSWER]))
    assert words.manifest_info()["counts"]["term_matches"] == {"prompt": 0, "completion": 1}


def test_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    toxicity.load_classifier.cache_clear()
    monkeypatch.setitem(sys.modules, "profanity_check", None)  # import fails
    try:
        with pytest.raises(StageError, match=r"pip install 'curate\[toxicity\]'.*wordlist"):
            Toxicity(backend="classifier").prepare()
        kept, _ = Toxicity(backend="wordlist").run(make_table(CLEAN))  # needs no extra
        assert kept.num_rows == len(CLEAN)
    finally:
        toxicity.load_classifier.cache_clear()


def test_params_are_validated() -> None:
    for bad in ({"threshold": 1.5}, {"backend": "perspective"}, {"extra_terms": [" * "]}):
        with pytest.raises(StageError, match="invalid parameters for stage 'toxicity'"):
            Toxicity(**bad)


def test_term_matcher_quick_pattern_never_misses_an_exact_match() -> None:
    matcher = TermMatcher.of(["fuck*", "über*", "c++", "son of a bitch"])
    assert matcher is not None
    texts = pa.array(
        ["FUCKING hell", "x überschrift", "I love C++!", "son of a bitch", "daßfuck", "cuck"]
    )
    assert matcher.match(texts).tolist() == [True, True, True, True, False, False]
    assert matcher.terms("C++ and fuckers, fuck", 5) == ["c++", "fuckers", "fuck"]
