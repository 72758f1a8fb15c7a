"""Stage registry: every ``Stage`` subclass with a ``name`` under ``curate.stages`` is discovered.

Adding a stage is one module with one class; no hand-kept import list. Look stages up by their
versioned name (``exact_dedup_v1``) or by the recipe key (``exact_dedup`` -> the newest version).
"""

from __future__ import annotations

import importlib
import pkgutil
import re

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


def _discover() -> None:
    if _REGISTRY:
        return
    package = importlib.import_module(__name__)
    for module in pkgutil.walk_packages(package.__path__, prefix=f"{__name__}."):
        if module.name.rsplit(".", 1)[-1].startswith("_") or module.name.endswith(".base"):
            continue
        importlib.import_module(module.name)
    for cls in _all_subclasses(Stage):
        if cls.name:
            if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
                raise StageError(f"two stages share the name {cls.name!r}")
            _REGISTRY[cls.name] = cls


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


def get_stage(key: str) -> type[Stage]:
    """Resolve ``exact_dedup_v1`` exactly, or ``exact_dedup`` to its newest version."""
    stages = registry()
    if key in stages:
        return stages[key]
    versions = [cls for name, cls in stages.items() if cls.key() == key]
    if versions:
        return max(versions, key=lambda cls: _version(cls.name))
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
]
