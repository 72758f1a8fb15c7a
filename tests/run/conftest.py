"""Fixtures shared by the run-directory tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from testutils import REPO

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo recipe run for real (every sample format, every stage, a mix), once for the
    session: the export tests only read it. A module may define its own ``run_dir``."""
    out = tmp_path_factory.mktemp("runs") / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "curate.cli", "run", "data_samples/recipe.yaml", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return out
