"""Quality rules for the ``quality`` stage, one module per rule family.

A rule is a small object with a ``Params`` model (its recipe key under ``quality:``) and a
``check(view) -> RuleResult``: a boolean ``fail`` per row, the score columns it computed (written on
kept rows too, so thresholds can be re-tuned with a query) and a human-readable detail per row.
Rules never drop anything themselves; the stage combines them and gives every drop a reason.

Rules are discovered (``discover_rules``): a ``Rule`` subclass with a ``name`` defined in any module
of this package (not one starting with ``_``) is a recipe key of the stage, so adding a rule is one
module and one test, with no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.errors import StageError
from curate.util.text import ASSISTANT_ROLES, count_words, matching_text, record_text

_NULL_STR = pa.scalar(None, pa.string())


class RuleParams(BaseModel):
    """Base of every rule's params. ``rule: false`` / ``rule: true`` is shorthand for ``enabled``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(
        True, description="Run this rule; the rule key set to true or false is shorthand."
    )

    @model_validator(mode="before")
    @classmethod
    def _bool_shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        return value


class OffByDefault(RuleParams):
    enabled: bool = Field(
        False,
        description="Run this rule (off by default); the rule key set to true or false is shorthand.",
    )


@dataclass
class RuleResult:
    """What one rule found: ``fail`` per row, score columns, and a detail string per row."""

    fail: pa.Array
    scores: dict[str, pa.Array] = field(default_factory=dict)
    detail: pa.Array | None = None
    reason: pa.Array | str | None = None  # defaults to the rule's name


