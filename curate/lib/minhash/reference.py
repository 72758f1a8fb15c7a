"""Stored signatures: the ``minhash`` column a run writes, and reading it back as a reference.

A run with ``store_signatures: true`` writes each kept row's signature as a uint32 list column,
with the parameters that made it in the field metadata; a later run reads those files as a
reference (:func:`reference_files`, :func:`read_reference`) and refuses signatures made with
other parameters.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import StageError
from curate.lib.minhash.lsh import gather_columns
from curate.lib.minhash.signatures import MinHasher, document_text

SIGNATURE_COLUMN = "minhash"
HASH_NAME = "curate.lib.minhash.signatures.shingle_hash32"


def signature_metadata(hasher: MinHasher, fields: list[str]) -> dict[str, str]:
    """Field metadata of the signature column: what a reference must match."""
    return {
        "num_perm": str(hasher.num_perm),
        "seed": str(hasher.seed),
        "scheme": hasher.scheme,
        "shingle": hasher.shingle,
        "ngram": str(hasher.ngram),
        "fields": ",".join(fields),
        "hash": HASH_NAME,
    }


def signature_column(
    sigs: Sequence[np.ndarray], chunk_starts: np.ndarray, docs: np.ndarray, num_perm: int
) -> pa.Array:
    """Signatures of ``docs`` (from chunks starting at ``chunk_starts``) as a list column."""
    sig = gather_columns(sigs, chunk_starts, docs)
    flat = pa.array(np.ascontiguousarray(sig.T).reshape(-1), pa.uint32())
    return pa.FixedSizeListArray.from_arrays(flat, num_perm)


def with_field_metadata(table: pa.Table, column: str, metadata: dict[str, str]) -> pa.Table:
    index = table.column_names.index(column)
    field = table.schema.field(index).with_metadata(metadata)
    return table.set_column(index, field, table.column(index))


def reference_files(specs: list[str]) -> list[str]:
    """Files named by ``specs`` (paths or globs, each glob sorted); at least one."""
    files: list[str] = []
    for spec in specs:
        files.extend(sorted(glob.glob(spec)) if any(ch in spec for ch in "*?[") else [spec])
    if not files:
        raise StageError(f"minhash_dedup reference: no files match {specs}")
    return files


@dataclass
class Reference:
    """One reference file: its rows, their signatures and, where known, their shingle hashes."""

    table: pa.Table
    sig: np.ndarray  # (num_perm, rows) uint32
    # (hashes, counts, same_text): the shingles of rows whose text still gives their signature.
    shingles: tuple[np.ndarray, np.ndarray, np.ndarray] | None


def read_reference(path: str, hasher: MinHasher, fields: list[str], exact: bool) -> Reference:
    """Read one file of an earlier run; with ``exact``, also the shingles of its text."""
    if not Path(path).exists():
        raise StageError(f"minhash_dedup reference: {path} does not exist")
    table = pq.read_table(path)
    if SIGNATURE_COLUMN not in table.column_names or "id" not in table.column_names:
        raise StageError(
            f"minhash_dedup reference {path}: needs columns 'id' and '{SIGNATURE_COLUMN}' "
            "(write them with `minhash_dedup: {store_signatures: true}` in the earlier run)"
        )
    _check_params(table.schema.field(SIGNATURE_COLUMN), path, hasher, fields)
    sig = _signature_matrix(table.column(SIGNATURE_COLUMN), hasher.num_perm, path)
    shingles = None
    if exact and all(f in table.column_names for f in fields):
        # The earlier run's text is there: verify exactly, for rows whose text still gives
        # their stored signature (a later stage, e.g. template expansion, may have rewritten
        # it; those rows fall back to the signature estimate).
        hashes, counts = hasher.shingle_hashes(document_text(table, fields))
        same_text = (hasher.from_hashes(hashes, counts) == sig).all(axis=0)
        shingles = (hashes, counts, same_text)
    return Reference(table, sig, shingles)


def _check_params(field: pa.Field, path: str, hasher: MinHasher, fields: list[str]) -> None:
    meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
    if not meta:
        return
    wrong = {
        k: (meta.get(k), v)
        for k, v in signature_metadata(hasher, fields).items()
        if meta.get(k) != v
    }
    if wrong:
        detail = ", ".join(
            f"{k}: file has {a!r}, this stage {b!r}" for k, (a, b) in sorted(wrong.items())
        )
        raise StageError(
            f"minhash_dedup reference {path}: signatures were made with other parameters ({detail})"
        )


def _signature_matrix(column: pa.ChunkedArray, num_perm: int, path: str) -> np.ndarray:
    values = column.combine_chunks()
    if not (pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type)):
        raise StageError(
            f"minhash_dedup reference {path}: column '{SIGNATURE_COLUMN}' is {values.type}, "
            "expected a list of uint32"
        )
    flat = values.flatten().cast(pa.uint32()).to_numpy(zero_copy_only=False)
    if len(flat) != len(values) * num_perm:
        raise StageError(
            f"minhash_dedup reference {path}: signatures are not {num_perm} values long "
            "(made with another num_perm?)"
        )
    return np.ascontiguousarray(flat.reshape(len(values), num_perm).T)
