"""``curate inspect`` and ``curate diff`` on small runs made by the real pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from curate.cli import app, main
from curate.engine.run import run_recipe
from curate.errors import CurateError
from curate.recipe import load_recipe
from curate.run.diff import Status, diff_runs
from curate.run.inspect import UnknownFilterValueError, sample_run
from curate.run.query import run_query

BENCHMARK_QUESTION = (
    "A bakery sells muffins in boxes of 6. On Monday it baked 150 muffins and sold 19 full "
    "boxes. How many muffins were left unsold at the end of the day?"
)
ALPACA: list[dict[str, str] | str] = [
    {"instruction": "Give three tips for staying healthy.", "output": "Eat well, sleep, exercise."},
    # 1: an exact duplicate of 0 once case and punctuation are folded
    {"instruction": "give three tips for staying healthy!", "output": "Drink more water."},
    {"instruction": "Name the capital of France.", "output": "Paris"},  # 2: 5-char output
    # 3: a duplicate of 2 when dedup looks at the instruction only
    {
        "instruction": "Name the capital of France.",
        "input": "Answer with the city only.",
        "output": "The capital is Paris.",
    },
    {"instruction": "Is the sky blue on a clear day?", "output": "Yes"},  # 4: 3-char output
    {"instruction": "How many legs do two cats have?", "output": "8 legs.."},  # 5: exactly 8 chars
    {"instruction": "Describe the water cycle briefly.", "output": ""},  # 6: empty output
    '{"instruction": "broken',  # 7: not JSON
    {"instruction": BENCHMARK_QUESTION, "output": "36 muffins were left."},  # 8: benchmark
    *(
        {
            "instruction": f"Explain idea number {i} about {topic} in plain words.",
            "output": f"Idea {i} about {topic} is explained here in a few plain sentences.",
        }
        for i, topic in enumerate(["rivers", "stars", "bread", "trains"] * 4, start=9)
    ),
]
SHORT_OUTPUT_ROWS = {2, 4}  # outputs under 8 characters that the base recipe keeps
CHATS = [
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the boiling point of water at sea level?"},
            {"role": "assistant", "content": "100 degrees Celsius at sea level."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Suggest a name for a grey cat."},
            {"role": "assistant", "content": "Smokey would suit a grey cat."},
            {"role": "user", "content": "And for a black one?"},
            {"role": "assistant", "content": "Shadow is a classic name for a black cat."},
        ]
    },
]
STAGES: list[dict[str, Any]] = [
    {"normalize": {}},
    {"exact_dedup": {"fields": ["instruction", "input"]}},
    {"quality": {}},
    {"decontaminate": {"benchmarks": ["BENCH"]}},
    {"expand": {"per_record": 2}},
]
Key = tuple[str, str, int]


def write_inputs(directory: Path, alpaca: list[dict[str, str] | str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row) for row in alpaca]
    (directory / "alpaca.jsonl").write_text("\n".join(lines) + "\n")
    (directory / "chat.jsonl").write_text("\n".join(json.dumps(c) for c in CHATS) + "\n")
    (directory / "bench.jsonl").write_text(
        json.dumps({"question": BENCHMARK_QUESTION, "answer": "36"}) + "\n"
    )


def make_run(root: Path, name: str, inputs: Path, overrides: list[str] | None = None) -> Path:
    stages = json.loads(json.dumps(STAGES).replace("BENCH", (inputs / "bench.jsonl").as_posix()))
    recipe = {
        "name": name,
        "seed": 0,
        "sources": [
            {"name": "alpaca", "path": (inputs / "alpaca.jsonl").as_posix(), "format": "alpaca"},
            {"name": "chat", "path": (inputs / "chat.jsonl").as_posix(), "format": "messages"},
        ],
        "stages": stages,
        "output": (root / name).as_posix(),
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return run_recipe(load_recipe(path, overrides or []), workers=1).out_dir


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inspect_diff")
    write_inputs(root / "in", ALPACA)
    return root


@pytest.fixture(scope="module")
def base(root: Path) -> Path:
    return make_run(root, "base", root / "in")


@pytest.fixture(scope="module")
def alpaca_file(base: Path) -> str:
    files = run_query(base, "SELECT DISTINCT source_file FROM records WHERE source = 'alpaca'")
    (name,) = files.column(0).to_pylist()
    return str(name)


def count(run: Path, where: str, table: str = "rejects") -> int:
    return int(run_query(run, f"SELECT count(*) FROM {table} WHERE {where}").column(0)[0].as_py())


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--width", "200"])


# ---------------------------------------------------------------------------------------- inspect


def test_inspect_filters_match_a_duckdb_count(base: Path) -> None:
    reasons = run_query(base, "SELECT DISTINCT reason FROM rejects").column(0).to_pylist()
    assert {"exact_duplicate", "empty_output", "parse_error", "benchmark_exact"} <= set(reasons)
    for reason in reasons:
        sample = sample_run(base, reasons=[reason], n=100)
        assert sample.table == "rejects"
        assert sample.matched == count(base, f"reason = '{reason}'") == len(sample.rows)
        assert {r["reason"] for r in sample.rows} == {reason}

    chats = sample_run(base, sources=["chat"], n=100)
    assert chats.table == "records" and {r["source"] for r in chats.rows} == {"chat"}
    assert chats.matched == count(base, "source = 'chat'", "records") == len(chats.rows) > 0

    # A recipe key selects its stage; combined filters intersect.
    quality = sample_run(base, stages=["quality"], sources=["alpaca"], n=100)
    assert quality.filters == {"source": ["alpaca"], "stage": ["quality_v4"]}
    assert {r["stage"] for r in quality.rows} == {"quality_v4"}
    assert quality.matched == count(base, "stage = 'quality_v4' AND source = 'alpaca'") > 0
    two = sample_run(base, reasons=["parse_error", "empty_output"], n=1)
    assert two.matched == count(base, "reason IN ('parse_error', 'empty_output')") == 2
    assert len(two.rows) == 1


def test_inspect_sample_is_deterministic_for_a_seed(base: Path) -> None:
    every = [r["id"] for r in sample_run(base, n=1000, seed=7).rows]
    assert len(every) == count(base, "true", "records") == len(set(every))
    first = [r["id"] for r in sample_run(base, n=4, seed=7).rows]
    assert first == [r["id"] for r in sample_run(base, n=4, seed=7).rows] == every[:4]
    other = [r["id"] for r in sample_run(base, n=4, seed=8).rows]
    assert other != first and set(other) <= set(every)


def test_inspect_shows_the_duplicates_keeper(base: Path) -> None:
    sample = sample_run(base, reasons=["exact_duplicate"])
    (row,) = sample.rows
    assert row["instruction"] == "give three tips for staying healthy!"
    keeper = sample.keepers[row["duplicate_of"]]
    # The keeper was expanded by templates: it is found through parent_id.
    assert keeper.found_in == "records" and keeper.expanded and keeper.row is not None
    assert keeper.row["parent_id"] == row["duplicate_of"]
    assert "Give three tips for staying healthy." in keeper.row["instruction"]

    result = invoke("inspect", str(base), "--reason", "exact_duplicate")
    assert result.exit_code == 0, result.output
    assert "1 rejects with reason=exact_duplicate matched" in result.output
    assert "give three tips for staying healthy!" in result.output
    assert "Give three tips for staying healthy." in result.output
    assert f"{row['duplicate_of']} (records; expanded" in result.output

    bench = invoke("inspect", str(base), "--reason", "benchmark_exact")
    assert bench.exit_code == 0, bench.output
    assert "a benchmark item, not part of this run" in bench.output


def test_inspect_cli_renders_chats_and_truncates(base: Path) -> None:
    result = invoke("inspect", str(base), "--source", "chat", "--n", "10")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 records with source=chat matched")
    assert "system: Be brief." in result.output and "user: And for a black one?" in result.output
    clipped = invoke("inspect", str(base), "--source", "chat", "--max-chars", "20")
    assert "Shadow is a classic name" not in clipped.output
    assert "chars]" in clipped.output


def test_inspect_unknown_values_exit_1_listing_valid_ones(
    base: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = invoke("inspect", str(base), "--reason", "no_such_reason")
    assert result.exit_code == 1
    assert isinstance(result.exception, UnknownFilterValueError)
    assert "exact_duplicate (1)" in str(result.exception)

    for option, value, listed in [
        ("--reason", "no_such_reason", "empty_output (1)"),
        ("--source", "no_such_source", "chat ("),
        ("--stage", "no_such_stage", "quality_v4 ("),
    ]:
        monkeypatch.setattr(sys, "argv", ["curate", "inspect", str(base), option, value])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 1
        captured = capsys.readouterr()
        assert f"unknown {option[2:]} '{value}'" in captured.err and listed in captured.err
        assert "Traceback" not in captured.err + captured.out


# ------------------------------------------------------------------------------------------- diff


def statuses(run: Path) -> dict[Key, tuple[str, str | None, str | None]]:
    """Per input row, independently of curate.run.diff: kept, or its single (stage, reason)."""

    def read(sub: str) -> list[dict[str, Any]]:
        files = sorted((run / sub).glob("*.parquet"))
        return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()

    def key(row: dict[str, Any]) -> Key:
        return (row["source"], row["source_file"], row["source_row"])

    kept = {key(r) for r in read("data")}
    dropped: dict[Key, set[tuple[str, str]]] = {}
    for r in read("rejects"):
        dropped.setdefault(key(r), set()).add((r["stage"], r["reason"]))
    result: dict[Key, tuple[str, str | None, str | None]] = {k: ("kept", None, None) for k in kept}
    for k, reasons in dropped.items():
        if k not in kept:
            assert len(reasons) == 1, (k, reasons)  # no mix stage: one drop per input row
            ((stage, reason),) = reasons
            result[k] = ("rejected", stage, reason)
    return result


def read_out(path: Path) -> list[dict[str, Any]]:
    con = duckdb.connect()
    reader = {".parquet": "read_parquet", ".csv": "read_csv", ".jsonl": "read_json"}[path.suffix]
    cursor = con.execute(f"SELECT * FROM {reader}('{path.as_posix()}') ORDER BY ALL")
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_diff_of_a_changed_threshold_reports_exactly_the_changed_rows(
    root: Path, base: Path, alpaca_file: str
) -> None:
    strict = make_run(root, "strict", root / "in", ["stages.2.quality.min_length.output_chars=8"])
    out = root / "strict-diff.parquet"
    diff = diff_runs(base, strict, out=out)

    old, new = statuses(base), statuses(strict)
    expected = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    assert expected == {("alpaca", alpaca_file, row) for row in SHORT_OUTPUT_ROWS}
    assert [(t.before, t.after, t.count) for t in diff.transitions] == [
        (Status("kept"), Status("rejected", "quality_v4", "output_too_short"), 2)
    ]
    (transition,) = diff.transitions
    assert {(e.source, e.source_file, e.source_row) for e in transition.examples} == expected
    assert {e.instruction for e in transition.examples} == {
        "Name the capital of France.",
        "Is the sky blue on a clear day?",
    }
    assert diff.warnings == [] and diff.content_changed == 0
    assert diff.unchanged == diff.a.input_rows - 2 and diff.out_rows == diff.a.input_rows

    # Totals agree with the manifest's own accounting; expansion made 2 records per kept row.
    manifest = json.loads((base / "manifest.json").read_text())
    assert (diff.a.input_rows, diff.a.kept) == (manifest["rows"]["read"], manifest["rows"]["kept"])
    assert diff.a.records == manifest["outputs"]["records"]
    assert diff.b.kept == diff.a.kept - 2
    assert diff.b.by_reason["quality_v4/output_too_short"] == 2

    rows = read_out(out)
    assert {(r["source"], r["source_file"], r["source_row"]) for r in rows if r["changed"]} == (
        expected
    )
    by_key = {(r["source"], r["source_file"], r["source_row"]): r for r in rows}
    for k, (status, stage, reason) in new.items():
        assert (by_key[k]["status_b"], by_key[k]["stage_b"], by_key[k]["reason_b"]) == (
            status,
            stage,
            reason,
        )
    assert {
        r["records_a"] for r in rows if r["status_a"] == "kept" and r["source"] == "alpaca"
    } == {2}


def test_diff_cli_dedup_fields_and_out_formats_round_trip(
    root: Path, base: Path, alpaca_file: str
) -> None:
    by_instruction = make_run(
        root, "by_instruction", root / "in", ["stages.1.exact_dedup.fields=[instruction]"]
    )
    outputs = {}
    for suffix in (".parquet", ".csv", ".jsonl"):
        out = root / f"dedup-diff{suffix}"
        result = invoke("diff", str(base), str(by_instruction), "--out", str(out))
        assert result.exit_code == 0, result.output
        assert f"wrote {len(ALPACA) + len(CHATS)} rows to {out}" in result.output
        outputs[suffix] = read_out(out)
    assert "kept" in result.output and "rejected exact_dedup_v1/exact_duplicate" in result.output
    assert "Name the capital of France." in result.output  # the example's instruction

    def normal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # CSV and JSON lose types (empty string vs null, numbers as text): compare as text.
        return [{k: "" if v is None else str(v).lower() for k, v in r.items()} for r in rows]

    assert normal(outputs[".csv"]) == normal(outputs[".parquet"]) == normal(outputs[".jsonl"])
    changed = [r for r in outputs[".parquet"] if r["changed"]]
    assert [(r["source_file"], r["source_row"], r["status_a"], r["reason_b"]) for r in changed] == [
        (alpaca_file, 3, "kept", "exact_duplicate")
    ]
    assert changed[0]["id_a"] == changed[0]["id_b"] and changed[0]["records_b"] == 0


def test_diff_of_identical_runs_has_no_transitions(root: Path, base: Path) -> None:
    again = make_run(root, "again", root / "in")
    diff = diff_runs(base, again)
    assert diff.transitions == [] and diff.changed == 0 and diff.warnings == []
    assert diff.unchanged == diff.a.input_rows == diff.b.input_rows == len(ALPACA) + len(CHATS)
    assert not diff.only_a_by_source and not diff.only_b_by_source
    result = invoke("diff", str(base), str(again))
    assert result.exit_code == 0 and "no input row changed status" in result.output


def test_diff_of_different_inputs_warns_and_counts_rows_only_in_one_run(root: Path) -> None:
    inputs = root / "in_changing"
    write_inputs(inputs, ALPACA)
    before = make_run(root, "before", inputs)
    extra = [
        {"instruction": f"Spell the number {i} in words.", "output": f"It is number {i}."}
        for i in range(3)
    ]
    write_inputs(inputs, [*ALPACA, *extra])  # the same file, three rows appended
    after = make_run(root, "after", inputs)
    diff = diff_runs(before, after)
    assert diff.only_b_by_source == {"alpaca": 3} and diff.only_a_by_source == {}
    assert [(t.before, t.after, t.count) for t in diff.transitions] == [
        (Status("absent"), Status("kept"), 3)
    ]
    (warning,) = diff.warnings
    assert "alpaca.jsonl differs (sha256" in warning

    result = invoke("diff", str(before), str(after))
    assert "3 input rows only in run B (different sources or inputs): alpaca (3)" in result.output
    assert "warning: source alpaca" in result.output
    assert "Spell the number 0 in words." in result.output


def test_diff_input_warnings_name_changed_files() -> None:
    from curate.run.diff import input_warnings
    from curate.run.manifest import InputFile, Manifest, SourceSummary

    def manifest(sha: str, seed: int = 0) -> Manifest:
        # Only the fields input_warnings reads.
        source = SourceSummary.model_construct(
            name="s", files=[InputFile.model_construct(path="a.jsonl", sha256=sha)]
        )
        return Manifest.model_construct(seed=seed, sources=[source])

    assert input_warnings(manifest("1" * 64), manifest("1" * 64)) == []
    (changed,) = input_warnings(manifest("1" * 64), manifest("2" * 64))
    assert "a.jsonl differs" in changed
    assert any("seeds differ" in w for w in input_warnings(manifest("1"), manifest("1", seed=1)))


def test_diff_rejects_an_unknown_out_format(base: Path, tmp_path: Path) -> None:
    with pytest.raises(CurateError, match=r"\.parquet, \.csv, \.jsonl"):
        diff_runs(base, base, out=tmp_path / "diff.xlsx")
