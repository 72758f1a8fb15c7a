"""The README is what a new user reads: its reference is generated, its Python example runs."""

from __future__ import annotations

import doctest

import pytest
from testutils import REPO

from curate.cli import app
from curate.cli.docs import END, START, recipe_reference, undocumented_fields

README = REPO / "README.md"


def test_recipe_reference_in_readme_matches_the_models() -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == recipe_reference().strip(), (
        "README's recipe reference is stale: run `python -m curate.cli.docs --write README.md`"
    )


def test_every_recipe_key_and_stage_param_is_described() -> None:
    assert undocumented_fields() == []


def test_reference_lists_every_stage_and_param() -> None:
    from curate.stages import registry

    reference = recipe_reference()
    for stage in registry().values():
        assert f"#### `{stage.key()}` ({stage.name}" in reference
        for name in stage.Params.model_fields:
            assert f"| `{name}` |" in reference


def test_readme_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = doctest.testfile(
        str(README),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted >= 5
    assert result.failed == 0


def test_readme_mentions_every_cli_command() -> None:
    text = README.read_text(encoding="utf-8")
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    assert names
    for name in names:
        assert f"curate {name}" in text, f"`curate {name}` is not documented in README.md"
