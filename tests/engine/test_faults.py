"""Fault tests: SIGKILL at many points then resume; disk errors; a run never looks complete early."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from testutils import REPO, demo_command, run_demo, run_digests

from curate.engine.run import run_recipe
from curate.errors import RunDirError
from curate.recipe import load_recipe

# Small shards so every stage writes many checkpoint files (many distinct kill points).
SETTINGS = ["--set", "batch_size=4", "--workers", "1", "-q"]


def curate_run(
    out: Path, settings: list[str] = SETTINGS, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_demo(out, settings, env)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], int]:
    out = tmp_path_factory.mktemp("ref") / "run"
    result = curate_run(out)
    assert result.returncode == 0, result.stderr
    # Count the checkpoint writes of a full run: every one of them is a possible kill point.
    writes = sum(
        1
        for p in out.rglob("*")
        if (p.is_file() and p.suffix in (".parquet", ".json")) or p.name == "_SUCCESS"
    )
    return run_digests(out), writes


def test_sigkill_at_24_points_then_resume_gives_identical_output(
    reference: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    expected, writes = reference
    assert writes > 40
    rng = random.Random(7)
    points = sorted(rng.sample(range(1, writes - 5), 24))
    killed = 0
    for point in points:
        out = tmp_path / f"run-{point}"
        crashed = curate_run(out, env={"CURATE_FAULT_AFTER_WRITES": str(point)})
        if crashed.returncode == -signal.SIGKILL:
            killed += 1
            # Never looks complete while it is not: only the hidden .partial directory exists.
            assert not out.exists(), point
            assert (tmp_path / f".run-{point}.partial").is_dir()
        resumed = curate_run(out)
        assert resumed.returncode == 0, (point, resumed.stderr)
        assert run_digests(out) == expected, point
        assert not (tmp_path / f".run-{point}.partial").exists()
    assert killed >= 20


def test_random_time_kills_then_resume(
    reference: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    expected, _ = reference
    rng = random.Random(11)
    out = tmp_path / "run"
    for _ in range(3):
        proc = subprocess.Popen(
            demo_command(out, SETTINGS),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert not out.exists() or (out / "manifest.json").is_file()
    final = curate_run(out)
    assert final.returncode == 0, final.stderr
    assert run_digests(out) == expected


def test_killed_worker_process_is_a_clear_error_and_resumable(
    reference: tuple[dict[str, str], int], tmp_path: Path
) -> None:
    expected, _ = reference
    out = tmp_path / "run"
    # The ingest writes ~20 files in the parent; a child dies on its first write in the pool.
    result = curate_run(
        out,
        ["--set", "batch_size=4", "--workers", "2"],
        env={"CURATE_FAULT_AFTER_WRITES": "1", "CURATE_FAULT_ONLY_WORKERS": "1"},
    )
    assert result.returncode == 4, result.stderr
    assert "worker process died" in result.stderr and "Traceback" not in result.stderr
    assert curate_run(out).returncode == 0
    assert run_digests(out) == expected


def test_unwritable_output_location_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the runs directory should be")
    recipe = load_recipe(REPO / "data_samples" / "recipe.yaml")
    with pytest.raises(RunDirError, match="not-a-dir"):
        run_recipe(recipe, out=blocker / "run", workers=1)


def test_disk_full_mid_run_leaves_no_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import curate.engine.checkpoint as checkpoint

    monkeypatch.chdir(REPO)
    calls = {"n": 0}
    real = checkpoint.write_parquet

    def failing(table: object, path: Path, checkpoint: bool = False) -> None:
        calls["n"] += 1
        if calls["n"] == 15:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(table, path, checkpoint)  # type: ignore[arg-type]

    monkeypatch.setattr(checkpoint, "write_parquet", failing)
    recipe = load_recipe(REPO / "data_samples" / "recipe.yaml", ["batch_size=4"])
    with pytest.raises(RunDirError, match="No space left on device"):
        run_recipe(recipe, out=tmp_path / "run", workers=1)
    assert not (tmp_path / "run").exists()
    # Space comes back: the same command finishes the run.
    monkeypatch.setattr(checkpoint, "write_parquet", real)
    result = run_recipe(recipe, out=tmp_path / "run", workers=1)
    assert (result.out_dir / "manifest.json").is_file()
