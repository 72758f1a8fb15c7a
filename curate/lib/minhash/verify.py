"""Verifying candidate pairs: similarity of two documents, measured exactly where possible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from curate.lib.minhash.lsh import SetIndex, estimated_jaccard
from curate.lib.minhash.store import known

# Per pair: (duplicate?, similarity, measured exactly?, per-field word similarity).
Match = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]


class PairVerifier:
    """Whether pairs of documents are duplicates, and how similar they are.

    Similarity is exact Jaccard of the shingle sets when both are known, else the signature
    estimate (``verify: estimate``, or reference rows stored without their text). Each field of
    ``field_thresholds`` must also reach its own word-set Jaccard (two empty fields are the same).
    """

    def __init__(
        self,
        threshold: float,
        shingle_sets: SetIndex | None,
        sigs: Sequence[np.ndarray],
        chunk_starts: np.ndarray,
        sig_docs: np.ndarray | None = None,
        field_sets: Mapping[str, SetIndex | None] | None = None,
        field_thresholds: Mapping[str, float] | None = None,
    ) -> None:
        """``sigs`` are signature chunks starting at ``chunk_starts``: of every document, or of
        the sorted documents ``sig_docs`` only."""
        self.threshold = threshold
        self.shingle_sets = shingle_sets
        self.sigs = sigs
        self.chunk_starts = chunk_starts
        self.sig_docs = sig_docs
        self.field_sets = dict(field_sets or {})
        self.field_thresholds = dict(field_thresholds or {})

    def match(self, u: np.ndarray, v: np.ndarray) -> Match:
        """For pairs: (duplicate?, similarity, measured exactly?, per-field word similarity)."""
        sim = np.empty(len(u), np.float64)
        exact = np.zeros(len(u), bool)
        if self.shingle_sets is not None:
            exact = known(self.shingle_sets, u) & known(self.shingle_sets, v)
            sim[exact] = self.shingle_sets.jaccard(u[exact], v[exact])
        if (~exact).any():
            su, sv = u[~exact], v[~exact]
            if self.sig_docs is not None:  # signatures of some documents only
                su, sv = np.searchsorted(self.sig_docs, su), np.searchsorted(self.sig_docs, sv)
            sim[~exact] = estimated_jaccard(self.sigs, self.chunk_starts, su, sv)
        ok = sim >= self.threshold
        fields: dict[str, np.ndarray] = {}
        for name, sets in self.field_sets.items():
            words = np.full(len(u), np.nan)
            if sets is not None:
                both = known(sets, u) & known(sets, v)
                # Two empty fields are the same field.
                words[both] = sets.jaccard(u[both], v[both], empty=1.0)
                ok &= ~both | (words >= self.field_thresholds[name])
            fields[name] = words
        return ok, sim, exact, fields
