"""A run's embeddings, kept so that a resumed run and a later stage never embed a text twice.

:class:`VectorCache` holds the int8 vectors (:func:`~curate.lib.embed.quantize`) of one embedder
by the SHA-256 of each text, in parquet parts under ``<folder>/<embedder key>/``: the key is a
hash of the embedder's name, model, dimension and package version, so vectors of another model
or version are never mixed in. Parts are written whole (a temporary name, then a rename): a run
killed mid-write leaves no half part. The texts themselves are not stored.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.lib.embed import Embedder, quantize

_KEY_BYTES = 16


def embedder_key(embedder: Embedder) -> str:
    identity = "\0".join((embedder.name, embedder.model, str(embedder.dimension), embedder.package))
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]


class VectorCache:
    """int8 vectors of ``embedder`` by text, read from and added to ``folder``."""

    def __init__(self, folder: Path, embedder: Embedder) -> None:
        self.embedder = embedder
        self.folder = Path(folder) / embedder_key(embedder)
        self.hits = 0
        self.computed = 0
        self._index: dict[bytes, int] = {}
        # Rows 0.._size of a buffer that doubles when full: adding is amortized O(1), and a
        # lookup never copies the cache.
        self._vectors = np.zeros((0, embedder.dimension), np.int8)
        self._size = 0
        if self.folder.is_dir():
            for part in sorted(self.folder.glob("part-*.parquet")):
                table = pq.read_table(part)
                keys = table.column("key").to_pylist()
                dimension = embedder.dimension
                raw = b"".join(table.column("vector").to_pylist())
                block = np.frombuffer(raw, np.int8).reshape(len(keys), dimension)
                self._add(keys, block)

    def __len__(self) -> int:
        return self._size

    @property
    def info(self) -> dict[str, int]:
        """What the manifest reports: vectors read back and vectors embedded by this instance."""
        return {"reused": self.hits, "embedded": self.computed}

    def _add(self, keys: list[bytes], block: np.ndarray) -> None:
        for offset, key in enumerate(keys):
            self._index.setdefault(key, self._size + offset)
        needed = self._size + len(keys)
        if needed > len(self._vectors):
            grown = np.zeros((max(needed, 2 * len(self._vectors)), block.shape[1]), np.int8)
            grown[: self._size] = self._vectors[: self._size]
            self._vectors = grown
        self._vectors[self._size : needed] = block
        self._size = needed

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The int8 vector of every text: from the cache, or embedded now and added to it."""
        keys = [hashlib.sha256(text.encode("utf-8")).digest()[:_KEY_BYTES] for text in texts]
        out = np.zeros((len(texts), self.embedder.dimension), np.int8)
        missing: dict[bytes, list[int]] = {}
        found_rows: list[int] = []
        found_at: list[int] = []
        for row, key in enumerate(keys):
            at = self._index.get(key)
            if at is None:
                missing.setdefault(key, []).append(row)
            else:
                found_rows.append(row)
                found_at.append(at)
        if found_rows:
            out[found_rows] = self._vectors[found_at]
            self.hits += len(found_rows)
        if missing:
            new_keys = list(missing)
            firsts = [missing[key][0] for key in new_keys]
            vectors = quantize(self.embedder.embed([texts[row] for row in firsts]))
            for key, vector in zip(new_keys, vectors, strict=True):
                out[missing[key]] = vector
            self.computed += len(new_keys)
            self._write(new_keys, vectors)
            self._add(new_keys, vectors)
        return out

    def _write(self, keys: list[bytes], vectors: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "key": pa.array(keys, pa.binary(_KEY_BYTES)),
                "vector": pa.array(
                    [vector.tobytes() for vector in vectors], pa.binary(self.embedder.dimension)
                ),
            }
        )
        name = f"part-{len(list(self.folder.glob('part-*.parquet'))):06d}-{uuid.uuid4().hex[:8]}"
        temporary = self.folder / f".{name}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, self.folder / f"{name}.parquet")


def embedding_function(
    embedder: Embedder, folder: Path | None
) -> tuple[Callable[[Sequence[str]], np.ndarray], VectorCache | None]:
    """int8 vectors of texts for a stage: through a :class:`VectorCache` in ``folder`` when the
    run gives one (returned too, for its :attr:`~VectorCache.info`), else embedded each time."""
    if folder is None:
        return lambda texts: quantize(embedder.embed(texts)), None
    cache = VectorCache(folder, embedder)
    return cache.embed, cache


__all__ = ["VectorCache", "embedder_key", "embedding_function"]
