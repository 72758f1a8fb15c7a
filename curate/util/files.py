"""Crash-safe files: every write goes to a temporary name and is renamed into place.

A file that exists under its final name is complete. ``CURATE_FAULT_AFTER_WRITES=N`` makes the
process SIGKILL itself right after its N-th checkpoint write: the fault tests use it to stop a run
at exact points (a real SIGKILL, nothing is cleaned up). With ``CURATE_FAULT_ONLY_WORKERS=1`` only
pool worker processes die.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from curate.errors import RunDirError
from curate.util.storage import ObjectPath, RunPath

_writes = 0


_MAIN_PID = os.getpid()


def after_write() -> None:
    global _writes
    _writes += 1
    limit = os.environ.get("CURATE_FAULT_AFTER_WRITES")
    if not limit or _writes < int(limit):
        return
    # CURATE_FAULT_ONLY_WORKERS: only pool workers (spawned processes) die.
    if (
        os.environ.get("CURATE_FAULT_ONLY_WORKERS")
        and os.getpid() == _MAIN_PID
        and not _is_worker()
    ):
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _is_worker() -> bool:
    import multiprocessing

    return multiprocessing.parent_process() is not None


def io_error(path: RunPath, exc: OSError) -> RunDirError:
    return RunDirError(f"cannot write {path}: {exc.strerror or exc}")


def write_json_atomic(payload: Any, path: RunPath) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"
    if isinstance(path, ObjectPath):
        # One PUT is atomic on object storage: no temporary name to rename.
        path.write_bytes(text.encode("utf-8"))
        after_write()
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise io_error(path, exc) from None
    after_write()


def write_bytes_atomic(payload: bytes, path: RunPath) -> None:
    if isinstance(path, ObjectPath):
        path.write_bytes(payload)
        after_write()
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    except OSError as exc:
        raise io_error(path, exc) from None
    after_write()
