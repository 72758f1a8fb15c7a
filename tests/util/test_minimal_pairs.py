"""contrast(): the differences that change what a request asks, and the ones that do not."""

from __future__ import annotations

import pytest

from curate.util.minimal_pairs import changed_ask, contrast, contrast_with_material


@pytest.mark.parametrize(
    ("first", "second", "why"),
    [
        ("why do dogs like humans?", "Why do humans like dogs?", "order"),
        ("Name two animals that can fly.", "Name an animal that can fly.", "numbers"),
        ("After I ate 5 of Jack's pears", "After I ate two of Jack's pears", "numbers"),
        ("her graduate degree", "her undergraduate degree", "opposite: graduate / undergraduate"),
        ("it is too big", "it is too small", "opposite: big / small"),
        ("Is this a rational number?", "Is this an irrational number?", "opposite"),
        ("Can you swim?", "Can you not swim?", "negation"),
        (
            "philosophers from before the 19th century",
            "philosophers from the 19th century",
            "scope: before",
        ),
        (
            "What are some languages of India?",
            "How many languages does India have?",
            "question: how many",
        ),
    ],
)
def test_differences_that_change_the_request(first: str, second: str, why: str) -> None:
    found = contrast(first, second)
    assert found is not None and found.startswith(why)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Why is the sky blue?", "Why does the sky appear blue?"),
        ("Why do babies cry?", "Why do babies cry so much?"),
        ("Who is the current prime minister of India?", "Who is the prime minister of India?"),
        ("Explain how self-driving cars work.", "Explain how a self-driving car works."),
        # From the near-duplicate audit: labeled correct drops.
        (
            "According to the text what are the most common symptoms of COVID-19?",
            "What are the common symptoms of COVID-19?",
        ),
        (
            "Why is my car making a clicking sound when I try to start it? The lights are turning "
            "on and the radio works, but the engine does not turn over and I have no idea why",
            "Why is my car making a clicking sound when I try to start it? The lights are turning "
            "on and the radio works, but the engine does not turn over and I have no idea why. "
            "My car is not that old!",
        ),
    ],
)
def test_paraphrases_have_no_contrast(first: str, second: str) -> None:
    assert contrast(first, second) is None


def test_a_changed_ask_and_an_added_sentence() -> None:
    setting = (
        "Imagine a world where life expectancy is fixed and the same for everyone at birth, yet "
        "people can extend the life of someone else at the expense of their own. "
    )
    found = changed_ask(
        setting + "Talk about a scenario that involves voluntary donation.",
        setting + "Talk about a scenario that involves manipulated, coerced donation.",
    )
    assert found is not None and found.startswith("another ask")
    added = setting + "Talk about a scenario that involves voluntary donation."
    assert changed_ask(added, added + " Keep it short!") is None


def test_material_given_apart_must_be_asked_the_same_question() -> None:
    passage = "The Eastern Group of São Miguel, Santa Maria and Formigas Islets."
    assert (
        contrast_with_material(
            "Extract the islands.", "Extract the groups of islands.", passage, passage
        )
        == "another question about the same material"
    )
    assert (
        contrast_with_material("Extract the islands.", "Extract the islands!", passage, passage)
        is None
    )


def test_a_text_read_before_is_judged_as_when_first_read() -> None:
    """Readings of recent texts are kept (a keeper meets many members); texts over the kept size
    are read each time. Either way each pair gets the reason it got the first time."""
    long_tail = " ".join(f"word{i}" for i in range(300))
    pairs = [
        ("Name two animals that can fly.", "Name an animal that can fly."),
        ("why do dogs like humans?", "Why do humans like dogs?"),
        ("Can you swim?", "Can you not swim?"),
        (
            f"How many legs does a spider have? {long_tail}",
            f"What legs does a spider have? {long_tail}",
        ),
        (f"Describe a big city. {long_tail}", f"Describe a small city. {long_tail}"),
        ("List the planets.", "List the planets, please."),
    ]
    assert len(pairs[3][0]) > 1000  # over the cached size
    first = [contrast(a, b) for a, b in pairs]
    again = [contrast(a, b) for a, b in pairs] + [contrast(b, a) for a, b in pairs]
    assert again[: len(pairs)] == first
    assert first[:3] == ["numbers", "order", "negation"]
    assert first[4] == "opposite: big / small"
    assert first[5] is None
    # Swapped, a pair keeps its verdict (the opposite is named from the other side).
    assert [reason is None for reason in again[len(pairs) :]] == [r is None for r in first]
