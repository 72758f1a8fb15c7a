"""ObjectPath against a real S3-protocol server on loopback: the pathlib calls a run directory
makes, and the helpers where object storage differs from a local disk."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pytest
from s3server import S3Server

from curate.errors import RunDirError
from curate.run.layout import RunDir
from curate.run.writer import write_parquet
from curate.util.storage import (
    ObjectPath,
    as_run_path,
    copy_tree,
    is_object_uri,
    parquet_file,
    read_parquet,
    remove_tree,
)


def test_uris_and_local_paths_are_told_apart() -> None:
    assert is_object_uri("s3://bucket/runs/a")
    assert not is_object_uri("runs/s3://a") and not is_object_uri(Path("s3:/bucket/a"))
    assert isinstance(as_run_path("s3://bucket/runs/a"), ObjectPath)
    assert as_run_path("runs/a") == Path("runs/a")
    with pytest.raises(RunDirError, match="not an object-storage location"):
        ObjectPath("s3://")


def test_path_algebra_without_a_server() -> None:
    path = ObjectPath("s3://bucket/runs//demo/")
    assert str(path) == "s3://bucket/runs/demo"
    assert (path / "data" / "part-00000.parquet").name == "part-00000.parquet"
    assert str(path.parent) == "s3://bucket/runs" and path.bucket == "bucket"
    assert str(path.with_name(".demo.partial")) == "s3://bucket/runs/.demo.partial"
    assert (path / "a" / "b.json").relative_to(path) == "a/b.json"
    assert pickle.loads(pickle.dumps(path)) == path


def test_reads_writes_listing_and_removal(s3_env: S3Server) -> None:
    root = ObjectPath(f"s3://{s3_env.new_bucket()}/runs/demo")
    assert not root.exists() and root.files() == []
    (root / "run.json").write_text('{"run_key": "k"}')
    write_parquet(pa.table({"x": [1, 2, 3]}), root / "stages" / "01-a" / "part-00000.parquet")
    (root / "stages" / "01-a" / "part-00000.json").write_bytes(b"{}")
    assert root.is_dir() and (root / "run.json").is_file()
    assert (root / "run.json").read_text() == '{"run_key": "k"}'
    stage = root / "stages" / "01-a"
    assert [p.name for p in stage.glob("part-*.parquet")] == ["part-00000.parquet"]
    assert [p.name for p in root.rglob("*.json")] == ["run.json", "part-00000.json"]
    assert [p.name for p in root.iterdir()] == ["run.json", "stages"]
    assert read_parquet(stage / "part-00000.parquet").num_rows == 3
    assert parquet_file(stage / "part-00000.parquet").metadata.num_rows == 3

    copy = root.with_name("copy")
    copy_tree(root, copy, last="run.json")
    assert [p.relative_to(copy) for p in copy.files()] == [
        p.relative_to(root) for p in root.files()
    ]
    remove_tree(root)
    assert root.files() == [] and copy.files()
    with pytest.raises(RunDirError, match="whole bucket"):
        ObjectPath(f"s3://{copy.bucket}").remove_tree()


def test_a_missing_bucket_is_an_error_naming_the_location(s3_env: S3Server) -> None:
    with pytest.raises(RunDirError, match=r"s3://no-such-bucket-x/run\.json.*AWS_ENDPOINT_URL"):
        ObjectPath("s3://no-such-bucket-x/run.json").write_bytes(b"{}")


def test_a_whole_bucket_is_refused_as_a_run_directory() -> None:
    with pytest.raises(RunDirError, match="whole bucket"):
        RunDir(ObjectPath("s3://bucket")).check_replaceable()


def test_a_reader_given_an_s3_uri_as_a_local_path_says_to_copy_the_run_down() -> None:
    with pytest.raises(RunDirError, match=r"s3://bucket/runs/demo is on object storage"):
        RunDir(Path("s3://bucket/runs/demo")).open()
