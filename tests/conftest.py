from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3server import S3Server, s3_server
from testutils import REPO

# Ray keeps to loopback (127.0.0.1) instead of the machine's interface address: the tests' Ray
# instances and clusters talk to nothing else. Read by Ray when it is imported, so set here first.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run with the repository as the working directory (recipes use repo-relative paths)."""
    monkeypatch.chdir(REPO)
    return REPO


@pytest.fixture(autouse=True)
def _offline_hub() -> None:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One S3-protocol server on loopback for the session (see tests/s3server.py)."""
    pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (a dev dependency)")
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """This process talks to the test server; a run's local work folder lies under tmp_path."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CURATE_WORK_DIR", str(tmp_path / "work"))
    return s3
