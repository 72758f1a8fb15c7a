"""File plumbing: expand source paths, fingerprint inputs (reading them is :mod:`.stream`)."""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from curate.errors import InputFileError
from curate.util.storage import is_object_uri, local_copy, object_inputs

COMPRESSIONS = (".gz", ".zst", ".zstd")
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".tsv", ".parquet")
# Files that commonly sit beside data in a dataset folder and are not data.
NON_DATA_SUFFIXES = (".md", ".txt", ".csv", ".py", ".sh", ".yaml", ".yml", ".html", ".pdf", ".png")


def strip_compression(name: str) -> str:
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def data_suffix(path: Path) -> str:
    """The data suffix under any compression suffix: ``x.json.gz`` -> ``.json``."""
    return Path(strip_compression(path.name)).suffix.lower()


def is_hf_disk_dir(path: Path) -> bool:
    """A directory written by ``datasets.Dataset.save_to_disk``."""
    return (
        path.is_dir() and (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def expand_paths(spec: str | Path, base: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Files a source path names: a file, a glob, or a directory (recursively).

    Returns ``(data_files, skipped_files)`` in sorted order so runs are deterministic.
    A directory saved by ``datasets`` is returned as one entry.
    """
    raw = str(spec)
    if is_object_uri(raw):
        # Objects are mirrored on local disk (downloaded once) and read from there.
        objects = object_inputs(raw)
        if not objects:
            raise InputFileError(f"source path {spec!s}: no object matches")
        data = [o for o in objects if data_suffix(Path(o.name)) in DATA_SUFFIXES]
        return [local_copy(o) for o in data], [
            Path(o.key) for o in objects if data_suffix(Path(o.name)) not in DATA_SUFFIXES
        ]
    if base is not None and not os.path.isabs(raw):
        raw = str(base / raw)
    if any(ch in raw for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(raw, recursive=True))
        if not matches:
            raise InputFileError(f"source path {spec!s}: the glob matched no files")
    else:
        path = Path(raw)
        if not path.exists():
            raise InputFileError(f"source path {spec!s}: no such file or directory ({path})")
        matches = [path]
    files: list[Path] = []
    skipped: list[Path] = []
    for match in matches:
        if match.is_dir():
            if is_hf_disk_dir(match):
                files.append(match)
                continue
            for child in sorted(_walk(match)):
                (files if data_suffix(child) in DATA_SUFFIXES else skipped).append(child)
        elif data_suffix(match) in DATA_SUFFIXES or not match.name.endswith(NON_DATA_SUFFIXES):
            files.append(match)
        else:
            skipped.append(match)
    return files, skipped


def _walk(directory: Path) -> Iterable[Path]:
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        root_path = Path(root)
        if is_hf_disk_dir(root_path) and root_path != directory:
            continue
        for name in names:
            if not name.startswith("."):
                yield root_path / name


def file_fingerprint(path: Path) -> dict[str, object]:
    """Size and sha256 of the file as stored (for the manifest)."""
    if path.is_dir():
        digest = hashlib.sha256()
        size = 0
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            data = child.read_bytes()
            size += len(data)
            digest.update(child.relative_to(path).as_posix().encode() + b"\0" + data)
        return {"size": size, "sha256": digest.hexdigest()}
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col
