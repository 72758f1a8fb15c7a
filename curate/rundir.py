"""Run directories: written under a temporary name, renamed into place only when complete.

``runs/<name>/`` holds ``data/part-*.parquet``, ``rejects/part-*.parquet``, ``stages/`` and
``manifest.json``. A reader never sees a half-written run: until the final rename the work lives in
``runs/.<name>.tmp-<pid>``, which a crashed run leaves behind and the next run removes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import RunDirError

ROW_GROUP_ROWS = 100_000
ROWS_PER_FILE = 1_000_000
MANIFEST = "manifest.json"


def is_complete_run(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / "data").is_dir()


class RunDirWriter:
    """Stage a run directory next to its final location and publish it atomically."""

    def __init__(self, final: Path, force: bool = False) -> None:
        self.final = final
        if final.exists() and not force:
            raise RunDirError(
                f"{final} already exists; pass --force to replace it (or --out to write elsewhere)"
            )
        if final.exists() and not final.is_dir():
            raise RunDirError(f"{final} exists and is not a directory")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            for stale in final.parent.glob(f".{final.name}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            self.tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.tmp.mkdir()
        except OSError as exc:
            raise RunDirError(
                f"cannot create the run directory under {final.parent}: {exc.strerror or exc}"
            ) from None

    def write_table(
        self, subdir: str, table: pa.Table, rows_per_file: int = ROWS_PER_FILE
    ) -> list[str]:
        """Write ``table`` as ``subdir/part-NNNNN.parquet`` (zstd, ~100k-row groups). Always >= 1 file."""
        directory = self.tmp / subdir
        written: list[str] = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            starts = range(0, max(table.num_rows, 1), rows_per_file)
            for part, start in enumerate(starts):
                chunk = table.slice(start, rows_per_file)
                path = directory / f"part-{part:05d}.parquet"
                write_parquet(chunk, path)
                written.append(f"{subdir}/{path.name}")
        except OSError as exc:
            raise RunDirError(f"cannot write {directory}: {exc.strerror or exc}") from None
        return written

    def write_json(self, name: str, payload: dict[str, Any]) -> None:
        try:
            (self.tmp / name).write_text(
                json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"
            )
        except OSError as exc:
            raise RunDirError(f"cannot write {self.tmp / name}: {exc.strerror or exc}") from None

    def commit(self) -> Path:
        """Publish: replace any previous run in one rename, then drop the old one."""
        trash = None
        try:
            if self.final.exists():
                trash = self.final.parent / f".{self.final.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(self.final, trash)
            os.rename(self.tmp, self.final)
        except OSError as exc:
            raise RunDirError(f"cannot publish {self.final}: {exc.strerror or exc}") from None
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Deterministic parquet: same table -> same bytes (no timestamps, fixed options)."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=True,
        write_statistics=True,
        store_schema=True,
    )
