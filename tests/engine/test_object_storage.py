"""A run directory on object storage (``s3://``), against a real S3-protocol server on loopback:
publish, resume after a SIGKILL, readers that refuse an unfinished run, and --force safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from s3server import S3Server
from testutils import REPO, run_demo, run_digests

from curate.engine.run import run_recipe
from curate.errors import CurateError, RunDirError
from curate.recipe import load_recipe
from curate.run.layout import MANIFEST, RunDir
from curate.run.query import run_query
from curate.util.storage import ObjectPath

# Small shards so the run writes many checkpoint objects (many distinct kill points).
SETTINGS = ["--set", "batch_size=8", "--workers", "1", "-q"]


def curate_run(
    out: str, env: dict[str, str], extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_demo(out, SETTINGS, {**env, **(extra or {})})


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("local") / "run"
    result = curate_run(str(out), {})
    assert result.returncode == 0, result.stderr
    return run_digests(out)


def test_run_on_object_storage_publishes_the_local_runs_bytes(
    s3_env: S3Server, local_reference: dict[str, str], in_repo: Path
) -> None:
    bucket = s3_env.new_bucket()
    out = ObjectPath(f"s3://{bucket}/runs/demo")
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=8"])
    result = run_recipe(recipe, out=out, workers=1)
    assert result.out_dir == out
    assert run_digests(out) == local_reference
    names = {p.relative_to(out) for p in out.files()}
    assert {MANIFEST, "README.md", "report.html", "run.json"} <= names
    assert any(n.startswith("stages/01-") and n.endswith("/_SUCCESS") for n in names)
    # The partial prefix is gone once published, and readers open the run.
    assert not ObjectPath(f"s3://{bucket}/runs/.demo.partial").files()
    manifest, files = RunDir(out).open()
    assert manifest.rows.output_records == result.manifest["rows"]["output_records"] > 0
    assert sorted(str(f) for f in files) == sorted(
        f"{out}/{n}" for n in local_reference if n.startswith("data/")
    )
    # The same recipe again is up to date; --force replaces it with the same bytes.
    assert run_recipe(recipe, out=out, workers=1).up_to_date
    run_recipe(recipe, out=out, workers=1, force=True)
    assert run_digests(out) == local_reference


def test_sigkill_then_resume_on_object_storage(
    s3_env: S3Server, local_reference: dict[str, str]
) -> None:
    bucket = s3_env.new_bucket()
    env = {**s3_env.env, "CURATE_WORK_DIR": str(Path(os.environ["CURATE_WORK_DIR"]))}
    out = f"s3://{bucket}/runs/demo"
    partial = ObjectPath(f"s3://{bucket}/runs/.demo.partial")
    killed = 0
    for point in (3, 17, 40):
        crashed = curate_run(out, env, {"CURATE_FAULT_AFTER_WRITES": str(point)})
        if crashed.returncode != -signal.SIGKILL:
            continue
        killed += 1
        # A reader sees no run (only the partial prefix exists) and says how to finish it.
        assert not ObjectPath(out).files()
        assert partial.files()
        with pytest.raises(RunDirError, match="not finished yet"):
            RunDir(ObjectPath(out)).open()
    assert killed == 3
    resumed = curate_run(out, env)
    assert resumed.returncode == 0, resumed.stderr
    assert run_digests(ObjectPath(out)) == local_reference
    assert not partial.files()


def test_a_publish_cut_off_before_the_manifest_is_not_a_run(
    s3_env: S3Server, in_repo: Path
) -> None:
    bucket = s3_env.new_bucket()
    out = ObjectPath(f"s3://{bucket}/runs/demo")
    run_recipe(load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=8"]), out=out, workers=1)
    # What a publish interrupted between copying the data and writing the manifest leaves.
    (out / MANIFEST).unlink()
    with pytest.raises(RunDirError, match="incomplete run"):
        RunDir(out).open()


def test_force_never_replaces_objects_curate_did_not_write(s3_env: S3Server, in_repo: Path) -> None:
    bucket = s3_env.new_bucket()
    out = ObjectPath(f"s3://{bucket}/datasets/mine")
    (out / "train.jsonl").write_bytes(b'{"a": 1}\n')
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=8"])
    with pytest.raises(RunDirError, match="not a curate run directory"):
        run_recipe(recipe, out=out, workers=1, force=True)
    assert (out / "train.jsonl").read_bytes() == b'{"a": 1}\n'


def test_an_unreachable_bucket_is_a_clear_error(s3_env: S3Server, in_repo: Path) -> None:
    recipe = load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=8"])
    with pytest.raises(RunDirError, match=r"s3://no-such-bucket-here/.*AWS_ENDPOINT_URL"):
        run_recipe(recipe, out="s3://no-such-bucket-here/runs/demo", workers=1)


def test_inputs_on_object_storage_are_read_and_named_by_their_uri(
    s3_env: S3Server, tmp_path: Path, in_repo: Path
) -> None:
    bucket = s3_env.new_bucket()
    for name in ("dolly.jsonl", "alpaca.json", "README.txt"):
        source = REPO / "data_samples" / name
        payload = source.read_bytes() if source.exists() else b"not data\n"
        (ObjectPath(f"s3://{bucket}/inputs/{name}")).write_bytes(payload)
    recipe_text = (
        "name: remote_inputs\n"
        "sources:\n"
        f"  - {{name: dolly, path: s3://{bucket}/inputs/dolly.jsonl}}\n"
        f"  - {{name: alpaca, path: 's3://{bucket}/inputs/*.json'}}\n"
        "stages: [normalize, exact_dedup]\n"
    )
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(recipe_text)
    local_text = recipe_text.replace(f"s3://{bucket}/inputs/", str(REPO / "data_samples") + "/")
    local_text = local_text.replace("*.json", "alpaca.json")  # the one .json object uploaded
    local_path = tmp_path / "local.yaml"
    local_path.write_text(local_text)

    remote = run_recipe(load_recipe(recipe_path), out=tmp_path / "remote", recipe_path=recipe_path)
    local = run_recipe(load_recipe(local_path), out=tmp_path / "local", recipe_path=local_path)
    remote_rows = pq.read_table(tmp_path / "remote" / "data").sort_by("id")
    local_rows = pq.read_table(tmp_path / "local" / "data").sort_by("id")
    assert remote_rows.num_rows == local_rows.num_rows > 0
    assert remote_rows.column("id").equals(local_rows.column("id"))
    # Records and the manifest name the object, not the local copy it was read from.
    assert set(remote_rows.column("source_file").to_pylist()) == {
        f"s3://{bucket}/inputs/dolly.jsonl",
        f"s3://{bucket}/inputs/alpaca.json",
    }
    assert [f["path"] for s in remote.manifest["sources"] for f in s["files"]] == [
        f"s3://{bucket}/inputs/dolly.jsonl",
        f"s3://{bucket}/inputs/alpaca.json",
    ]
    assert local.manifest["rows"]["read"] == remote.manifest["rows"]["read"]
    # The same inputs again: up to date (the local copies keep the objects' times).
    again = run_recipe(load_recipe(recipe_path), out=tmp_path / "remote", recipe_path=recipe_path)
    assert again.up_to_date
    # A changed object is a different input: the run key changes.
    lines = (REPO / "data_samples" / "dolly.jsonl").read_bytes().splitlines(keepends=True)
    ObjectPath(f"s3://{bucket}/inputs/dolly.jsonl").write_bytes(b"".join(lines[:-1]))
    with pytest.raises(RunDirError, match="different recipe or inputs"):
        run_recipe(load_recipe(recipe_path), out=tmp_path / "remote", recipe_path=recipe_path)


def test_curate_query_reads_a_run_on_object_storage_and_stays_contained(
    s3_env: S3Server, in_repo: Path
) -> None:
    bucket = s3_env.new_bucket()
    out = ObjectPath(f"s3://{bucket}/runs/demo")
    result = run_recipe(
        load_recipe(REPO / "data_samples/recipe.yaml", ["batch_size=8"]), out=out, workers=1
    )
    rows = result.manifest["rows"]
    counts = run_query(
        out,
        "SELECT (SELECT count(*) FROM records) AS records, (SELECT count(*) FROM rejects) AS "
        "rejects, (SELECT count(*) FROM stages) AS stages",
    ).to_pylist()[0]
    assert counts == {
        "records": rows["output_records"],
        "rejects": rows["reject_rows"],
        "stages": len(result.manifest["stages"]),
    }
    # Contained: no local file can be read, nothing but one SELECT runs.
    with pytest.raises(CurateError, match="query failed"):
        run_query(out, f"SELECT * FROM read_text('{REPO / 'README.md'}')")
    with pytest.raises(CurateError, match="read-only"):
        run_query(out, "CREATE TABLE t AS SELECT 1")
    # The command line takes the URI as it is.
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "curate.cli",
            "query",
            str(out),
            "SELECT count(*) AS n FROM records",
            "--format",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert str(rows["output_records"]) in cli.stdout
