"""The stage contract.

A stage is one small class: a versioned registry ``name`` (``"exact_dedup_v1"``), a nested
pydantic ``Params`` model (``extra="forbid"``) and one method. Constructors only store and validate
parameters; work happens in ``run``. Every stage is callable on an Arrow table without the CLI::

    kept, rejected = ExactDedup(fields=["instruction"]).run(table)

Kinds (``kind`` says how an executor runs the stage, nothing else):
- ``map``: ``MapStage.transform(table) -> table``, shard by shard
- ``filter``: ``FilterStage.decide(table) -> Decision`` (keep mask + reason per dropped row +
  score columns), shard by shard
- ``global``: ``GlobalStage.fit(batches)`` over the whole stream, then ``apply(batch)`` per shard;
  a :class:`SplitFitStage` can also fit in three steps an engine spreads over a cluster

Every hook an executor calls is declared here: ``prepare`` (load files and models, once, before
any data), ``manifest_info`` and ``merge_manifest_info`` (what the stage reports in the manifest).
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from curate.errors import StageError
from curate.records import RECORD_SCHEMA, REJECT_SCHEMA, conform
from curate.util.arrow import with_columns


class StageParams(BaseModel):
    """Base for every stage's ``Params``: unknown keys are errors, not silently ignored, and every
    integer fits in 64 bits (numpy and Arrow would overflow later, after work started)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _integers_fit_64_bits(self) -> StageParams:
        for name, value in self:
            if not fits_64_bits(value):
                raise ValueError(f"{name}: integers must lie within ±2**63")
        return self


def fits_64_bits(value: Any) -> bool:
    """Every int in a (nested) value lies within the signed 64-bit range."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, dict):
        return all(fits_64_bits(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(fits_64_bits(v) for v in value)
    if isinstance(value, BaseModel):
        return all(fits_64_bits(v) for _, v in value)
    return True


@dataclass
class StageResult:
    kept: pa.Table
    rejected: pa.Table
    stats: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[pa.Table]:
        # Allows ``kept, rejected = stage.run(table)``.
        yield self.kept
        yield self.rejected


@dataclass
class Decision:
    """What a filter decided for each row of a batch."""

    keep: pa.Array  # bool per row
    reason: pa.Array  # string per row, null where kept
    detail: pa.Array | None = None  # string per row
    duplicate_of: pa.Array | None = None  # string per row
    scores: dict[str, pa.Array] = field(default_factory=dict)  # written on kept rows too


# Values quoted in error messages are cut short: a bad value can be huge (or alias-expanded).
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 3
MAX_ERRORS_SHOWN = 10


def format_validation_error(error: ValidationError, prefix: str) -> str:
    lines = []
    items = error.errors()
    for item in items[:MAX_ERRORS_SHOWN]:
        path = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        got = item.get("input")
        got_text = "" if item["type"] == "missing" else f" (got {_SHORT.repr(got)})"
        lines.append(f"{path[:200]}: {item['msg'][:300]}{got_text}")
    if len(items) > MAX_ERRORS_SHOWN:
        lines.append(f"and {len(items) - MAX_ERRORS_SHOWN} more errors")
    return "; ".join(lines)


class Stage:
    """Base of every stage. Subclasses set ``name``, ``kind`` and a nested ``Params``."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Params: ClassVar[type[StageParams]] = StageParams
    # True for stages that recompute ``id`` for every row (so readers before them can skip it).
    recomputes_ids: ClassVar[bool] = False
    # True for stages that can turn one row into several (expand): rows out may exceed rows in.
    multiplies_rows: ClassVar[bool] = False

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(params, StageParams):
            if kwargs:
                params = params.model_copy(update=kwargs)
            self.params = self.Params.model_validate(params.model_dump())
            return
        data = dict(params or {})
        data.update(kwargs)
        try:
            self.params = self.Params.model_validate(data)
        except ValidationError as error:
            raise StageError(
                f"invalid parameters for stage {self.key()!r}: {format_validation_error(error, '')}"
            ) from None

    @classmethod
    def key(cls) -> str:
        """Recipe key without the version suffix (``exact_dedup_v1`` -> ``exact_dedup``)."""
        base, _, version = cls.name.rpartition("_v")
        return base if base and version.isdigit() else cls.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params.model_dump()!r})"

    def prepare(self) -> None:
        """Load the stage's own inputs (benchmark files, templates, models) before any data.

        Constructors only store parameters; this is where files are read. Executors call it right
        after building the stages, so a broken stage input fails the run at once instead of after
        ingest. It must be idempotent: a stage that is used without it (the Python API, a worker
        process that got a pickled copy) calls it itself on first use. Default: nothing to load.
        """

    def run(self, table: pa.Table) -> StageResult:
        raise NotImplementedError(f"stage {self.name!r} does not implement run()")

    def __call__(self, table: pa.Table) -> StageResult:
        return self.run(table)

    def check_recipe(self, sources: Sequence[str]) -> None:
        """Check the params' references to the rest of the recipe (source names, language codes)
        without reading any input; raise :class:`StageError` naming the param. Recipe loading
        (and so ``curate validate``) calls it. Default: nothing to check."""

    def manifest_info(self) -> dict[str, Any] | None:
        """What the stage reports in the manifest (``stages[].info``); None: nothing.

        Per-batch stages report per shard (each shard runs on a fresh copy of the stage) and the
        executor combines the shards with :meth:`merge_manifest_info`; global stages report once.
        """
        return None

    def merge_manifest_info(self, infos: list[Any]) -> Any:
        """Combine per-shard :meth:`manifest_info` values (default: :func:`merge_infos`)."""
        return merge_infos(infos)

    def use_cache_dir(self, folder: Path) -> None:
        """Where the stage may keep what it computed for this run (embeddings), so that a resumed
        run and a later stage reuse it; executors call it with one folder of the run directory
        shared by every stage. Default: nothing to keep."""

    def scrubs_run(self) -> bool:
        """True for a stage that hides values from the whole run directory (``pii``): the
        executor passes every other stage's rejects through :meth:`scrub` and removes the stage
        checkpoints once the run is written. Default: False."""
        return False

    def scrub(self, table: pa.Table) -> pa.Table:
        """``table`` (rejects of any stage) with what this stage hides hidden. Default: as is."""
        return table


