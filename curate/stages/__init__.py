"""Stage registry: every ``Stage`` subclass with a ``name`` under ``curate.stages`` is discovered.

Adding a stage is one module with one class; no hand-kept import list. Look stages up by their
versioned name (``exact_dedup_v1``) or by the recipe key (``exact_dedup`` -> the newest version).
"""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

from curate.errors import StageError
from curate.stages.base import (
    Decision,
    FilterStage,
    GlobalStage,
    MapStage,
    Stage,
    StageParams,
    StageResult,
)

_REGISTRY: dict[str, type[Stage]] = {}

# A stage class declares its versioned name on one line; reading the modules' text for it tells
# which module holds a stage without importing every stage (and every library they use): a run
# imports only the stages its recipe names. A test checks this index against a full import.
_NAME_LINE = re.compile(r'^\s+name: ClassVar\[str\] = "([a-z0-9_]+_v\d+)"', re.MULTILINE)


def _stage_files() -> dict[str, Path]:
    """Module name -> source file of every stage module, found on disk (walking the package with
    pkgutil would import each subpackage, and with it the libraries it uses)."""
    root = Path(__file__).parent
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or parts[-1].startswith("_") or parts[-1] == "base":
            continue
        modules[".".join((__name__, *parts))] = path
    return modules


@functools.cache
def stage_index() -> dict[str, str]:
    """Versioned stage name -> the module that defines it, read from the source text."""
    index: dict[str, str] = {}
    for module, path in _stage_files().items():
        for stage in _NAME_LINE.findall(path.read_text(encoding="utf-8")):
            index[stage] = module
    return index


def _collect() -> None:
    for cls in _all_subclasses(Stage):
        if cls.name:
            if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
                raise StageError(f"two stages share the name {cls.name!r}")
            _REGISTRY[cls.name] = cls


@functools.cache
def _discover() -> None:
    """Import every stage module (listing all stages: docs, ``curate stages``)."""
    for name in _stage_files():
        importlib.import_module(name)
    _collect()


def _load(key: str) -> None:
    """Import only the modules that define ``key`` (a versioned name or a recipe key)."""
    wanted = {
        module
        for stage, module in stage_index().items()
        if stage == key or stage.rsplit("_v", 1)[0] == key
    }
    for module in sorted(wanted):
        importlib.import_module(module)
    _collect()


def _all_subclasses(cls: type[Stage]) -> list[type[Stage]]:
    found: list[type[Stage]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def registry() -> dict[str, type[Stage]]:
    """Versioned name -> class, for every discovered stage."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def _version(name: str) -> int:
    match = re.search(r"_v(\d+)$", name)
    return int(match.group(1)) if match else 0


def _resolve(key: str, stages: dict[str, type[Stage]]) -> type[Stage] | None:
    if key in stages:
        return stages[key]
    versions = [cls for cls in stages.values() if cls.key() == key]
    return max(versions, key=lambda cls: _version(cls.name)) if versions else None


def get_stage(key: str) -> type[Stage]:
    """Resolve ``exact_dedup_v1`` exactly, or ``exact_dedup`` to its newest version."""
    _load(key)
    found = _resolve(key, dict(_REGISTRY))
    if found is not None:
        return found
    stages = registry()  # not in the index (a stage defined outside this package): look everywhere
    found = _resolve(key, stages)
    if found is not None:
        return found
    available = sorted({cls.key() for cls in stages.values()} | set(stages))
    raise StageError(f"unknown stage {key!r}; available stages: {', '.join(available)}")


def __getattr__(name: str) -> type[Stage]:
    # `from curate.stages import ExactDedup` without a hand-kept import list.
    for cls in registry().values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Decision",
    "FilterStage",
    "GlobalStage",
    "MapStage",
    "Stage",
    "StageParams",
    "StageResult",
    "get_stage",
    "registry",
    "stage_index",
]
