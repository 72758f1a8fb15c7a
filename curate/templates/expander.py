"""Template expansion over Arrow batches: balanced seeded assignment, few-shot pools, rendering.

Assignment (FLAN style): records are grouped by (task, set of templates that apply to them).
Within a group the templates are shuffled with a seed derived from the group's name, and the
group's records take them round-robin in stream order, ``per_record`` consecutive slots each.
Every template of a group is therefore used ``floor`` or ``ceil`` of its share: balanced within
±1, whatever the batch boundaries. Few-shot exemplars come from a per-(task, template) pool
chosen in :meth:`Expander.fit` (NIv2 positive examples first), never the record itself.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.records import MESSAGE_TYPE, RECORD_SCHEMA, compute_ids
from curate.templates.render import (
    RecordContext,
    RenderError,
    TokenCounter,
    may_have_options,
    record_context,
    render,
)
from curate.templates.render import count_tokens as approximate_tokens
from curate.templates.select import (
    applies_mask,
    has_text,
    runs,
    seeded_permutation,
)
from curate.templates.spec import EXAMPLE_FIELDS, Family, FewShot, Template
from curate.util.hashing import splitmix64, stable_seed

_CONTEXT_COLUMNS = ("id", *EXAMPLE_FIELDS)
_POSITIVE = '"niv2_part": "positive_example"'
_ZERO_SHOT = {"fs_opt": "zs_opt", "fs_noopt": "zs_noopt"}


@dataclass
class Prepared:
    """What a batch looks like to the expander: eligibility, template pools, groups."""

    n: int
    passthrough_reason: list[str | None]  # per row; None when templates apply
    matrix: np.ndarray  # (rows, templates) bool: template applies to row
    contexts: dict[int, RecordContext]  # rows whose options were parsed
    task_names: list[str]  # dictionary of task keys
    task_codes: np.ndarray  # per row
    positive: np.ndarray  # per row: an NIv2 positive example
    group_names: list[str] = field(default_factory=list)
    group_pools: list[np.ndarray] = field(default_factory=list)
    group_codes: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )  # -1: no group


@dataclass
class Expanded:
    """One batch after expansion, plus the (record, template) pairs that failed to render."""

    table: pa.Table
    failed: pa.Table  # original rows (with template_id set) that failed
    reasons: list[str]
    details: list[str]


def task_keys(table: pa.Table) -> pa.Array:
    """The task a record belongs to for balancing and few-shot: task, else category, else source."""

    def present(name: str) -> pa.Array:
        column = table.column(name).combine_chunks()
        return pc.if_else(
            pc.equal(pc.fill_null(column, ""), ""), pa.scalar(None, pa.string()), column
        )

    return pc.coalesce(
        present("task"), present("category"), table.column("source").combine_chunks()
    )


class Expander:
    """Expand records with template families. ``fit`` over the stream, then ``expand`` each batch."""

    def __init__(
        self,
        families: list[Family],
        *,
        seed: int = 0,
        per_record: int = 1,
        parse_options: bool = True,
        shots: int | None = None,
        max_chars: int | None = None,
        max_tokens: int | None = None,
        pool_size: int = 32,
        drop_unmatched: bool = False,
        count_tokens: TokenCounter = approximate_tokens,
    ) -> None:
        self.families = families
        self.count_tokens = count_tokens
        self.drop_unmatched = drop_unmatched
        self.templates: list[Template] = [t for f in families for t in f.templates]
        self.seed = seed
        self.per_record = per_record
        self.parse_options = parse_options
        self.pool_size = pool_size
        self._few_shot: dict[int, FewShot] = {}
        for index, template in enumerate(self.templates):
            if template.few_shot is None:
                continue
            update: dict[str, Any] = {}
            if shots is not None:
                update["k"] = shots
            if max_chars is not None:
                update["max_chars"] = max_chars
            if max_tokens is not None:
                update["max_tokens"] = max_tokens
            self._few_shot[index] = template.few_shot.model_copy(update=update)
        self.reset()

    def reset(self) -> None:
        self._offsets: dict[str, int] = {}
        # (task, template) -> (positive examples, other candidates), each in seeded order.
        self._pools: dict[tuple[str, int], tuple[list[RecordContext], list[RecordContext]]] = {}
        self.group_totals: Counter[str] = Counter()
        # Per batch of the fit: where each of its groups' round-robin starts (the group's rows
        # in earlier batches), so that any one batch can be expanded on its own (``seek``).
        self._batch_starts: list[dict[str, int]] = []
        self.stats = _Stats()

    # --- state a copy in another process needs ----------------------------------------------

    def fitted_state(self) -> dict[str, Any]:
        """What ``fit`` learned (few-shot pools, group counts, per-batch starts): picklable."""
        return {
            "pools": self._pools,
            "group_totals": self.group_totals,
            "batch_starts": self._batch_starts,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take back :meth:`fitted_state` (in a copy of the expander built from the same params)."""
        self.reset()
        self._pools = state["pools"]
        self.group_totals = state["group_totals"]
        self._batch_starts = state["batch_starts"]

    def seek(self, batch: int) -> None:
        """Continue the round-robin where batch ``batch`` of the fit started: expanding it then
        gives the rows the in-order expansion of every batch gives for it."""
        if not 0 <= batch < len(self._batch_starts):
            raise IndexError(f"batch {batch} was not seen by fit ({len(self._batch_starts)} were)")
        self._offsets.update(self._batch_starts[batch])

    # --- per batch ---------------------------------------------------------------------------

    def prepare(self, table: pa.Table) -> Prepared:
        n = table.num_rows
        messages = np.asarray(
            pc.is_valid(table.column("messages")).to_numpy(zero_copy_only=False), dtype=bool
        )
        templated = np.asarray(
            pc.is_valid(table.column("template_type")).to_numpy(zero_copy_only=False), dtype=bool
        )
        has_output = has_text(table.column("output"))
        has_prompt = has_text(table.column("instruction")) | has_text(table.column("input"))
        reason = np.full(n, None, dtype=object)
        reason[~has_prompt] = "empty_instruction"
        reason[~has_output] = "empty_output"
        reason[templated] = "already_templated"
        reason[messages] = "has_messages"
        eligible = has_prompt & has_output & ~templated & ~messages
        contexts: dict[int, RecordContext] = {}
        has_options = np.zeros(n, dtype=bool)
        if self.parse_options or pc.any(pc.is_valid(table.column("options"))).as_py():
            candidate = pc.is_valid(table.column("options"))
            if self.parse_options:
                candidate = pc.or_(
                    candidate,
                    pc.or_(
                        may_have_options(table.column("instruction")),
                        may_have_options(table.column("input")),
                    ),
                )
            rows = np.flatnonzero(
                np.asarray(
                    pc.fill_null(candidate, False).to_numpy(zero_copy_only=False), dtype=bool
                )
                & eligible
            )
            if len(rows):
                data = table.select(list(_CONTEXT_COLUMNS)).take(pa.array(rows)).to_pylist()
                for row, values in zip(rows.tolist(), data, strict=True):
                    ctx = record_context(values, self.parse_options)
                    contexts[row] = ctx
                    has_options[row] = bool(ctx.options)
        matrix = np.zeros((n, len(self.templates)), dtype=bool)
        column = 0
        for family in self.families:
            family_mask = eligible & applies_mask(table, has_options, family.spec.applies_to)
            for template in family.templates:
                mask = family_mask
                if template.spec.applies_to is not None and family_mask.any():
                    mask = family_mask & applies_mask(table, has_options, template.spec.applies_to)
                matrix[:, column] = mask
                column += 1
        no_template = eligible & ~matrix.any(axis=1)
        reason[no_template] = "no_template"
        keys = pc.dictionary_encode(task_keys(table))
        task_names = [str(v) for v in keys.dictionary.to_pylist()]
        task_codes = np.asarray(keys.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        meta = table.column("meta")
        positive = np.asarray(
            pc.fill_null(pc.match_substring(meta, _POSITIVE), False).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        prepared = Prepared(n, reason.tolist(), matrix, contexts, task_names, task_codes, positive)
        self._group(prepared)
        return prepared

    def _group(self, prep: Prepared) -> None:
        """Group rows by (task, pool of applicable templates); rows with no pool get -1."""
        codes = np.full(prep.n, -1, dtype=np.int64)
        active = np.flatnonzero(prep.matrix.any(axis=1))
        if len(active) == 0:
            prep.group_codes = codes
            return
        packed = np.packbits(prep.matrix[active], axis=1)
        pools, pool_codes = unique_rows(packed)
        pool_templates = [np.flatnonzero(np.unpackbits(p)[: len(self.templates)]) for p in pools]
        combined = prep.task_codes[active] * len(pools) + pool_codes
        uniq, inverse = np.unique(combined, return_inverse=True)
        codes[active] = inverse.reshape(-1)
        for value in uniq.tolist():
            task, pool = divmod(value, len(pools))
            templates = pool_templates[pool]
            prep.group_names.append(
                f"{prep.task_names[task]}\x1f{','.join(self.templates[t].id for t in templates)}"
            )
            prep.group_pools.append(templates)
        prep.group_codes = codes

    # --- the stream pass ------------------------------------------------------------------------

    def fit(self, batches: Iterable[pa.Table]) -> None:
        """Count groups and choose few-shot exemplar pools over the whole stream."""
        self.reset()
        fs_templates = sorted(self._few_shot)
        candidates: dict[tuple[str, int], list[tuple[bool, int, RecordContext]]] = defaultdict(list)
        seen: Counter[tuple[str, int]] = Counter()
        for batch in batches:
            prep = self.prepare(batch)
            starts: dict[str, int] = {}
            for code, count in zip(
                *np.unique(prep.group_codes[prep.group_codes >= 0], return_counts=True), strict=True
            ):
                name = prep.group_names[int(code)]
                starts[name] = self.group_totals[name]
                self.group_totals[name] += int(count)
            self._batch_starts.append(starts)
            for t in fs_templates:
                rows = np.flatnonzero(prep.matrix[:, t])
                if len(rows) == 0:
                    continue
                order = np.argsort(prep.task_codes[rows], kind="stable")
                rows = rows[order]
                codes = prep.task_codes[rows]
                for begin, end in runs(codes):
                    sub = rows[begin:end]
                    task = prep.task_names[int(codes[begin])]
                    key = (task, t)
                    ranks = np.arange(seen[key], seen[key] + len(sub), dtype=np.uint64)
                    seen[key] += len(sub)
                    draws = splitmix64(
                        ranks ^ stable_seed(self.seed, f"pool\x1f{task}\x1f{self.templates[t].id}")
                    )
                    negative = ~prep.positive[sub]
                    best = np.lexsort((draws, negative))[: self.pool_size]
                    new = [
                        (bool(negative[i]), int(draws[i]), self._context(batch, prep, int(sub[i])))
                        for i in best.tolist()
                    ]
                    merged = sorted(candidates[key] + new, key=lambda item: (item[0], item[1]))
                    candidates[key] = merged[: self.pool_size]
        for key, items in candidates.items():
            positives = [ctx for negative, _, ctx in items if not negative]
            others = [ctx for negative, _, ctx in items if negative]
            self._pools[key] = (positives, others)

    def _context(self, table: pa.Table, prep: Prepared, row: int) -> RecordContext:
        ctx = prep.contexts.get(row)
        if ctx is None:
            values = table.select(list(_CONTEXT_COLUMNS)).slice(row, 1).to_pylist()[0]
            ctx = record_context(values, parse=False)
        return ctx

    def expand(self, table: pa.Table) -> Expanded:
        """Expand one batch (batches in the order ``fit`` saw them)."""
        prep = self.prepare(table)
        self.stats.records_in += prep.n
        for reason in prep.passthrough_reason:
            if reason is not None:
                self.stats.passthrough[reason] += 1
        pair_rows, pair_templates, pair_keys, pair_slot = self._assign(prep)
        order = np.lexsort((pair_slot, pair_rows))
        pair_rows, pair_templates, pair_keys = (
            pair_rows[order],
            pair_templates[order],
            pair_keys[order],
        )
        unique_rows = np.unique(pair_rows)
        self.stats.templated_records += len(unique_rows)
        contexts = dict(prep.contexts)
        missing = [r for r in unique_rows.tolist() if r not in contexts]
        if missing:
            data = (
                table.select(list(_CONTEXT_COLUMNS)).take(pa.array(missing, pa.int64())).to_pylist()
            )
            for row, values in zip(missing, data, strict=True):
                contexts[row] = record_context(values, parse=False)
        ok_rows: list[int] = []
        prompts: list[str] = []
        completions: list[str] = []
        options: list[list[str] | None] = []
        template_ids: list[str] = []
        template_types: list[str] = []
        inverted: list[bool] = []
        exemplar_ids: list[list[str]] = []
        bad_rows: list[int] = []
        bad_templates: list[str | None] = []
        reasons: list[str] = []
        details: list[str] = []
        for row, t, draw in zip(
            pair_rows.tolist(), pair_templates.tolist(), pair_keys.tolist(), strict=True
        ):
            template = self.templates[t]
            ctx = contexts[row]
            few_shot = self._few_shot.get(t)
            exemplars = self._exemplars(ctx, t, draw, few_shot) if few_shot is not None else None
            try:
                result = render(template, ctx, self.seed, exemplars, few_shot, self.count_tokens)
            except RenderError as exc:
                bad_rows.append(row)
                bad_templates.append(template.id)
                reasons.append(exc.reason)
                details.append(exc.detail)
                self.stats.rejected[exc.reason] += 1
                continue
            kind = template.type
            if few_shot is not None and not result.exemplar_ids and kind in _ZERO_SHOT:
                kind = _ZERO_SHOT[kind]  # every shot was dropped or none was available
                self.stats.zero_shot_fallback += 1
            ok_rows.append(row)
            prompts.append(result.prompt)
            completions.append(result.completion)
            options.append(result.options)
            template_ids.append(template.id)
            template_types.append(kind)
            inverted.append(template.inverted)
            exemplar_ids.append(result.exemplar_ids)
            self.stats.count(template, kind, len(result.exemplar_ids), result.shots_dropped)
        expanded = self._build(
            table,
            ok_rows,
            prompts,
            completions,
            options,
            template_ids,
            template_types,
            inverted,
            exemplar_ids,
        )
        unmatched = np.equal(np.array(prep.passthrough_reason, dtype=object), "no_template")
        passthrough_mask = prep.group_codes < 0
        if self.drop_unmatched and unmatched.any():
            passthrough_mask &= ~unmatched
            for row in np.flatnonzero(unmatched).tolist():
                bad_rows.append(row)
                bad_templates.append(None)
                reasons.append("no_template")
                details.append("no template family applies to this record")
            self.stats.rejected["no_template"] += int(unmatched.sum())
            self.stats.passthrough["no_template"] -= int(unmatched.sum())
        passthrough = np.flatnonzero(passthrough_mask)
        kept = table.take(pa.array(passthrough, pa.int64()))
        combined = pa.concat_tables([expanded, kept]) if kept.num_rows else expanded
        positions = np.concatenate(
            [np.asarray(ok_rows, dtype=np.int64), passthrough.astype(np.int64)]
        )
        combined = combined.take(pa.array(np.argsort(positions, kind="stable"), pa.int64()))
        self.stats.rows_out += combined.num_rows
        failed = table.take(pa.array(bad_rows, pa.int64()))
        failed = _set(failed, "template_id", pa.array(bad_templates, pa.string()))
        failed = _set(failed, "parent_id", failed.column("id").combine_chunks())
        return Expanded(combined, failed, reasons, details)

    def _assign(self, prep: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(row, template, draw, slot) for every pair this batch produces; draws seed exemplar choice."""
        rows_out: list[np.ndarray] = []
        templates_out: list[np.ndarray] = []
        draws_out: list[np.ndarray] = []
        slots_out: list[np.ndarray] = []
        grouped = np.flatnonzero(prep.group_codes >= 0)
        codes = prep.group_codes[grouped]
        order = np.argsort(codes, kind="stable")
        grouped, codes = grouped[order], codes[order]
        for begin, end in runs(codes):
            code = int(codes[begin])
            rows = grouped[begin:end]
            name = prep.group_names[code]
            pool = prep.group_pools[code]
            size = len(pool)
            per = min(self.per_record, size)
            first = self._offsets.get(name, 0)
            self._offsets[name] = first + len(rows)
            ranks = np.arange(first, first + len(rows), dtype=np.int64)
            shuffled = pool[
                seeded_permutation(size, stable_seed(self.seed, f"templates\x1f{name}"))
            ]
            slots = ranks[:, None] * per + np.arange(per)[None, :]
            chosen = shuffled[slots % size]
            self.stats.balance(name, chosen.ravel(), self.templates)
            rows_out.append(np.repeat(rows, per))
            templates_out.append(chosen.ravel())
            slots_out.append(slots.ravel())
            draws_out.append(
                splitmix64(
                    slots.ravel().astype(np.uint64) ^ stable_seed(self.seed, f"shots\x1f{name}")
                )
            )
        if not rows_out:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.uint64), empty
        return (
            np.concatenate(rows_out),
            np.concatenate(templates_out),
            np.concatenate(draws_out),
            np.concatenate(slots_out),
        )

    def _exemplars(
        self, ctx: RecordContext, template: int, draw: int, few_shot: FewShot
    ) -> list[RecordContext]:
        """k exemplars of the record's task, never itself: positive examples first, then others."""
        task = ctx.values["task"] or ctx.values["category"] or ctx.values["source"]
        chosen: list[RecordContext] = []
        for pool in self._pools.get((task, template), ([], [])):
            size = len(pool)
            start = draw % size if size else 0
            for i in range(size):
                if len(chosen) == few_shot.k:
                    break
                candidate = pool[(start + i) % size]
                if candidate.id != ctx.id:
                    chosen.append(candidate)
        return chosen

    @staticmethod
    def _build(
        table: pa.Table,
        rows: list[int],
        prompts: list[str],
        completions: list[str],
        options: list[list[str] | None],
        template_ids: list[str],
        template_types: list[str],
        inverted: list[bool],
        exemplar_ids: list[list[str]],
    ) -> pa.Table:
        out = table.take(pa.array(rows, pa.int64()))
        parents = out.column("id").combine_chunks()
        messages = [
            [{"role": "user", "content": p}, {"role": "assistant", "content": c}]
            for p, c in zip(prompts, completions, strict=True)
        ]
        out = _set(out, "instruction", pa.array(prompts, pa.string()))
        out = _set(out, "input", pa.array([""] * len(rows), pa.string()))
        out = _set(out, "output", pa.array(completions, pa.string()))
        out = _set(out, "messages", pa.array(messages, pa.list_(MESSAGE_TYPE)))
        out = _set(out, "options", pa.array(options, RECORD_SCHEMA.field("options").type))
        out = _set(out, "template_id", pa.array(template_ids, pa.string()))
        out = _set(out, "template_type", pa.array(template_types, pa.string()))
        out = _set(out, "inverted", pa.array(inverted, pa.bool_()))
        out = _set(
            out, "exemplar_ids", pa.array(exemplar_ids, RECORD_SCHEMA.field("exemplar_ids").type)
        )
        out = _set(out, "parent_id", parents)
        return _set(out, "id", compute_ids(out))


def unique_rows(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(packed, axis=0, return_inverse=True)`` for a 2-D uint8 array, the same rows in
    the same order, an order of magnitude faster: each row as big-endian 64-bit words (whose
    order as numbers is the rows' byte order), one lexsort."""
    rows, width = packed.shape
    words = -(-width // 8)
    padded = np.zeros((rows, words * 8), np.uint8)
    padded[:, :width] = packed
    keys = padded.view(">u8").astype(np.uint64)
    order = np.lexsort(keys.T[::-1])  # lexsort's last key is the primary one
    ordered = keys[order]
    first = np.ones(rows, dtype=bool)
    first[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(rows, dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return packed[order[first]], inverse


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = table.column_names.index(name)
    field = table.schema.field(index)
    return table.set_column(index, field, values.cast(field.type))


@dataclass
class _Stats:
    """Counters for the manifest, accumulated over ``expand`` calls."""

    records_in: int = 0
    templated_records: int = 0
    rows_out: int = 0
    zero_shot_fallback: int = 0
    passthrough: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    templates: Counter[str] = field(default_factory=Counter)
    families: Counter[str] = field(default_factory=Counter)
    template_types: Counter[str] = field(default_factory=Counter)
    inverted: int = 0
    few_shot_rows: int = 0
    exemplars: int = 0
    shots_dropped: int = 0
    per_group: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, template: Template, kind: str, shots: int, dropped: int) -> None:
        self.templates[template.id] += 1
        self.families[template.family] += 1
        self.template_types[kind] += 1
        self.inverted += template.inverted
        if shots:
            self.few_shot_rows += 1
            self.exemplars += shots
        self.shots_dropped += dropped

    def merge(self, other: _Stats) -> None:
        """Add the counts of ``other`` (another copy's batches) to these."""
        self.records_in += other.records_in
        self.templated_records += other.templated_records
        self.rows_out += other.rows_out
        self.zero_shot_fallback += other.zero_shot_fallback
        self.inverted += other.inverted
        self.few_shot_rows += other.few_shot_rows
        self.exemplars += other.exemplars
        self.shots_dropped += other.shots_dropped
        for mine, theirs in (
            (self.passthrough, other.passthrough),
            (self.rejected, other.rejected),
            (self.templates, other.templates),
            (self.families, other.families),
            (self.template_types, other.template_types),
        ):
            mine.update(theirs)
        for group, counter in other.per_group.items():
            self.per_group.setdefault(group, Counter()).update(counter)

    def balance(self, group: str, chosen: np.ndarray, templates: list[Template]) -> None:
        counter = self.per_group.setdefault(group, Counter())
        for t, count in zip(*np.unique(chosen, return_counts=True), strict=True):
            counter[templates[int(t)].id] += int(count)

    def summary(self) -> dict[str, Any]:
        spreads = []
        for group, counter in self.per_group.items():
            pool_size = len(group.split("\x1f", 1)[1].split(","))
            counts = list(counter.values()) + [0] * (pool_size - len(counter))
            spreads.append(max(counts) - min(counts))
        return {
            "records_in": self.records_in,
            "templated_records": self.templated_records,
            "rows_out": self.rows_out,
            "passthrough": {k: v for k, v in sorted(self.passthrough.items()) if v},
            "rejected": dict(sorted(self.rejected.items())),
            "rows_per_family": dict(sorted(self.families.items())),
            "rows_per_template": dict(sorted(self.templates.items())),
            "template_types": dict(sorted(self.template_types.items())),
            "inverted_rows": self.inverted,
            "few_shot": {
                "rows": self.few_shot_rows,
                "exemplars": self.exemplars,
                "shots_dropped_for_budget": self.shots_dropped,
                "zero_shot_fallback": self.zero_shot_fallback,
            },
            "balance": {
                "groups": len(self.per_group),
                "max_spread": max(spreads, default=0),
            },
        }


__all__ = ["Expanded", "Expander", "Prepared", "task_keys"]
