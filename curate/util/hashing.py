"""Seeded, platform-independent hashing for deterministic draws (no numpy.random)."""

from __future__ import annotations

import numpy as np
import xxhash


def stable_seed(seed: int, name: str) -> np.uint64:
    """A 64-bit seed for one named stream (a task, a group, a mix unit): same on every machine."""
    return np.uint64(xxhash.xxh64_intdigest(f"{seed}\x1f{name}".encode()))


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer over uint64: a bijection, so distinct inputs never tie.

    Used instead of ``numpy.random`` so the draws do not depend on numpy's generator versions.
    """
    x = values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


__all__ = ["splitmix64", "stable_seed"]