class MapStage(Stage):
    kind: ClassVar[str] = "map"

    def transform(self, table: pa.Table) -> pa.Table:
        raise NotImplementedError(f"map stage {self.name!r} does not implement transform()")

    def run(self, table: pa.Table) -> StageResult:
        out = self.transform(table)
        return StageResult(
            out, REJECT_SCHEMA.empty_table(), stage_stats(table.num_rows, out.num_rows, None)
        )


class FilterStage(Stage):
    kind: ClassVar[str] = "filter"

    def decide(self, table: pa.Table) -> Decision:
        raise NotImplementedError(f"filter stage {self.name!r} does not implement decide()")

    def run(self, table: pa.Table) -> StageResult:
        decision = self.decide(table)
        return apply_decision(table, decision, self.name)


class GlobalStage(Stage):
    """Needs every batch before deciding. ``run`` = ``fit([table])`` + ``apply(table)``."""

    kind: ClassVar[str] = "global"

    def fit(self, batches: Iterable[pa.Table]) -> None:
        raise NotImplementedError(f"global stage {self.name!r} does not implement fit()")

    def apply(self, table: pa.Table) -> StageResult:
        raise NotImplementedError(f"global stage {self.name!r} does not implement apply()")

    def run(self, table: pa.Table) -> StageResult:
        self.fit([table])
        return self.apply(table)

    def release(self) -> None:
        """Forget what ``fit`` learned (hashes, signatures, decisions: at 10M rows, gigabytes);
        engines call it once every shard is applied. The stage is as built: it can fit again."""
        fresh = type(self)(self.params)
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)

    def applies_per_shard(self) -> bool:
        """True when a fitted copy of the stage (pickled into another process) can apply any one
        shard on its own: ``apply_shard(table, batch)`` then gives the rows the in-order ``apply``
        calls give for that shard, so an engine may apply the shards in parallel, and
        ``absorb_applied`` takes back what each copy counted (``applied_info``) for the manifest.
        Default: False (the shards are applied in order, in the engine's process)."""
        return False

    def apply_shard(self, table: pa.Table, batch: int) -> StageResult:
        """``apply`` for shard number ``batch`` of the fit, in a copy (see :meth:`applies_per_shard`)."""
        return self.apply(table)

    def shard_copy(self, batch: int, first_row: int, rows: int) -> GlobalStage:
        """What an engine sends to the process that applies shard ``batch`` (its ``rows`` rows
        are rows ``first_row`` … of the fit's stream): a copy holding only what
        :meth:`apply_shard` needs for that shard, when the fit is large and per row
        (``exact_dedup``) or depends on the shards before (``mix``). Default: the stage itself
        (the engine sends the whole fitted stage)."""
        return self

    def applied_info(self) -> Any:
        """What this copy counted while applying (picklable), for :meth:`absorb_applied`."""
        return None

    def absorb_applied(self, infos: list[Any]) -> None:
        """Add the copies' :meth:`applied_info` to this stage's counts. Default: nothing to add."""

    def fits_in_parts(self) -> bool:
        """True when ``fit`` is :meth:`fit_part` on each shard (any shard, in any process) and
        :meth:`fit_parts` on their results in shard order, so that an engine may compute the
        parts in parallel: the same state as ``fit``. Default: False."""
        return False

    def fit_part(self, table: pa.Table) -> Any:
        """One shard's share of the fit (picklable); see :meth:`fits_in_parts`."""
        raise NotImplementedError(f"global stage {self.name!r} does not implement fit_part()")

    def fit_parts(self, parts: Iterable[Any]) -> None:
        """``fit`` from every shard's :meth:`fit_part`, in shard order."""
        raise NotImplementedError(f"global stage {self.name!r} does not implement fit_parts()")

    def warms_cache(self) -> bool:
        """True when :meth:`warm_cache` computes part of what ``fit`` needs (embeddings) into the
        run's cache folder, so that an engine can run it on the shards in parallel before
        ``fit``, which then reads it back. Default: False."""
        return False

    def warm_cache(self, table: pa.Table) -> None:
        """Compute one shard's share of what ``fit`` needs into the cache folder. Default: no-op."""

    def uses_gpu(self) -> bool:
        """True when the stage runs a model that is faster on a GPU (a transformer embedder):
        an engine with GPUs in its cluster gives the stage's task one. Default: False."""
        return False


