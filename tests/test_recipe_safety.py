"""Recipes are safe to load: alias bombs, duplicate keys and out-of-range numbers fail fast with a
short message, before any work. Each case runs the real CLI in a subprocess under a memory limit
and a timeout, so a regression shows as a failure, not a stuck or swapping test run."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
from testutils import REPO, SAMPLES

from curate.errors import RecipeError
from curate.recipe import expanded_size, load_recipe

MEMORY_LIMIT = 1 << 30  # the subprocess gets 3 GiB of address space
TIMEOUT = 60


def _bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: each anchor repeats the previous one ``width`` times."""
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        items = ", ".join(f"*a{level - 1}" for _ in range(width))
        lines.append(f"a{level}: &a{level} [{items}]")
    return "\n".join(lines)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 * MEMORY_LIMIT, 3 * MEMORY_LIMIT))


def _validate(recipe: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "curate.cli", "validate", str(recipe), *extra],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=_limit_memory,
        cwd=REPO,
    )


BASE = f"name: safe\nsources: [{{name: d, path: {SAMPLES / 'dolly.jsonl'}}}]\n"


@pytest.mark.parametrize(
    "text",
    [
        BASE + "unknown_key: *a9\n",  # in an unknown key
        BASE.replace("name: safe", "name: *a9"),  # in name:
        BASE + "stages: [{normalize: {nfc: *a9}}]\n",  # in a stage parameter
        BASE + "stages: *a9\n",  # as the stage list
    ],
)
def test_alias_bombs_are_refused_quickly(tmp_path: Path, text: str) -> None:
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(_bomb() + "\n" + text)
    result = _validate(recipe)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "expands to more than 100,000 values" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr) < 2000


def test_an_alias_bomb_through_set_is_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE)
    inline = (
        "{"
        + ", ".join(
            f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" if i else 'a0: &a0 "x"'
            for i in range(10)
        )
        + "}"
    )
    result = _validate(recipe, "--set", f"name={inline}")
    assert result.returncode == 2 and "expands to more than" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr) < 2000


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        BASE
        + "stages:\n  - exact_dedup: {fields: &f [instruction, input]}\n"
        + "  - minhash_dedup: {fields: *f}\n"
    )
    loaded = load_recipe(recipe)
    assert loaded.stages[1].params["fields"] == ["instruction", "input"]
    # the mapping, its 2 keys, the list and its 2 items, "x"
    assert expanded_size({"a": [1, 2], "b": "x"}) == 7


def test_duplicate_keys_are_an_error_with_the_line(tmp_path: Path) -> None:
    recipe = tmp_path / "dup.yaml"
    recipe.write_text(BASE + "seed: 1\nseed: 2\n")
    with pytest.raises(RecipeError, match=r"dup.yaml:4:\d+: invalid YAML \(duplicate key 'seed'\)"):
        load_recipe(recipe)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("batch_size=1000000000000000000000000000000", "batch_size: Input should be less than"),
        ("workers=100000", "workers: Input should be less than"),
        ("stages.0.mix.target=100000000000000000000000", "integers must lie within"),
    ],
)
def test_numbers_out_of_range_fail_at_load(tmp_path: Path, override: str, message: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE + "stages: [{mix: {target: 10}}]\n")
    with pytest.raises(RecipeError, match=message):
        load_recipe(recipe, [override])


def test_a_huge_bad_value_gives_a_short_message(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE + "seed: '" + "9" * 100_000 + "'\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe)
    assert len(str(caught.value)) < 1000


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("{minhash_dedup: {source_priority: [d, dolly]}}", r"source_priority names 'dolly'"),
        (
            "{mix: {weights: {'dollyy/open_qa': 0.5}}}",
            r"weights.dollyy/open_qa: 'dollyy' is not a source",
        ),
        ("{mix: {weights: {g: {members: {'x/y': 0.5}}}}}", r"weights.g.x/y: 'x' is not a source"),
        ("{language: {keep: [en, english]}}", r"keep: 'english' is not a language code"),
    ],
)
def test_cross_references_are_checked_at_load(tmp_path: Path, stage: str, message: str) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE + f"stages: [{stage}]\n")
    with pytest.raises(RecipeError, match=message):
        load_recipe(recipe)
    result = _validate(recipe)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_valid_cross_references_load(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        BASE
        + "stages: [{minhash_dedup: {source_priority: [d]}}, {language: {keep: [en, zh-cn, ja]}},"
        + " {mix: {weights: {'d/open_qa': 0.5, open_qa: null}}}]\n"
    )
    assert [s.key for s in load_recipe(recipe).stages] == ["minhash_dedup", "language", "mix"]
