"""Hugging Face interop: a run's data loads with `datasets`; `curate export` writes dataset folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from curate import cli
from curate.errors import RunDirError
from curate.run.export import ExportError, chat_messages, export_run, hub_license, push_to_hub

CHAT_COLUMNS = ["id", "source", "messages"]


@pytest.fixture(scope="module")
def manifest(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text())
    return result


@pytest.fixture(scope="module")
def records(run_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(run_dir / "data").to_pylist()
    return rows


@pytest.fixture(autouse=True)
def _no_progress_bars() -> None:
    datasets.disable_progress_bars()


def front_matter(card: str) -> dict[str, Any]:
    assert card.startswith("---\n")
    meta: dict[str, Any] = yaml.safe_load(card.split("---\n", 2)[1])
    return meta


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------- the run's data/ as is
def test_run_data_loads_offline_with_every_column(
    run_dir: Path, manifest: dict[str, Any], records: list[dict[str, Any]], tmp_path: Path
) -> None:
    data_file = run_dir / "data" / "part-00000.parquet"
    meta = pq.ParquetFile(data_file).metadata
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    # what is being round-tripped: dictionary-encoded strings, null lists, a JSON string column
    assert "RLE_DICTIONARY" in meta.row_group(0).column(names.index("source")).encodings
    assert any(r["messages"] is None for r in records) and any(r["messages"] for r in records)
    assert any(r["options"] is None for r in records)
    columns = pq.read_schema(data_file).names

    by_dir = datasets.load_dataset(
        "parquet", data_dir=str(run_dir / "data"), split="train", cache_dir=str(tmp_path / "a")
    )
    from_parquet = datasets.Dataset.from_parquet(
        str(run_dir / "data" / "*.parquet"), cache_dir=str(tmp_path / "b")
    )
    for ds in (by_dir, from_parquet):
        assert isinstance(ds, datasets.Dataset)
        assert ds.column_names == columns
        assert ds.num_rows == manifest["outputs"]["records"] == len(records)
        features = ds.features
        assert features["messages"] == datasets.List(
            {"role": datasets.Value("string"), "content": datasets.Value("string")}
        )
        assert features["options"] == datasets.List(datasets.Value("string"))
        assert features["meta"] == features["source"] == datasets.Value("string")
        assert features["source_row"] == datasets.Value("int64")
        for name in columns:
            assert ds[name] == [r[name] for r in records], name
        assert all(isinstance(json.loads(m), dict) for m in ds["meta"])


# ------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_export_shards_round_trip_through_load_dataset(
    run_dir: Path, records: list[dict[str, Any]], tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "export"
    result = export_run(run_dir, out, format=fmt)
    assert result.files == (f"data/train-00000-of-00001.{fmt}",)
    assert sorted(tree_bytes(out)) == ["README.md", f"data/train-00000-of-00001.{fmt}"]
    assert result.rows == len(records)
    if fmt == "parquet":
        # one row group per ROW_GROUP_ROWS rows, not one per run shard as in the run's file
        # (datasets reads in batches of the first row group's size)
        assert pq.ParquetFile(run_dir / "data" / "part-00000.parquet").num_row_groups > 1
        assert pq.ParquetFile(out / result.files[0]).num_row_groups == 1

    # the folder itself: configs and features come from the card
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds, datasets.Dataset)
    assert ds.column_names == list(records[0])
    assert ds["id"] == [r["id"] for r in records]
    for name in ds.column_names:  # every value, nulls and nested lists included
        assert ds[name] == [r[name] for r in records], name


def test_export_hf_loads_from_disk(
    run_dir: Path, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = export_run(run_dir, out, format="hf")
    assert result.files == ("data-00000-of-00001.arrow",)
    assert {"README.md", "dataset_info.json", "state.json", *result.files} == set(tree_bytes(out))
    ds = datasets.load_from_disk(str(out))  # the card beside it does not get in the way
    assert isinstance(ds, datasets.Dataset)
    assert ds.num_rows == len(records) and ds.split == "train"
    assert ds.column_names == list(records[0])
    for name in ("id", "instruction", "output", "messages", "options", "meta", "lang_score"):
        assert ds[name] == [r[name] for r in records], name
    # the card's config points at the Arrow files (what the Hub reads after a push)
    assert front_matter((out / "README.md").read_text())["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data-*.arrow"}]}
    ]
    arrow = datasets.load_dataset(
        "arrow",
        data_files=str(out / "data-*.arrow"),
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert arrow["id"] == ds["id"]


def _expected_turns(record: dict[str, Any]) -> list[dict[str, str]]:
    if record["messages"]:
        return record["messages"]
    user = record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "hf"])
def test_chat_export_has_user_and_assistant_turns(
    run_dir: Path, records: list[dict[str, Any]], tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "chat"
    export_run(run_dir, out, format=fmt, chat=True)
    if fmt == "hf":
        ds = datasets.load_from_disk(str(out))
    else:
        ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds, datasets.Dataset)
    assert ds.column_names == CHAT_COLUMNS and ds.num_rows == len(records)
    # both paths are exercised: records with messages, and single-turn records without them
    assert {r["messages"] is None for r in records} == {True, False}
    for row, record in zip(ds, records, strict=True):
        assert (row["id"], row["source"]) == (record["id"], record["source"])
        assert row["messages"] == _expected_turns(record)
        assert [m["role"] for m in row["messages"]][-1] == "assistant"
    meta = front_matter((out / "README.md").read_text())
    assert [f["name"] for f in meta["dataset_info"]["features"]] == CHAT_COLUMNS


def test_chat_messages_from_single_turn_fields() -> None:
    assert chat_messages(
        {"instruction": "Add.", "input": "2 + 2", "output": "4", "rationale": "2 plus 2 is 4."}
    ) == [
        {"role": "user", "content": "Add.\n\n2 + 2"},
        {"role": "assistant", "content": "2 plus 2 is 4.\n\n4"},
    ]
    # a rationale a template already put in the output is not repeated
    assert chat_messages(
        {"instruction": "Q", "output": "Reasoning: because.\nAnswer: 4", "rationale": "because."}
    )[1] == {"role": "assistant", "content": "Reasoning: because.\nAnswer: 4"}
    # answer choices no template rendered are listed; rendered ones are not repeated
    assert chat_messages({"instruction": "Pick.", "output": "a", "options": ["a", "b"]})[0] == {
        "role": "user",
        "content": "Pick.\n\nOPTIONS:\n- a\n- b",
    }
    assert chat_messages(
        {"instruction": "Pick a or b.", "output": "a", "options": ["a", "b"], "template_id": "t"}
    )[0] == {"role": "user", "content": "Pick a or b."}
    turns = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert chat_messages({"messages": turns, "instruction": "ignored"}) == turns


# ---------------------------------------------------------------------------------------- card
def test_card_metadata_compiles_source_licenses(
    run_dir: Path, manifest: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = export_run(run_dir, out)
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}
    ]
    licensed = {s["name"]: s["license"] for s in manifest["sources"]}
    assert licensed["alpaca"] == "CC-BY-NC-4.0" and licensed["dolly"] == "CC-BY-SA-3.0"
    assert meta["license"] == result.license == ["cc-by-nc-4.0", "cc-by-sa-3.0", "unknown"]
    assert meta["language"] == ["en"]
    assert meta["tags"] == ["curate", "instruction-tuning"]
    assert meta["size_categories"] == ["n<1K"] and meta["task_categories"] == ["text-generation"]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == pq.read_schema(
        run_dir / "data" / "part-00000.parquet"
    ).names
    # per-source table, and which sources lack a license
    for source in manifest["sources"]:
        row = next(line for line in card.splitlines() if line.startswith(f"| `{source['name']}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:4] == [str(source["rows_read"]), str(source["rows_kept"])]
        expected = "unknown (not given)" if source["license"] is None else source["license"].lower()
        assert cells[1] == expected
    missing = next(line for line in card.splitlines() if line.startswith("No license was given"))
    assert "`gpteacher`" in missing and "`alpaca`" not in missing
    assert "seed | 0" in card and f"curate | {manifest['curate_version']}" in card
    assert "read_parquet('data/*.parquet')" in card and "load_dataset(" in card


def _table_rows(card: str, heading: str) -> list[list[str]]:
    section = card.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows]


def test_card_funnel_and_mix_match_the_manifest(
    run_dir: Path, manifest: dict[str, Any], tmp_path: Path
) -> None:
    export_run(run_dir, tmp_path / "export")
    card = (tmp_path / "export" / "README.md").read_text()
    funnel = _table_rows(card, "How it was filtered")
    ingest, stages = funnel[0], funnel[1:]
    first_in = manifest["stages"][0]["rows_in"]
    assert ingest[1:5] == [
        "`ingest`",
        str(manifest["rows"]["read"]),
        str(first_in),
        str(manifest["rows"]["read"] - first_in),
    ]
    assert "parse_error 2" in ingest[5]
    assert len(stages) == len(manifest["stages"])
    for row, stage in zip(stages, manifest["stages"], strict=True):
        assert row[:5] == [
            str(stage["index"]),
            f"`{stage['name']}`",
            str(stage["rows_in"]),
            str(stage["rows_out"]),
            str(sum(stage["dropped"].values())),
        ]
        for reason, count in stage["dropped"].items():
            assert f"{reason} {count}" in row[5]
    mix = next(s for s in manifest["stages"] if s["key"] == "mix")["info"]
    table = {row[0].strip("`"): row for row in _table_rows(card, "Mix")}
    assert set(table) == {u["unit"] for u in mix["units"]}
    for unit in mix["units"]:
        assert table[unit["unit"]][1:4] == [
            str(unit["available"]),
            str(unit["allocated"]),
            str(unit["realized"]),
        ]
    assert f"{mix['realized']} rows realized" in card


@pytest.mark.parametrize(
    ("raw", "hub_id"),
    [
        ("CC-BY-NC-4.0", "cc-by-nc-4.0"),
        ("CC BY-SA 3.0", "cc-by-sa-3.0"),
        ("cc-by-4", "cc-by-4.0"),
        ("Apache 2.0", "apache-2.0"),
        ("Apache-2.0", "apache-2.0"),
        ("Apache License 2.0", "apache-2.0"),
        ("MIT License", "mit"),
        ("GPL-3.0-or-later", "gpl-3.0"),
        ("CC0", "cc0-1.0"),
        ("ODC-BY", "odc-by"),
        ("Llama 2 Community", "other"),
        (None, "unknown"),
        ("  ", "unknown"),
    ],
)
def test_hub_license_ids(raw: str | None, hub_id: str) -> None:
    assert hub_license(raw) == hub_id


# ------------------------------------------------------------------------ determinism, safety
@pytest.mark.parametrize(("fmt", "chat"), [("parquet", True), ("jsonl", False), ("hf", False)])
def test_reexport_is_byte_identical(run_dir: Path, tmp_path: Path, fmt: str, chat: bool) -> None:
    export_run(run_dir, tmp_path / "a", format=fmt, chat=chat)
    export_run(run_dir, tmp_path / "b" / "nested", format=fmt, chat=chat)
    first, second = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b" / "nested")
    assert first == second and "README.md" in first


def test_refuses_to_overwrite_without_force(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    out.mkdir()  # an empty directory is fine
    export_run(run_dir, out, format="jsonl")
    (out / "stale.txt").write_text("from an earlier export")
    with pytest.raises(RunDirError, match="pass --force"):
        export_run(run_dir, out)
    assert (out / "data" / "train-00000-of-00001.jsonl").is_file()  # untouched
    export_run(run_dir, out, format="parquet", overwrite=True)
    assert sorted(tree_bytes(out)) == ["README.md", "data/train-00000-of-00001.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no .partial/.old left
    with pytest.raises(ExportError, match="outside the run"):
        export_run(run_dir, run_dir / "export")


def test_not_a_run_incomplete_run_and_bad_format(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a curate run directory"):
        export_run(tmp_path, tmp_path / "out")
    with pytest.raises(ExportError, match="does not exist"):
        export_run(tmp_path / "missing", tmp_path / "out")
    interrupted = tmp_path / "runs" / "x"
    (tmp_path / "runs" / ".x.partial" / "stages").mkdir(parents=True)
    with pytest.raises(ExportError, match="interrupted run"):
        export_run(interrupted, tmp_path / "out")
    interrupted.mkdir()
    (interrupted / "stages").mkdir()
    with pytest.raises(ExportError, match="incomplete run"):
        export_run(interrupted, tmp_path / "out")
    with pytest.raises(ExportError, match="parquet, jsonl, hf"):
        export_run(run_dir, tmp_path / "out", format="csv")
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------------- CLI, push
def test_cli_export(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "export"
    result = runner.invoke(
        cli.app, ["export", str(run_dir), "--to", str(out), "--format", "jsonl", "--chat"]
    )
    assert result.exit_code == 0, result.output
    assert "60 rows as jsonl (chat)" in result.output
    first = json.loads((out / "data" / "train-00000-of-00001.jsonl").read_text().splitlines()[0])
    assert list(first) == CHAT_COLUMNS
    again = runner.invoke(cli.app, ["export", str(run_dir), "--to", str(out)])
    assert again.exit_code != 0 and isinstance(again.exception, RunDirError)
    forced = runner.invoke(cli.app, ["export", str(run_dir), "--to", str(out), "--force"])
    assert forced.exit_code == 0 and (out / "data" / "train-00000-of-00001.parquet").is_file()


def test_cli_error_on_a_non_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", str(tmp_path), "--to", str(tmp_path / "out")]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 1 and isinstance(result.exception, ExportError)
    # through the real entry point: one line, no traceback
    monkeypatch.setattr(sys, "argv", ["curate", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "not a curate run directory" in err and "Traceback" not in err


class FakeHfApi:
    calls: ClassVar[list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = []
    fail: ClassVar[bool] = False

    def __init__(self, token: str | None = None) -> None:
        self.calls.append(("init", (), {"token": token}))

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("create_repo", (repo_id,), kwargs))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kwargs: Any) -> None:
        self.calls.append(("upload_folder", (), kwargs))
        if self.fail:
            raise OSError("network is unreachable")


def test_push_creates_the_dataset_repo_and_uploads(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(FakeHfApi, "calls", [])
    out = tmp_path / "export"
    result = CliRunner().invoke(
        cli.app, ["export", str(run_dir), "--to", str(out), "--push", "me/demo"]
    )
    assert result.exit_code == 0, result.output
    assert "pushed to https://huggingface.co/datasets/me/demo" in result.output
    (_, _, _), (name, args, create), (upload, _, kwargs) = FakeHfApi.calls
    assert (name, args) == ("create_repo", ("me/demo",))
    assert create["repo_type"] == "dataset" and create["exist_ok"] is True
    assert upload == "upload_folder"
    assert kwargs["repo_id"] == "me/demo" and kwargs["repo_type"] == "dataset"
    assert Path(kwargs["folder_path"]) == out and (out / "README.md").is_file()

    monkeypatch.setattr(FakeHfApi, "fail", True)
    with pytest.raises(ExportError, match=r"network is unreachable.*HF_TOKEN"):
        push_to_hub(out, "me/demo")


@pytest.fixture
def two_file_run(run_dir: Path, tmp_path: Path) -> Path:
    """The demo run with its records split over two data files (as a run past ROWS_PER_FILE is)."""
    import shutil

    copy = tmp_path / "runs" / "two"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("stages"))
    table = pq.read_table(copy / "data" / "part-00000.parquet")
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), copy / "data" / "part-00000.parquet")
    pq.write_table(table.slice(half), copy / "data" / "part-00001.parquet")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["outputs"]["data_files"] = ["data/part-00000.parquet", "data/part-00001.parquet"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(("fmt", "chat"), [("parquet", False), ("jsonl", True), ("hf", False)])
def test_one_shard_per_run_data_file(
    two_file_run: Path, records: list[dict[str, Any]], tmp_path: Path, fmt: str, chat: bool
) -> None:
    out = tmp_path / "export"
    result = export_run(two_file_run, out, format=fmt, chat=chat)
    if fmt == "hf":
        assert len(result.files) == 1  # save_to_disk shards by size, not by input file
        ds = datasets.load_from_disk(str(out))
    else:
        assert result.files == (
            f"data/train-00000-of-00002.{fmt}",
            f"data/train-00001-of-00002.{fmt}",
        )
        ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds, datasets.Dataset)
    assert ds["id"] == [r["id"] for r in records]
    assert front_matter((out / "README.md").read_text())["license"] == [
        "cc-by-nc-4.0",
        "cc-by-sa-3.0",
        "unknown",
    ]


def test_a_run_without_records_is_refused(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    empty = tmp_path / "runs" / "empty"
    shutil.copytree(run_dir, empty, ignore=shutil.ignore_patterns("stages"))
    data_file = empty / "data" / "part-00000.parquet"
    pq.write_table(pq.read_table(data_file).slice(0, 0), data_file)
    # datasets cannot load a split without rows, so an empty export would be a trap
    with pytest.raises(datasets.exceptions.DatasetGenerationError):
        datasets.Dataset.from_parquet(str(data_file), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ExportError, match="has no records"):
        export_run(empty, tmp_path / "export")
    assert not (tmp_path / "export").exists()
