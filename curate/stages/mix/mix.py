"""The mix: examples-proportional sampling with caps, temperature, weights, groups and a target."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.errors import StageError
from curate.records import REJECT_SCHEMA
from curate.stages.base import GlobalStage, StageParams, StageResult, make_rejects, stage_stats
from curate.stages.mix.allocate import Allocation, Group, Unit, allocate, check_weights
from curate.util.hashing import splitmix64, stable_seed

_FIRST_WORD = r"^[^\p{L}]*(?P<word>\p{L}[\p{L}'’-]*)"


def _present(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.if_else(pc.equal(pc.fill_null(column, ""), ""), pa.scalar(None, pa.string()), column)


# The column ``by: response_format`` mixes on (written by the ``response_format`` stage).
FORMAT_COLUMN = "response_format"
# The unit of a row whose format is null (a table the stage did not label).
NO_FORMAT = "(none)"


def require_format_column(table: pa.Table) -> None:
    """``by: response_format`` needs the column the ``response_format`` stage writes."""
    if FORMAT_COLUMN not in table.column_names:
        raise StageError(
            f"mix: by: response_format needs the {FORMAT_COLUMN!r} column, which this data does "
            "not have: add the response_format stage before mix (stages: - response_format: {})"
        )


def unit_names(table: pa.Table, by: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(unit, source, task) per row; unit = ``source/task`` (task, else Dolly category),
    ``source``, or the answer's format (``response_format`` column, across sources)."""
    source = table.column("source").combine_chunks()
    task = pc.coalesce(_present(table.column("task")), _present(table.column("category")))
    if by == "source":
        return source, source, pa.nulls(len(source), pa.string())
    if by == FORMAT_COLUMN:
        require_format_column(table)
        formats = table.column(FORMAT_COLUMN).combine_chunks()
        return pc.fill_null(formats.cast(pa.string()), NO_FORMAT), source, task
    joined = pc.binary_join_element_wise(source, task, "/")
    # A source that is one task (an NIv2 file named after its task) is just the source.
    unit = pc.if_else(
        pc.fill_null(pc.equal(source, task), False), source, pc.coalesce(joined, source)
    )
    return unit, source, task


