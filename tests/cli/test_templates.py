"""`curate templates list` and `curate templates render` (the typer sub-app on its own)."""

from __future__ import annotations

from pathlib import Path

from testutils import SAMPLES
from typer.testing import CliRunner

from curate.cli.templates import templates_app
from curate.errors import TemplateError

runner = CliRunner()


def test_list_shows_every_family() -> None:
    result = runner.invoke(templates_app, ["list"])
    assert result.exit_code == 0, result.output
    for family in (
        "generic",
        "dolly_closed_qa",
        "cot",
        "multiple_choice",
        "niv2",
        "invert_question",
    ):
        assert family in result.output
    assert "families" in result.output.splitlines()[-1]


def test_render_the_family_examples_with_every_template() -> None:
    result = runner.invoke(templates_app, ["render", "dolly_closed_qa", "--sample", "2"])
    assert result.exit_code == 0, result.output
    assert "== dolly_closed_qa/passage_then_question (zs_noopt)" in result.output
    assert "== dolly_closed_qa/question_only (zs_noopt)" in result.output
    assert "Apollo 11" in result.output


def test_render_samples_from_data_with_the_assigned_templates() -> None:
    args = [
        "render",
        "niv2",
        "--sample",
        "2",
        "--data",
        str(SAMPLES / "niv2_task001_sample_antonyms.json"),
    ]
    result = runner.invoke(templates_app, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("--- prompt") == 2
    assert "2 of 4 records the family applies to, 2 rows" in result.output
    again = runner.invoke(templates_app, args)
    assert again.output == result.output  # seeded


def test_render_a_family_that_applies_to_nothing_in_the_data() -> None:
    result = runner.invoke(templates_app, ["render", "cot", "--data", str(SAMPLES / "dolly.jsonl")])
    assert result.exit_code != 0
    assert "applies to none" in str(result.exception)


def test_unknown_family_and_a_user_directory(tmp_path: Path) -> None:
    result = runner.invoke(templates_app, ["render", "nope"])
    assert isinstance(result.exception, TemplateError)
    (tmp_path / "mine.yaml").write_text(
        "id: mine\nexamples: [{instruction: Hi, output: Hello}]\n"
        'templates:\n  - {id: t, type: zs_noopt, prompt: "Say: {{ instruction }}", completion: "{{ output }}"}\n'
    )
    result = runner.invoke(
        templates_app, ["render", "mine", "--no-builtin", "--dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "Say: Hi" in result.output
