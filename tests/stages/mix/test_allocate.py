"""The mixing math against hand-computed expectations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from curate.errors import StageError
from curate.stages.mix.allocate import Group, Unit, allocate, largest_remainder
from curate.stages.mix.mix import Mix


def units(**sizes: int) -> list[Unit]:
    """``alpaca=1000, dolly__open_qa=300`` -> units alpaca and dolly/open_qa."""
    out = []
    for key, n in sizes.items():
        source, _, task = key.partition("__")
        out.append(Unit(f"{source}/{task}" if task else source, source, task, n))
    return out


def counts(allocation: object) -> dict[str, int]:
    return {u.name: c for u, c in zip(allocation.units, allocation.counts, strict=True)}  # type: ignore[attr-defined]


def test_examples_proportional_with_a_cap() -> None:
    # masses min(n, 40) = 40, 40, 10 -> 90 rows split 40:40:10
    result = allocate(units(a=100, b=50, c=10), target=90, cap=40)
    assert counts(result) == {"a": 40, "b": 40, "c": 10}
    # target 45: half of each
    assert counts(allocate(units(a=100, b=50, c=10), target=45, cap=40)) == {
        "a": 20,
        "b": 20,
        "c": 5,
    }


def test_no_target_means_every_unit_capped_at_k() -> None:
    result = allocate(units(a=100, b=50, c=10), cap=40)
    assert counts(result) == {"a": 40, "b": 40, "c": 10}
    assert result.total == 90
    assert counts(allocate(units(a=7, b=3))) == {"a": 7, "b": 3}  # no cap: everything


def test_temperature_flattens_the_rates() -> None:
    # T=2: masses sqrt(400)=20, sqrt(100)=10 -> 30 rows split 20:10
    assert counts(allocate(units(a=400, b=100), target=30, temperature=2.0)) == {"a": 20, "b": 10}
    # with a cap first: min(n, 100)^(1/2) = 10, 10
    assert counts(allocate(units(a=400, b=100), target=30, cap=100, temperature=2.0)) == {
        "a": 15,
        "b": 15,
    }


def test_fractions_counts_and_the_rest_by_mass() -> None:
    u = units(alpaca=1000, dolly__open_qa=300, dolly__closed_qa=100, niv2=50)
    result = allocate(u, target=1000, weights={"alpaca": 0.5, "niv2": 200})
    # alpaca 50% = 500; niv2 = 200 (upsampled 4x); the rest (300) to dolly by mass 300:100
    assert counts(result) == {
        "alpaca": 500,
        "dolly/open_qa": 225,
        "dolly/closed_qa": 75,
        "niv2": 200,
    }
    assert result.entry == ["alpaca", None, None, "niv2"]


def test_a_weighted_source_splits_by_mass_across_its_tasks() -> None:
    u = units(alpaca=1000, dolly__open_qa=300, dolly__closed_qa=100)
    result = allocate(u, target=100, weights={"dolly": 0.4})
    assert counts(result) == {"alpaca": 60, "dolly/open_qa": 30, "dolly/closed_qa": 10}


def test_the_most_specific_name_claims_a_unit() -> None:
    u = units(flan_cot__cot_gsm8k=500, flan_cot__cot_aqua=300, flan_cot__cot_qasc=100, alpaca=100)
    result = allocate(u, target=1000, weights={"flan_cot": 0.3, "cot_gsm8k": 0.1})
    # gsm8k 100; the other two CoT tasks share 300 as 300:100; alpaca gets the remaining 600
    assert counts(result) == {
        "flan_cot/cot_gsm8k": 100,
        "flan_cot/cot_aqua": 225,
        "flan_cot/cot_qasc": 75,
        "alpaca": 600,
    }


def test_nested_groups() -> None:
    u = units(alpaca=1000, dolly__open_qa=300, dolly__closed_qa=100, niv2=500)
    weights = {"chat": Group(weight=0.6, members={"alpaca": 0.5, "dolly": None}), "niv2": 0.4}
    result = allocate(u, target=1000, weights=weights)
    # chat 600 -> alpaca 300, dolly 300 (225:75 by mass); niv2 400
    assert counts(result) == {
        "alpaca": 300,
        "dolly/open_qa": 225,
        "dolly/closed_qa": 75,
        "niv2": 400,
    }
    assert result.entry == ["chat.alpaca", "chat.dolly", "chat.dolly", "niv2"]


def test_group_with_a_count_and_unweighted_members() -> None:
    u = units(a=10, b=30, c=100)
    weights = {"g": Group(weight=80, members={"a": None, "b": None})}
    # g gets 80 rows split 10:30 -> 20, 60; c gets the other 20 of the target 100
    assert counts(allocate(u, target=100, weights=weights)) == {"a": 20, "b": 60, "c": 20}


def test_only_fractions_are_normalized() -> None:
    assert counts(allocate(units(a=10, b=10), target=100, weights={"a": 0.3, "b": 0.2})) == {
        "a": 60,
        "b": 40,
    }


def test_only_counts_leave_the_rest_unallocated() -> None:
    result = allocate(units(a=10, b=10), target=100, weights={"a": 20, "b": 30})
    assert counts(result) == {"a": 20, "b": 30}
    assert result.unallocated == 50


def test_largest_remainder_rounding_keeps_the_total_and_breaks_ties_in_order() -> None:
    assert largest_remainder([10 / 3] * 3, 10) == [4, 3, 3]
    assert largest_remainder([1.6, 1.2, 2.2], 5) == [2, 1, 2]
    # three equal units, target 10: shares 3.33 each -> 4, 3, 3
    assert counts(allocate(units(a=5, b=5, c=5), target=10)) == {"a": 4, "b": 3, "c": 3}
    result = allocate(units(a=5, b=5, c=5), target=10)
    assert [round(e, 4) for e in result.expected] == [3.3333] * 3


def test_weights_that_name_nothing_or_twice_are_errors() -> None:
    with pytest.raises(StageError, match=r"'alpca' names no source, task or unit.*sources: alpaca"):
        allocate(units(alpaca=10), target=5, weights={"alpca": 0.5})
    weights = {"g1": Group(members={"alpaca": None}), "g2": Group(members={"alpaca": None})}
    with pytest.raises(StageError, match=r"named by more than one entry: g1\.alpaca, g2\.alpaca"):
        allocate(units(alpaca=10), target=5, weights=weights)


def test_asking_for_more_than_the_target_is_an_error() -> None:
    with pytest.raises(StageError, match="counts ask for 200 rows but only 100"):
        allocate(units(a=10, b=10), target=100, weights={"a": 200})
    with pytest.raises(StageError, match="ask for more than 100 rows"):
        allocate(units(a=10, b=10, c=10), target=100, weights={"a": 60, "b": 0.5})


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"a": 0.7, "b": 0.6}, "fractions add up to 1.3"),
        ({"a": 2.5}, "must be whole"),
        ({"a": -1}, "cannot be negative"),
        ({"g": {"weight": 0.5, "members": {"a": 0.8, "b": 0.4}}}, "fractions add up to 1.2"),
    ],
)
def test_bad_weights_fail_when_the_stage_is_built(weights: dict[str, object], message: str) -> None:
    with pytest.raises(StageError, match=message):
        Mix(weights=weights)
    with pytest.raises(ValidationError):
        Mix.Params(weights=weights)  # type: ignore[arg-type]