class TextView:
    """The text columns of a batch, prepared once and shared by every rule."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.num_rows = table.num_rows

    def column(self, name: str) -> pa.Array:
        col = self.table.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        return pc.fill_null(col, "")

    @cached_property
    def instruction(self) -> pa.Array:
        return self.column("instruction")

    @cached_property
    def input(self) -> pa.Array:
        return self.column("input")

    @cached_property
    def output(self) -> pa.Array:
        return self.column("output")

    @cached_property
    def assistant(self) -> pa.Array:
        """Every assistant turn joined by blank lines (the output for single-turn rows)."""
        return record_text(
            self.table,
            ["output", "messages"],
            separator="\n\n",
            roles=ASSISTANT_ROLES,
            prefer_messages=True,
        )

    @cached_property
    def output_stripped(self) -> pa.Array:
        return pc.utf8_trim_whitespace(self.output)

    def words(self, name: str) -> pa.Array:
        return _word_counts(getattr(self, name))

    @cached_property
    def output_words(self) -> pa.Array:
        return _word_counts(self.output)

    @cached_property
    def output_matching(self) -> pa.Array:
        return matching_text(self.output)

    @cached_property
    def instruction_matching(self) -> pa.Array:
        return matching_text(self.instruction)

    @cached_property
    def input_matching(self) -> pa.Array:
        return matching_text(self.input)


def _word_counts(values: pa.Array) -> pa.Array:
    return count_words(values)  # as pc.count_substring_regex(values, r"\S+"), faster


class Rule:
    """One quality rule. Subclasses set ``name`` (the recipe key and default reason), ``Params``,
    ``description`` (the recipe reference's text for the key) and ``order`` (the reason priority:
    rules run by ``(order, name)`` and a row failing several is rejected for the first)."""

    name: ClassVar[str] = ""
    order: ClassVar[int] = 1000
    description: ClassVar[str] = ""
    Params: ClassVar[type[RuleParams]] = RuleParams

    def __init__(self, params: RuleParams) -> None:
        self.params = params

    def check(self, view: TextView) -> RuleResult:
        raise NotImplementedError


def detail_where(fail: pa.Array, text: pa.Array | str) -> pa.Array:
    """Detail strings on failing rows, null elsewhere."""
    if isinstance(text, str):
        text = pa.array([text] * len(fail), pa.string())
    return pc.if_else(fail, text, _NULL_STR)


def detail_on(fail: pa.Array, build: Callable[..., pa.Array], *columns: pa.Array) -> pa.Array:
    """Detail strings built on the failing rows only (``build`` gets those rows of ``columns``),
    null elsewhere: the rows that pass cost nothing."""
    failing = pc.fill_null(fail, False)
    index = pc.indices_nonzero(failing)
    empty = pa.nulls(len(fail), pa.string())
    if len(index) == 0:
        return empty
    built = build(*(pc.take(column, index) for column in columns))
    return pc.replace_with_mask(empty, failing, pc.cast(built, pa.string()))


def true_where(mask: pa.Array, test: Callable[..., pa.Array], *columns: pa.Array) -> pa.Array:
    """``test`` (a boolean array of its rows) on the rows where ``mask`` is true; false elsewhere."""
    masked = pc.fill_null(mask, False)
    index = pc.indices_nonzero(masked)
    result = pa.array([False] * len(mask), pa.bool_())
    if len(index) == 0:
        return result
    found = test(*(pc.take(column, index) for column in columns))
    return pc.replace_with_mask(result, masked, pc.fill_null(found, False))


def matches_where(mask: pa.Array, column: pa.Array, pattern: str) -> pa.Array:
    """``pc.match_substring_regex(column, pattern)`` on the rows where ``mask`` is true, false
    elsewhere: an exception to a rule is only looked for on the rows the rule still fails."""
    return true_where(mask, lambda text: pc.match_substring_regex(text, pattern), column)


def clip(values: pa.Array, width: int = 60) -> pa.Array:
    """Short one-line excerpt for details."""
    one_line = pc.replace_substring_regex(values, r"\s+", " ")
    short = pc.utf8_slice_codeunits(one_line, 0, width)
    longer = pc.greater(pc.utf8_length(one_line), width)
    return pc.if_else(longer, pc.binary_join_element_wise(short, "…", ""), short)


def compile_alternation(phrases: list[str]) -> str:
    """A case-insensitive RE2 alternation with word boundaries; ``'`` matches straight or curly quotes."""
    parts = []
    for phrase in sorted({p.strip().lower() for p in phrases if p.strip()}, key=len, reverse=True):
        escaped = _re2_escape(phrase).replace("'", "['’]")
        escaped = escaped.replace(" ", r"\s+")
        parts.append(escaped)
    return r"(?i)\b(?P<m>" + "|".join(parts) + r")\b" if parts else r"(?P<m>$^)"


def _re2_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch.isalnum() or ch in " '’":
            out.append(ch)
        else:
            out.append("\\" + ch)
    return "".join(out)


def first_match(values: pa.Array, pattern: str) -> pa.Array:
    """The first match of a pattern with one named group ``m`` (null when none)."""
    if len(values) == 0:
        return pa.array([], pa.string())
    extracted = pc.extract_regex(values, pattern)
    return pc.if_else(pc.is_valid(extracted), pc.struct_field(extracted, [0]), _NULL_STR)


@cache
def discover_rules() -> tuple[type[Rule], ...]:
    """Every named ``Rule`` subclass defined in a module of this package, sorted by ``(order, name)``.

    Only classes defined in the package count (a rule imported into another module is found once, a
    subclass defined elsewhere not at all); modules whose name starts with ``_`` are skipped.
    """
    found: dict[str, type[Rule]] = {}
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        if any(part.startswith("_") for part in info.name[len(__name__) + 1 :].split(".")):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if not (
                isinstance(value, type)
                and issubclass(value, Rule)
                and value.name
                and value.__module__ == module.__name__
            ):
                continue
            other = found.setdefault(value.name, value)
            if other is not value:
                raise StageError(
                    f"two quality rules share the name {value.name!r}: "
                    f"{other.__module__}.{other.__qualname__} and "
                    f"{value.__module__}.{value.__qualname__}"
                )
    return tuple(sorted(found.values(), key=lambda rule: (rule.order, rule.name)))