class SplitFitStage(GlobalStage):
    """A global stage whose ``fit`` can also run as three steps, so that an engine can spread the
    grouping over a cluster (``minhash_dedup``'s band grouping on Ray)::

        band_rows(shard, offset) per shard       -> rows (band, key, doc, part)
        band_pairs(rows of whole parts, max_doc) -> candidate pairs, per partition
        fit_pairs(shards, union of pairs, rows)  -> the same state ``fit`` would build

    ``split_fallback()`` says why the steps do not apply to these params (None: they do); then
    the engine calls ``fit``.
    """

    def split_fallback(self) -> str | None:
        return f"stage {self.name!r} does not implement the split fit"

    def band_rows(self, batch: pa.Table, offset: int) -> pa.Table:
        raise NotImplementedError(f"stage {self.name!r} does not implement band_rows()")

    def band_rows_per_document(self) -> int:
        """How many band rows ``band_rows`` gives a document at most (sizes the grouping)."""
        return 1

    def band_pairs(self, rows: pa.Table, max_doc: int) -> np.ndarray:
        raise NotImplementedError(f"stage {self.name!r} does not implement band_pairs()")

    def fit_pairs(self, batches: Iterable[pa.Table], pairs: np.ndarray, band_rows: int) -> None:
        raise NotImplementedError(f"stage {self.name!r} does not implement fit_pairs()")


