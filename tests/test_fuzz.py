"""Fuzz the readers and the recipe loader: every case is a clear error or a reject, never a crash."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.errors import CurateError
from curate.ingest import read_file
from curate.recipe import parse_recipe

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "instruction",
        "input",
        "output",
        "response",
        "context",
        "category",
        "conversations",
        "messages",
        "history",
        "inputs",
        "targets",
        "question",
        "turns",
        "Definition",
        "Instances",
        "extra",
    ]
)
rows = st.dictionaries(field_names, json_values, max_size=6)


def check(path: Path, **kwargs: object) -> None:
    """The contract: a CurateError with a message naming the file, or an accounted-for result."""
    try:
        result = read_file(path, source="fuzz", **kwargs)  # type: ignore[arg-type]
    except CurateError as error:
        assert path.name in str(error) or "format" in str(error), str(error)
        return
    assert result.rows_read == result.records.num_rows + result.rejects.num_rows
    assert result.rejects.column("reason").null_count == 0
    for detail in result.rejects.column("detail").to_pylist():
        assert path.name in detail


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(records=st.lists(rows, max_size=6), as_lines=st.booleans())
def test_random_rows(tmp_path: Path, records: list[dict], as_lines: bool) -> None:
    path = tmp_path / ("rows.jsonl" if as_lines else "rows.json")
    text = "\n".join(json.dumps(r) for r in records) if as_lines else json.dumps(records)
    path.write_text(text)
    check(path)
    check(path, format="alpaca")
    check(path, format="sharegpt")


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".json", ".jsonl", ".tsv"]))
def test_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"bytes{suffix}"
    path.write_bytes(data)
    check(path)


def _corruptions(seed: int) -> list[tuple[str, bytes]]:
    """Seeded structural corruptions of a valid file: truncation, BOMs, CRLF, bad bytes, nesting."""
    rng = random.Random(seed)
    good = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(5)]
    array = json.dumps(good, indent=1).encode()
    lines = b"\n".join(json.dumps(r).encode() for r in good)
    cut = rng.randrange(1, len(array))
    return [
        ("truncated.json", array[:cut]),
        ("truncated.jsonl", lines[: rng.randrange(1, len(lines))]),
        ("bom.json", b"\xef\xbb\xbf" + array),
        ("mixed_endings.jsonl", lines.replace(b"\n", rng.choice([b"\r\n", b"\n", b"\r\n\n"]))),
        ("invalid_utf8.jsonl", lines[: cut % len(lines)] + b"\xff\xfe" + lines[cut % len(lines) :]),
        ("deep.json", b"[" * rng.randrange(50, 5000) + b"]" * rng.randrange(0, 50)),
        (
            "deep_row.jsonl",
            b'{"instruction": "x", "output": "y", "extra": ' + b"[" * 3000 + b"]" * 3000 + b"}\n",
        ),
        (
            "huge_field.jsonl",
            json.dumps(
                {"instruction": "x" * rng.randrange(100_000, 2_000_000), "output": "y"}
            ).encode(),
        ),
        ("empty.json", b""),
        ("whitespace.jsonl", b"\n \n\t\n"),
        ("wrong_top.json", b'"just a string"'),
        ("numbers.jsonl", b"1\n2\n3\n"),
        ("tsv_ragged.tsv", b"q\ta\tr\nq only\n\t\t\t\t\n"),
        ("gzip_truncated.json.gz", gzip.compress(array)[: rng.randrange(5, 40)]),
        (
            "types.json",
            json.dumps(
                [
                    {"instruction": 1, "output": [1, 2]},
                    {"instruction": None, "output": "x"},
                    {"instruction": "ok", "output": {"a": 1}},
                ]
            ).encode(),
        ),
    ]


@pytest.mark.parametrize("seed", range(10))
def test_structural_corruptions(tmp_path: Path, seed: int) -> None:
    for name, data in _corruptions(seed):
        path = tmp_path / name
        path.write_bytes(data)
        check(path)
        check(path, lenient_json=True)


recipe_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=10)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "seed",
                    "sources",
                    "stages",
                    "path",
                    "format",
                    "fields",
                    "output",
                    "exact_dedup",
                    "normalize",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)


@settings(max_examples=120, deadline=None)
@given(data=recipe_values)
def test_recipe_loader_never_crashes(data: object) -> None:
    try:
        parse_recipe(data)
    except CurateError as error:
        assert str(error)


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=200))
def test_recipe_yaml_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    from curate.recipe import load_recipe

    path = tmp_path_factory.mktemp("r") / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_recipe(path)
    except CurateError as error:
        assert "recipe" in str(error)
