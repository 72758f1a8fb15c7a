"""The ``pii`` stage: find personal data and secrets, redact them (or drop the row, or flag it).

Recipe::

    - pii: {}                                          # redact every type, allow-lists on
    - pii: {actions: {card: drop, secret: drop, ip: flag}, allow: [support@acme.com]}
    - pii: {patterns: {employee_id: "EMP-\\d{6}"}}     # a type of your own

Types: ``email``, ``phone`` (validated by ``phonenumbers``), ``ip`` (public addresses only),
``card`` (Luhn and issuer prefix), ``iban`` (mod-97), ``secret`` (``detect-secrets``' key formats,
private-key blocks, high-entropy ``password=`` assignments), and any ``patterns`` of your own. Every
field and every conversation turn is scanned. A redacted value becomes a typed placeholder
(``<EMAIL>``, ``<EMAIL_2>`` for a second address), the same one for the same value throughout the
record. What was found is recorded without the text itself: ``pii_spans`` on kept rows (type,
field, turn, offsets into the original text, action, a keyed hash of the value) and the same list
as JSON in the reject detail; ``curate query RUN "SELECT * FROM pii"`` shows both. With
``scrub_run`` (default) the run directory keeps no redacted value anywhere: the rejects of every
other stage are redacted too, and the stage checkpoints are removed once the run is written.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.errors import StageError
from curate.lib.pii.detectors import (
    DEFAULT_ALLOWED_NETWORKS,
    TYPES,
    detectors,
    pattern_detector,
)
from curate.lib.pii.scanner import PRIORITY, Found, Placeholders, Scanner, redact
from curate.stages.base import Decision, FilterStage, StageParams, StageResult, apply_decision
from curate.util.arrow import with_columns

Action = Literal["redact", "drop", "flag"]
TEXT_FIELDS = ("instruction", "input", "output", "rationale")
SPAN_TYPE = pa.struct(
    [
        ("type", pa.string()),
        ("field", pa.string()),
        ("turn", pa.int32()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("action", pa.string()),
        ("hash", pa.string()),
    ]
)
SPANS_COLUMN = "pii_spans"
_NULL = pa.scalar(None, pa.string())


class Pii(FilterStage):
    """Redact, drop or flag personal data and secrets in every field and turn.

    Writes ``pii_spans`` (the audit, no raw values) on kept rows. Reasons ``pii_<type>`` for rows
    whose type's action is ``drop``; their detail is the audit as JSON.
    """

    name: ClassVar[str] = "pii_v1"

    class Params(StageParams):
        types: list[str] = Field(
            default_factory=lambda: list(TYPES),
            description="Types to look for: email, phone, ip, card, iban, secret (and the names "
            "of your patterns, which are always on).",
        )
        actions: dict[str, Action] = Field(
            default_factory=dict,
            description="Per type: redact (typed placeholder), drop (reject the row, reason "
            "pii_<type>) or flag (record only). Types not named: default_action.",
        )
        default_action: Action = Field("redact", description="Action of types not in actions.")
        allow: list[str] = Field(
            default_factory=list,
            description="Values never treated as personal (exact, case-insensitive); for e-mail "
            "also a domain ('acme.com'). Placeholder domains (example.com, .test, .invalid) and "
            "documentation IP ranges are always allowed.",
        )
        allow_networks: list[str] = Field(
            default_factory=lambda: list(DEFAULT_ALLOWED_NETWORKS),
            description="IP ranges that are not personal (private, loopback, documentation).",
        )
        phone_regions: list[str] = Field(
            default_factory=lambda: ["US", "GB"],
            description="Regions whose national phone formats are recognised; numbers in "
            "international format (+CC ...) are found for every country.",
        )
        patterns: dict[str, str] = Field(
            default_factory=dict,
            description="Types of your own: name -> Python regex (group 1 if it has one).",
        )
        salt: str = Field(
            "curate-pii",
            description="Key of the audit's value hashes; set a secret of your own so that "
            "hashes cannot be matched against guessed values.",
        )
        scrub_run: bool = Field(
            True,
            description="Redact found values in every stage's rejects too, and remove the stage "
            "checkpoints once the run is written, so no redacted value stays in the run directory.",
        )

        @field_validator("types")
        @classmethod
        def _known_types(cls, types: list[str]) -> list[str]:
            unknown = sorted(set(types) - set(TYPES))
            if unknown:
                raise ValueError(f"unknown types {unknown}; known: {', '.join(TYPES)}")
            return types

        @field_validator("patterns")
        @classmethod
        def _compiles(cls, patterns: dict[str, str]) -> dict[str, str]:
            for name, pattern in patterns.items():
                if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                    raise ValueError(f"pattern name {name!r}: use lower-case letters, digits, _")
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"pattern {name!r} is not a valid regex: {exc}") from None
            return patterns

        @field_validator("phone_regions")
        @classmethod
        def _regions(cls, regions: list[str]) -> list[str]:
            import phonenumbers

            known = phonenumbers.SUPPORTED_REGIONS
            unknown = sorted({r.upper() for r in regions} - known)
            if unknown:
                raise ValueError(f"unknown phone regions {unknown} (ISO 3166 codes such as US, GB)")
            return [r.upper() for r in regions]

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._scanner: Scanner | None = None
        self._found: Counter[str] = Counter()

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the parameters and build their own detectors (closures do not pickle).
        return {**self.__dict__, "_scanner": None}

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        if self._scanner is not None:
            return
        p = self.params
        try:
            chosen = {
                name: detector
                for name, detector in detectors(p.phone_regions, p.allow_networks).items()
                if name in p.types
            }
            for name, pattern in p.patterns.items():
                chosen[name] = pattern_detector(name, pattern)
        except (ValueError, ImportError) as exc:  # a bad regex or network in the params
            raise StageError(f"pii: {exc}") from exc
        self._scanner = Scanner(chosen, p.allow, p.salt)

    def action(self, kind: str) -> str:
        return self.params.actions.get(kind, self.params.default_action)

    def check_recipe(self, sources: Any) -> None:
        known = set(self.params.types) | set(self.params.patterns)
        unknown = sorted(set(self.params.actions) - known)
        if unknown:
            raise StageError(
                f"pii: actions name {unknown}, which is not a type looked for ({sorted(known)})"
            )

    @property
    def scanner(self) -> Scanner:
        self.prepare()
        assert self._scanner is not None
        return self._scanner

    # ------------------------------------------------------------------ the stage
    def run(self, table: pa.Table) -> StageResult:
        redacted, spans = self._redact(table, hidden=self._hidden())
        drop_reason: list[str | None] = [None] * table.num_rows
        detail: list[str | None] = [None] * table.num_rows
        audit: list[list[dict[str, Any]] | None] = [None] * table.num_rows
        for row, entries in spans.items():
            audit[row] = entries
            dropping = [e["type"] for e in entries if e["action"] == "drop"]
            self._found.update(f"{e['type']}:{e['action']}" for e in entries)
            if dropping:
                first = min(dropping, key=_rank)
                drop_reason[row] = f"pii_{first}"
                detail[row] = json.dumps({"drop": first, "spans": entries}, sort_keys=True)
        reason = pa.array(drop_reason, pa.string())
        decision = Decision(
            keep=pc.is_null(reason) if table.num_rows else pa.array([], pa.bool_()),
            reason=reason,
            detail=pa.array(detail, pa.string()),
        )
        labeled = with_columns(redacted, ((SPANS_COLUMN, pa.array(audit, pa.list_(SPAN_TYPE))),))
        return apply_decision(labeled, decision, self.name)

    def decide(self, table: pa.Table) -> Decision:  # pragma: no cover - run() decides
        raise NotImplementedError

    def _hidden(self) -> set[str]:
        kinds = set(self.params.types) | set(self.params.patterns)
        return {kind for kind in kinds if self.action(kind) != "flag"}

    # ------------------------------------------------------------------ the whole run
    def scrubs_run(self) -> bool:
        return self.params.scrub_run

    def scrub(self, table: pa.Table) -> pa.Table:
        """Any table the run writes (another stage's rejects): found values of the redacted and
        dropped types replaced by placeholders, in the text fields, the turns, ``meta`` (the raw
        line of an ingest reject) and ``detail``."""
        extra = tuple(c for c in ("meta", "detail") if c in table.column_names)
        redacted, _ = self._redact(table, hidden=self._hidden(), extra_fields=extra)
        return redacted

    # ------------------------------------------------------------------ redaction
    def _redact(
        self, table: pa.Table, hidden: set[str], extra_fields: tuple[str, ...] = ()
    ) -> tuple[pa.Table, dict[int, list[dict[str, Any]]]]:
        scanner = self.scanner
        fields = [f for f in (*TEXT_FIELDS, *extra_fields) if f in table.column_names]
        columns = {f: table.column(f).combine_chunks() for f in fields}
        found = {f: scanner.scan(columns[f]) for f in fields}
        turns = _Turns(table) if "messages" in table.column_names else None
        turn_found = scanner.scan(turns.contents) if turns is not None else {}
        affected = {row for by_row in found.values() for row in by_row}
        if turns is not None:
            affected |= {turns.parents[index] for index in turn_found}
        rows = sorted(affected)
        new_field_values: dict[str, dict[int, str]] = {f: {} for f in fields}
        new_turn_values: dict[int, str] = {}
        audit: dict[int, list[dict[str, Any]]] = {}
        turn_rows: dict[int, list[int]] = {}
        for index in turn_found:
            turn_rows.setdefault(turns.parents[index], []).append(index)  # type: ignore[union-attr]
        for row in rows:
            placeholder = Placeholders()
            entries: list[dict[str, Any]] = []
            for f in fields:
                spans = found[f].get(row)
                if not spans:
                    continue
                text = columns[f][row].as_py()
                entries.extend(self._entries(spans, text, f, None))
                new_field_values[f][row] = redact(text, spans, placeholder, hidden)
            for index in turn_rows.get(row, []):
                assert turns is not None
                spans = turn_found[index]
                text = turns.contents[index].as_py()
                turn = index - turns.first_turn[row]
                entries.extend(self._entries(spans, text, "messages", turn))
                new_turn_values[index] = redact(text, spans, placeholder, hidden)
            audit[row] = entries
        out = table
        for f in fields:
            if new_field_values[f]:
                out = out.set_column(
                    out.column_names.index(f),
                    table.schema.field(f),
                    _replace(columns[f], new_field_values[f]),
                )
        if turns is not None and new_turn_values:
            out = out.set_column(
                out.column_names.index("messages"),
                table.schema.field("messages"),
                turns.rebuild(_replace(turns.contents, new_turn_values)),
            )
        return out, audit

    def _entries(
        self, spans: list[Found], text: str, field: str, turn: int | None
    ) -> list[dict[str, Any]]:
        return [
            {
                "type": span.type,
                "field": field,
                "turn": turn,
                "start": span.start,
                "end": span.end,
                "action": self.action(span.type),
                "hash": self.scanner.digest(text[span.start : span.end]),
            }
            for span in spans
        ]

    def manifest_info(self) -> dict[str, Any]:
        found: dict[str, dict[str, int]] = {}
        for key, count in sorted(self._found.items()):
            kind, action = key.split(":")
            found.setdefault(kind, {})[action] = count
        return {"found": found, "salted_hashes": True}


def _rank(kind: str) -> int:
    return PRIORITY.index(kind) if kind in PRIORITY else len(PRIORITY)


def _replace(values: pa.Array, changes: dict[int, str]) -> pa.Array:
    rows = sorted(changes)
    mask = [False] * len(values)
    for row in rows:
        mask[row] = True
    return pc.replace_with_mask(
        values, pa.array(mask, pa.bool_()), pa.array([changes[r] for r in rows], values.type)
    )


class _Turns:
    """The turns of a ``messages`` column, flattened, with the row each belongs to."""

    def __init__(self, table: pa.Table) -> None:
        lists = table.column("messages").combine_chunks()
        self.lists = lists
        self.turns = lists.flatten()
        self.contents = (
            self.turns.field("content") if len(self.turns) else pa.array([], pa.string())
        )
        self.parents = pc.list_parent_indices(lists).to_pylist() if len(self.turns) else []
        offsets = lists.offsets
        base = offsets[0].as_py() if len(offsets) else 0
        self.offsets = pc.subtract(offsets, pa.scalar(base, offsets.type))
        self.first_turn = self.offsets.to_pylist()

    def rebuild(self, contents: pa.Array) -> pa.Array:
        struct = self.turns
        fields = [
            contents if struct.type.field(i).name == "content" else struct.field(i)
            for i in range(struct.type.num_fields)
        ]
        values = pa.StructArray.from_arrays(
            fields, fields=[struct.type.field(i) for i in range(struct.type.num_fields)]
        )
        return pa.ListArray.from_arrays(
            self.offsets, values, type=self.lists.type, mask=pc.is_null(self.lists)
        )