def apply_decision(table: pa.Table, decision: Decision, stage_name: str) -> StageResult:
    """Split a batch by a decision: scores go on kept rows, every dropped row gets a reason."""
    keep = decision.keep
    if isinstance(keep, pa.ChunkedArray):
        keep = keep.combine_chunks()
    keep = pc.fill_null(keep, True)
    scored = with_columns(table, decision.scores.items())
    kept = scored.filter(keep)
    drop = pc.invert(keep)
    n_drop = int(pc.sum(pc.cast(drop, pa.int64())).as_py() or 0) if len(drop) else 0
    if n_drop:
        dropped = table.filter(drop)
        reasons = pc.filter(decision.reason, drop)
        if pc.any(pc.is_null(reasons)).as_py():
            raise StageError(
                f"stage {stage_name} dropped a row without a reason (a bug in the stage)"
            )
        details = (
            pc.filter(decision.detail, drop)
            if decision.detail is not None
            else pa.nulls(n_drop, pa.string())
        )
        dup = (
            pc.filter(decision.duplicate_of, drop)
            if decision.duplicate_of is not None
            else pa.nulls(n_drop, pa.string())
        )
        rejected = make_rejects(dropped, stage_name, reasons, details, dup)
    else:
        rejected = REJECT_SCHEMA.empty_table()
    stats = stage_stats(table.num_rows, kept.num_rows, rejected)
    return StageResult(kept, rejected, stats)


def fitted_rows(
    stage: str, fitted: bool, table: pa.Table, ids: pa.ChunkedArray, offset: int
) -> tuple[int, int]:
    """For a global stage's ``apply``: the rows ``[lo, hi)`` of the stream ``fit`` saw that
    ``table`` holds, starting at ``offset``. Called before ``fit``, or with other batches than fit
    saw (or in another order), is an error: the decisions would land on the wrong rows."""
    if not fitted:
        raise StageError(f"{stage}: apply() called before fit()")
    n = table.num_rows
    lo, hi = offset, offset + n
    if hi > len(ids) or (
        n and not table.column("id").combine_chunks().equals(ids.slice(lo, n).combine_chunks())
    ):
        raise StageError(
            f"{stage}: apply() got batches that differ from fit() "
            "(give apply the same batches, in the same order)"
        )
    return lo, hi


def make_rejects(
    rows: pa.Table,
    stage_name: str,
    reason: pa.Array | str,
    detail: pa.Array | None = None,
    duplicate_of: pa.Array | None = None,
) -> pa.Table:
    """Rejects table: the record columns plus stage, reason, detail, duplicate_of."""
    n = rows.num_rows
    base = conform(
        rows.select([c for c in rows.column_names if c in RECORD_SCHEMA.names]), RECORD_SCHEMA
    )
    reason_arr = pa.array([reason] * n, pa.string()) if isinstance(reason, str) else reason
    base = base.append_column("stage", pa.array([stage_name] * n, pa.string()))
    base = base.append_column("reason", reason_arr.cast(pa.string()))
    base = base.append_column(
        "detail", detail.cast(pa.string()) if detail is not None else pa.nulls(n, pa.string())
    )
    base = base.append_column(
        "duplicate_of",
        duplicate_of.cast(pa.string()) if duplicate_of is not None else pa.nulls(n, pa.string()),
    )
    return base.cast(REJECT_SCHEMA)


def merge_infos(infos: list[Any]) -> Any:
    """Combine per-shard info values: numbers add up, dicts merge key by key, other values must
    agree (else the list of them)."""
    infos = [i for i in infos if i is not None]
    if not infos:
        return None
    first = infos[0]
    if all(isinstance(i, dict) for i in infos):
        keys: dict[str, None] = {}
        for info in infos:
            keys.update(dict.fromkeys(info))
        return {k: merge_infos([i.get(k) for i in infos]) for k in keys}
    if all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in infos):
        return sum(infos)
    if all(i == first for i in infos):
        return first
    return infos


def reason_counts(rejected: pa.Table | None) -> dict[str, int]:
    """Rejected rows per reason, sorted by reason."""
    if rejected is None or rejected.num_rows == 0:
        return {}
    counts = pc.value_counts(rejected.column("reason").combine_chunks())
    return dict(sorted((str(v["values"]), int(v["counts"])) for v in counts.to_pylist()))


def stage_stats(rows_in: int, rows_out: int, rejected: pa.Table | None) -> dict[str, Any]:
    return {"rows_in": rows_in, "rows_out": rows_out, "dropped": reason_counts(rejected)}