class Mix(GlobalStage):
    """Sample the stream into a mix of ``target`` rows (T5/FLAN examples-proportional mixing).

    Per unit (a source's task): rate ∝ ``min(n, cap) ** (1/temperature)``; ``weights`` pin
    sources, tasks or nested groups to fractions or counts (see :mod:`curate.stages.mix.allocate`).
    ``by: response_format`` mixes answer formats instead (after the ``response_format`` stage):
    each format across all sources is one unit, so a ``cap`` caps the over-represented formats
    and ``weights`` name formats; a format's rows are drawn uniformly, so its sources keep their
    shares of it.
    A unit that must give more rows than it has is repeated whole, plus a seeded remainder;
    otherwise a seeded subset is drawn. Rows not drawn are rejected (``not_sampled``).
    With no target, cap or weights every row is kept once.
    The realized counts per unit, source, task and template type (and response format, when
    the data has the column), and a diversity summary, go to the manifest (:meth:`manifest_info`).
    """

    name: ClassVar[str] = "mix_v1"

    class Params(StageParams):
        target: int | None = Field(
            None, ge=0, description="Rows in the mix; default: the capped size."
        )
        cap: int | None = Field(None, ge=1, description="K: a unit counts as at most K examples.")
        temperature: float = Field(
            1.0, gt=0, description="rate ∝ size^(1/T); T > 1 flattens the mix."
        )
        weights: dict[str, float | Group | None] = Field(
            default_factory=dict,
            description="Source, task or unit -> fraction (<= 1), row count (> 1), none (by mass) "
            "or group {weight, members}; most specific name wins.",
        )
        by: Literal["task", "source", "response_format"] = Field(
            "task",
            description="Mixing unit: a source's task, a whole source, or an answer format "
            "across sources (needs the response_format stage before mix).",
        )
        seed: int = Field(
            0, description="Seed for each unit's draw; a recipe sets the recipe seed unless given."
        )

        @field_validator("weights")
        @classmethod
        def _weights(
            cls, value: dict[str, float | Group | None]
        ) -> dict[str, float | Group | None]:
            check_weights(value)
            return value

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._reset()

    def check_recipe(self, sources: Sequence[str]) -> None:
        """A weight ``source/task`` must name a source of the recipe (plain names may be tasks,
        known only from the data: :func:`allocate` checks those)."""

        def keys(level: dict[str, float | Group | None], prefix: str) -> list[tuple[str, str]]:
            found = []
            for key, value in level.items():
                found.append((f"{prefix}{key}", key))
                if isinstance(value, Group):
                    found.extend(keys(value.members, f"{prefix}{key}."))
            return found

        for path, key in keys(self.params.weights, "weights."):
            source, slash, _ = key.partition("/")
            if slash and source not in sources:
                raise StageError(
                    f"{path}: {source!r} is not a source of the recipe; sources: {', '.join(sources)}"
                )

    def _reset(self) -> None:
        self.allocation: Allocation | None = None
        self._index: dict[str, int] = {}
        self._repeats = np.zeros(0, dtype=np.int64)
        self._threshold = np.zeros(0, dtype=np.uint64)
        self._has_remainder = np.zeros(0, dtype=bool)
        self._seeds = np.zeros(0, dtype=np.uint64)
        self._offsets = np.zeros(0, dtype=np.int64)
        # Rows per unit in each shard of the fit (a shard's copy starts its units' ranks there).
        self._shard_units: list[dict[str, int]] = []
        self._realized: dict[str, Counter[str]] = {
            k: Counter()
            for k in (
                "unit",
                "source",
                "task",
                "template_type",
                "template",
                "leading_word",
                FORMAT_COLUMN,
            )
        }

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Count rows per unit over the stream, allocate the target, fix each unit's draw."""
        self.fit_parts(self.fit_part(batch) for batch in batches)

    def fits_in_parts(self) -> bool:
        return True

    def fit_part(self, table: pa.Table) -> list[tuple[str, int, str, str]]:
        """The shard's units in order of their first row: (unit, rows, source and task of that
        first row)."""
        by_format = self.params.by == FORMAT_COLUMN
        if by_format:
            require_format_column(table)
        if table.num_rows == 0:
            return []
        units, sources, tasks = unit_names(table, self.params.by)
        encoded = pc.dictionary_encode(units)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        counts = np.bincount(codes, minlength=len(encoded.dictionary))
        firsts = _first_rows(codes, len(encoded.dictionary))
        part = []
        for name, count, first in zip(
            encoded.dictionary.to_pylist(), counts.tolist(), firsts.tolist(), strict=True
        ):
            # A format unit spans sources and tasks: weights name it by the format alone.
            source = "" if by_format else str(sources[first].as_py())
            task = "" if by_format else str(tasks[first].as_py() or "")
            part.append((str(name), int(count), source, task))
        return part

    def fit_parts(self, parts: Iterable[list[tuple[str, int, str, str]]]) -> None:
        """The fit from every shard's :meth:`fit_part`, in shard order."""
        self._reset()
        sizes: Counter[str] = Counter()
        meta: dict[str, tuple[str, str]] = {}
        for part in parts:
            shard: dict[str, int] = {}
            for name, count, source, task in part:
                sizes[name] += count
                meta.setdefault(name, (source, task))
                shard[name] = count
            self._shard_units.append(shard)
        names = sorted(sizes)
        units = [Unit(name, meta[name][0], meta[name][1], sizes[name]) for name in names]
        p = self.params
        self.allocation = allocate(
            units, target=p.target, cap=p.cap, temperature=p.temperature, weights=p.weights
        )
        self._index = {name: i for i, name in enumerate(names)}
        available = np.array([u.available for u in units], dtype=np.int64)
        counts = np.array(self.allocation.counts, dtype=np.int64)
        self._repeats = counts // np.maximum(available, 1)
        remainder = counts - self._repeats * available
        self._seeds = np.array(
            [stable_seed(p.seed, f"mix\x1f{name}") for name in names], dtype=np.uint64
        )
        self._threshold = np.zeros(len(units), dtype=np.uint64)
        self._has_remainder = remainder > 0
        for i in np.flatnonzero(self._has_remainder).tolist():
            # The remainder: the r positions with the smallest seeded keys (nested as r grows).
            keys = splitmix64(np.arange(available[i], dtype=np.uint64) ^ self._seeds[i])
            self._threshold[i] = np.partition(keys, remainder[i] - 1)[remainder[i] - 1]
        self._offsets = np.zeros(len(units), dtype=np.int64)

    def applies_per_shard(self) -> bool:
        return True

    def shard_copy(self, batch: int, first_row: int, rows: int) -> Mix:
        """A copy that applies shard ``batch`` alone: each unit's rank starts after its rows in
        the shards before it, and the copy counts what it keeps afresh (``applied_info``)."""
        copy = Mix(self.params)
        copy.__dict__.update(self.__dict__)
        offsets = np.zeros(len(self._index), dtype=np.int64)
        for shard in self._shard_units[:batch]:
            for name, count in shard.items():
                offsets[self._index[name]] += count
        copy._offsets = offsets
        copy._shard_units = []
        copy._realized = {key: Counter() for key in self._realized}
        return copy

    def applied_info(self) -> dict[str, Counter[str]]:
        return self._realized

    def absorb_applied(self, infos: list[Any]) -> None:
        for realized in infos:
            for key, counts in realized.items():
                self._realized[key].update(counts)

    def apply(self, table: pa.Table) -> StageResult:
        """Repeat each row as many times as its unit's draw says (0: rejected ``not_sampled``)."""
        if table.num_rows == 0:
            return StageResult(table, REJECT_SCHEMA.empty_table(), stage_stats(0, 0, None))
        units, _, _ = unit_names(table, self.params.by)
        encoded = pc.dictionary_encode(units)
        local = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        try:
            mapping = np.array(
                [self._index[name] for name in encoded.dictionary.to_pylist()], dtype=np.int64
            )
        except KeyError as missing:
            raise StageError(
                f"mix: unit {missing} was not in the fitted stream (apply batches must be the ones fitted)"
            ) from None
        codes = mapping[local]
        ranks = np.empty(len(codes), dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        lengths = np.diff(np.r_[starts, len(codes)])
        within = np.arange(len(codes)) - np.repeat(starts, lengths)
        ranks[order] = self._offsets[sorted_codes] + within
        np.add.at(self._offsets, sorted_codes[starts], lengths)
        multiplicity = self._repeats[codes].copy()
        drawn = self._has_remainder[codes]
        if drawn.any():
            keys = splitmix64(ranks[drawn].astype(np.uint64) ^ self._seeds[codes[drawn]])
            multiplicity[drawn] += keys <= self._threshold[codes[drawn]]
        kept = table.take(pa.array(np.repeat(np.arange(len(codes)), multiplicity), pa.int64()))
        self._count(kept)
        dropped = np.flatnonzero(multiplicity == 0)
        if len(dropped):
            allocation = self.allocation
            assert allocation is not None
            details = [
                f"{allocation.units[c].name}: {allocation.counts[c]} of {allocation.units[c].available} rows sampled"
                for c in codes[dropped].tolist()
            ]
            rejected = make_rejects(
                table.take(pa.array(dropped, pa.int64())),
                self.name,
                "not_sampled",
                pa.array(details, pa.string()),
            )
        else:
            rejected = REJECT_SCHEMA.empty_table()
        return StageResult(kept, rejected, stage_stats(table.num_rows, kept.num_rows, rejected))

    def _count(self, kept: pa.Table) -> None:
        if kept.num_rows == 0:
            return
        units, sources, tasks = unit_names(kept, self.params.by)
        prompt = pc.if_else(
            pc.equal(kept.column("instruction"), ""),
            _first_user_turn(kept),
            kept.column("instruction"),
        )
        words = pc.utf8_lower(pc.struct_field(pc.extract_regex(prompt, _FIRST_WORD), "word"))
        columns = {
            "unit": units,
            "source": sources,
            "task": pc.fill_null(tasks, "(none)"),
            "template_type": pc.fill_null(kept.column("template_type"), "(none)"),
            "template": kept.column("template_id"),
            "leading_word": words,
        }
        if FORMAT_COLUMN in kept.column_names:
            columns[FORMAT_COLUMN] = pc.fill_null(
                kept.column(FORMAT_COLUMN).combine_chunks().cast(pa.string()), NO_FORMAT
            )
        for key, values in columns.items():
            for item in pc.value_counts(values).to_pylist():
                if item["values"] is not None:
                    self._realized[key][str(item["values"])] += int(item["counts"])

    def manifest_info(self) -> dict[str, Any]:
        """Allocated and realized rows per unit, counts per source/task/template type, diversity."""
        if self.allocation is None:
            return {}
        p = self.params
        units = self.allocation.as_rows(p.cap, p.temperature)
        for row in units:
            row["realized"] = self._realized["unit"].get(row["unit"], 0)
        realized = sum(self._realized["unit"].values())
        info: dict[str, Any] = {
            "target": p.target,
            "cap": p.cap,
            "temperature": p.temperature,
            "by": p.by,
            "total_allocated": sum(self.allocation.counts),
            "unallocated": self.allocation.unallocated,
            "realized": realized,
            "units": units,
            "by_source": dict(sorted(self._realized["source"].items())),
            "by_task": dict(sorted(self._realized["task"].items())),
            "by_template_type": dict(sorted(self._realized["template_type"].items())),
            "diversity": self._diversity(realized),
        }
        if self._realized[FORMAT_COLUMN]:
            # Only when the data has the column: a mix without it reports what it always did.
            info["by_response_format"] = dict(sorted(self._realized[FORMAT_COLUMN].items()))
        return info

    def _diversity(self, total: int) -> dict[str, Any]:
        units = self._realized["unit"]
        words = self._realized["leading_word"]
        largest = max(units.items(), key=lambda item: (item[1], item[0]), default=(None, 0))
        word_total = sum(words.values())
        return {
            "tasks": len(units),
            "templates": len(self._realized["template"]),
            "task_entropy_bits": round(_entropy(units.values()), 4),
            "task_entropy_normalized": round(_entropy(units.values()) / math.log2(len(units)), 4)
            if len(units) > 1
            else 0.0,
            "largest_task": largest[0],
            "largest_task_share": round(largest[1] / total, 4) if total else 0.0,
            "leading_words": {
                "distinct": len(words),
                "entropy_bits": round(_entropy(words.values()), 4),
                "top": {
                    w: round(c / word_total, 4)
                    for w, c in sorted(words.items(), key=lambda item: (-item[1], item[0]))[:10]
                },
            },
        }


def _entropy(counts: Iterable[int]) -> float:
    values = np.array([c for c in counts if c > 0], dtype=np.float64)
    if values.sum() == 0:
        return 0.0
    p = values / values.sum()
    return float(-(p * np.log2(p)).sum())


def _first_rows(codes: np.ndarray, size: int) -> np.ndarray:
    first = np.full(size, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first


def _first_user_turn(table: pa.Table) -> pa.Array:
    messages = table.column("messages").combine_chunks()
    if messages.null_count == len(messages):
        return pa.array([""] * len(messages), pa.string())
    first = pc.list_element(
        pc.fill_null(messages, pa.scalar([{"role": "user", "content": ""}], messages.type)), 0
    )
    return pc.fill_null(pc.struct_field(first, "content"), "")
