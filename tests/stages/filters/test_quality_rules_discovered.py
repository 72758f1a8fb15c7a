"""Quality rules are discovered: a named ``Rule`` in ``quality/rules/`` is a recipe key, no list to edit."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import ClassVar

import pytest

from curate.errors import StageError
from curate.stages import Quality
from curate.stages.filters.quality import RULES
from curate.stages.filters.quality import rules as rules_package
from curate.stages.filters.quality.rules import Rule, discover_rules

# Today's reason priority; new rules may slot in anywhere, but these keep their relative order.
PRIORITY = [
    "empty_output",
    "placeholder_output",
    "min_length",
    "url_only_input",
    "missing_attachment",
    "instruction_leak",
    "refusal",
    "echo",
    "repetition",
    "length_ratio",
    "char_ratio",
    "regex",
]


def rules_by_module() -> dict[str, list[type[Rule]]]:
    """Named ``Rule`` subclasses defined in each public module of the rules package (own scan)."""
    found: dict[str, list[type[Rule]]] = {}
    prefix = f"{rules_package.__name__}."
    for info in pkgutil.walk_packages(rules_package.__path__, prefix=prefix):
        if any(part.startswith("_") for part in info.name.removeprefix(prefix).split(".")):
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, Rule) and value.name and value.__module__ == module.__name__:
                found.setdefault(info.name, []).append(value)
    return found


def test_every_rule_module_is_a_params_field() -> None:
    by_module = rules_by_module()
    assert by_module, "no rule modules found"
    fields = Quality.Params.model_fields
    for module, rules in by_module.items():
        for rule in rules:
            assert rule.name in fields, f"{module}.{rule.__name__} is not a quality param"
            assert rule in RULES
    names = {rule.name for rules in by_module.values() for rule in rules}
    assert set(fields) == names


def test_field_order_is_the_discovered_priority_order() -> None:
    discovered = discover_rules()
    assert discovered == RULES
    assert list(Quality.Params.model_fields) == [rule.name for rule in discovered]
    assert list(discovered) == sorted(discovered, key=lambda rule: (rule.order, rule.name))
    names = [rule.name for rule in discovered]
    assert [name for name in names if name in PRIORITY] == PRIORITY
    assert [rule.name for rule in Quality().rules()] == PRIORITY[:9]  # defaults on; last 3 off


def test_fields_are_typed_and_defaulted_by_each_rule() -> None:
    fields = Quality.Params.model_fields
    defaults = Quality().params
    for rule in RULES:
        info = fields[rule.name]
        assert info.annotation is rule.Params
        assert info.get_default(call_default_factory=True) == rule.Params()
        assert getattr(defaults, rule.name) == rule.Params()
        assert info.description == rule.description
        assert rule.description, f"{rule.__name__} has no description"


class OutsideRule(Rule):
    """A rule defined outside the rules package: never picked up."""

    name: ClassVar[str] = "outside_the_package"


def test_rule_outside_the_package_is_not_discovered() -> None:
    discover_rules.cache_clear()
    try:
        assert OutsideRule not in discover_rules()
        assert "outside_the_package" not in [rule.name for rule in discover_rules()]
    finally:
        discover_rules.cache_clear()


def test_duplicate_rule_names_raise() -> None:
    echo_module = importlib.import_module(f"{rules_package.__name__}.echo")

    class EchoTwin(Rule):
        name: ClassVar[str] = "echo"

    EchoTwin.__module__ = echo_module.__name__
    discover_rules.cache_clear()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(echo_module, "EchoTwin", EchoTwin, raising=False)
            with pytest.raises(StageError, match=r"two quality rules share the name 'echo'"):
                discover_rules()
    finally:
        discover_rules.cache_clear()
    assert discover_rules() == RULES
