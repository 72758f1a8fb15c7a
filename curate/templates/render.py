"""Rendering one record with one template: context, options, few-shot assembly, budget.

Each (record, template) render spends one :class:`~curate.templates.budget.Budget` (size, steps,
time, call depth); exceeding it rejects the pair with reason ``template_budget``.

Rendering is inherently per row (jinja2); everything around it (which rows, which template,
which exemplars) is decided vectorized in :mod:`curate.templates.expander`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from jinja2.exceptions import SecurityError

from curate.errors import RowReject, TemplateError
from curate.records import compute_ids, conform
from curate.templates.budget import (
    ACTIVE,
    UNBUDGETED,
    Budget,
    BudgetExceeded,
    activate,
    record_limit,
)
from curate.templates.compile import ENV
from curate.templates.options import (
    FIXED_STYLE,
    OptionsStyle,
    answer_index,
    parse_options,
    random_style,
)
from curate.templates.select import applies_mask
from curate.templates.spec import Family, FewShot, Template

_BLANK_LINES = re.compile(r"\n{3,}")
_GLOBALS: dict[str, Any] = dict(ENV.globals)
_TOKEN = re.compile(r"\w+|[^\w\s]")
_TEXT_FIELDS = (
    "id",
    "instruction",
    "input",
    "output",
    "rationale",
    "task",
    "category",
    "task_source",
    "source",
    "lang",
)


_LONG_FIELDS = ("instruction", "input", "output", "rationale")  # what a record's size budget counts


class RenderError(RowReject):
    """One (record, template) could not be rendered: becomes a reject with ``reason``.

    ``field`` and ``line``: where in the template it happened, when known (budgets).
    """

    def __init__(
        self, reason: str, detail: str, field: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(reason, detail)
        self.field = field
        self.line = line


@dataclass
class RecordContext:
    """What templates see of one record, before a template picks its options style."""

    values: dict[str, Any]
    options: list[str] = field(default_factory=list)
    answer: int | None = None  # index of the right option
    id: str = field(init=False)
    limit: int = field(init=False)  # the size budget of its renders (see record_limit)

    def __post_init__(self) -> None:
        self.id = str(self.values["id"])
        values = self.values
        chars = sum(len(values.get(name) or "") for name in _LONG_FIELDS)
        self.limit = record_limit(chars + sum(len(str(o)) for o in self.options))


def record_context(row: dict[str, Any], parse: bool = True) -> RecordContext:
    """Template variables of one record (text fields as "" when missing) and its options.

    Options come from the record's ``options`` column, else (``parse``) from an "Options:" block
    written at the end of the input or instruction; they count only when the output names one.
    """
    values: dict[str, Any] = {name: row.get(name) or "" for name in _TEXT_FIELDS}
    values["question"] = values["instruction"]
    options: list[str] = list(row.get("options") or [])
    index = answer_index(values["output"], options) if options else None
    if index is None:
        options = []
        if parse:
            for name in ("input", "instruction"):
                parsed = parse_options(values[name])
                if parsed is None:
                    continue
                found = answer_index(values["output"], parsed.options, parsed.labels)
                if found is not None:
                    options, index = parsed.options, found
                    values["question"] = parsed.stem
                break
    values["options"] = options
    return RecordContext(values, options, index)


def may_have_options(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Cheap vectorized pre-filter for :func:`parse_options` (most rows have no options)."""
    return pc.fill_null(
        pc.match_substring_regex(
            column, r"(?i)(options|choices|answers|select from|pick from)\s*:?\s*(\n|\\n)|\(A\)"
        ),
        False,
    )


def style_for(template: Template, seed: int, record_id: str) -> OptionsStyle:
    if template.spec.options_style == "random":
        return random_style(seed, template.id, record_id)
    return FIXED_STYLE


def template_context(ctx: RecordContext, template: Template, style: OptionsStyle) -> dict[str, Any]:
    """The full variables for ``template``: options rendered in ``style``, the target chosen."""
    values = dict(ctx.values)
    options, index = ctx.options, ctx.answer
    if template.answer_choices is not None:
        text = _render(template.answer_choices, values, "answer_choices")
        options = [c.strip() for c in text.split("|||") if c.strip()]
        index = answer_index(values["output"], options)
        if index is None:
            raise RenderError(
                "answer_not_in_choices",
                f"{template.id}: output {values['output'][:60]!r} is not one of {options}",
            )
        values["options"] = options
    if options and index is not None:
        values["options_block"] = style.block(options)
        values["answer"] = style.answer(options, index)
        values["answer_text"] = options[index]
    else:
        values["options_block"] = ""
        values["answer"] = values["output"]
        values["answer_text"] = values["output"]
    return values


def _render(template: jinja2.Template, values: dict[str, Any], name: str) -> str:
    # ``Template.render`` copies the environment globals into a fresh dict for every call, which
    # dominates the cost for short templates; a shared context over (globals + values) renders the
    # same text. The sandbox checks and budgets are compiled into the template, so they still apply
    # (against the current budget: :func:`render` sets one).
    budget = ACTIVE.budget
    if budget is UNBUDGETED:
        with activate(Budget()):
            return _render(template, values, name)
    budget.made = 0
    context = template.new_context({**_GLOBALS, **values}, shared=True)
    try:
        parts = list(template.root_render_func(context))
        size = sum(map(len, parts))
        if size > budget.max_chars:
            raise BudgetExceeded(
                "output", f"{size:,} characters of output (at most {budget.max_chars:,})"
            )
    except BudgetExceeded as exc:
        if exc.field is None:
            exc.field = name
            exc.line = _template_line(exc.__traceback__)
        raise
    except RecursionError:
        # not reached through macros (the depth budget stops them first); deeply nested data
        deep = BudgetExceeded("depth", "nested too deeply (RecursionError)")
        deep.field = name
        raise deep from None
    text = "".join(parts)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _template_line(tb: Any) -> int | None:
    """Line (in the template text) of the innermost template frame of a traceback."""
    line = None
    while tb is not None:
        compiled = tb.tb_frame.f_globals.get("__jinja_template__")
        if compiled is not None:
            line = compiled.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def count_tokens(text: str) -> int:
    """Approximate token count (words and punctuation marks): no tokenizer dependency; the
    ``expand`` stage passes a real tokenizer's count instead when a recipe names one."""
    return len(_TOKEN.findall(text))


TokenCounter = Callable[[str], int]


@dataclass
class Rendered:
    prompt: str
    completion: str
    options: list[str] | None
    exemplar_ids: list[str]
    shots_dropped: int = 0


def render(
    template: Template,
    ctx: RecordContext,
    seed: int,
    exemplars: list[RecordContext] | None = None,
    few_shot: FewShot | None = None,
    tokens: TokenCounter = count_tokens,
) -> Rendered:
    """Render ``ctx`` with ``template``; few-shot templates get ``exemplars`` (same options style).

    Shots are dropped from the end until prompt + completion fit the character/token budget
    (tokens counted by ``tokens``).
    Raises :class:`RenderError` for a row-level problem (becomes a reject); the whole pair, shots
    included, spends one template budget (``template_budget``).
    """
    previous = ACTIVE.budget
    ACTIVE.budget = Budget(ctx.limit)
    try:
        return _render_pair(template, ctx, seed, exemplars, few_shot, tokens)
    finally:
        ACTIVE.budget = previous


def _render_pair(
    template: Template,
    ctx: RecordContext,
    seed: int,
    exemplars: list[RecordContext] | None,
    few_shot: FewShot | None,
    tokens: TokenCounter = count_tokens,
) -> Rendered:
    style = style_for(template, seed, ctx.id)
    try:
        values = template_context(ctx, template, style)
        prompt = _render(template.prompt, values, "prompt")
        completion = _render(template.completion, values, "completion")
        if not prompt or not completion:
            empty = "prompt" if not prompt else "completion"
            raise RenderError("template_empty", f"{template.id}: the {empty} rendered empty")
        options = values["options"] or None
        if few_shot is None or not exemplars:
            return Rendered(prompt, completion, options, [])
        prefix = _render(template.prefix, values, "prefix") if template.prefix is not None else ""
        shots: list[str] = []
        ids: list[str] = []
        for exemplar in exemplars[: few_shot.k]:
            ACTIVE.budget.set_limit(exemplar.limit)
            try:
                shot_values = template_context(exemplar, template, style)
                shot_prompt = _render(template.prompt, shot_values, "prompt")
                shot_completion = _render(template.completion, shot_values, "completion")
            except RenderError:
                continue
            except BudgetExceeded as exc:
                if exc.budget in ("steps", "time"):
                    raise  # the pair's budget is spent
                continue  # this exemplar is too large for the template: leave it out
            if shot_prompt and shot_completion:
                shots.append(shot_prompt + few_shot.shot_separator + shot_completion)
                ids.append(exemplar.id)
    except RenderError:
        raise
    except BudgetExceeded as exc:
        where = f"{exc.field} line {exc.line}" if exc.line is not None else f"{exc.field}"
        raise RenderError(
            "template_budget", f"{template.id} {where}: {exc.detail}", exc.field, exc.line
        ) from None
    except MemoryError:
        raise RenderError(
            "template_budget", f"{template.id}: memory budget: MemoryError while rendering"
        ) from None
    except SecurityError as exc:
        raise RenderError("template_refused", f"{template.id}: {exc}") from None
    except (
        jinja2.TemplateError,
        TypeError,
        ValueError,
        LookupError,
        AttributeError,
        ArithmeticError,
    ) as exc:
        raise RenderError("template_error", f"{template.id}: {type(exc).__name__}: {exc}") from None
    dropped = 0
    while True:
        parts = ([prefix] if prefix else []) + shots + [prompt]
        full = few_shot.separator.join(parts)
        if not shots or _fits(full, completion, few_shot, tokens):
            break
        shots.pop()
        ids.pop()
        dropped += 1
    return Rendered(full, completion, options, ids, dropped)


def _fits(prompt: str, completion: str, few_shot: FewShot, tokens: TokenCounter) -> bool:
    if few_shot.max_chars is not None and len(prompt) + len(completion) > few_shot.max_chars:
        return False
    return few_shot.max_tokens is None or tokens(prompt) + tokens(completion) <= few_shot.max_tokens


# --- validation before any run ----------------------------------------------------------------


def example_table(family: Family) -> pa.Table:
    """The family's examples as a record table (what `curate templates render` shows)."""
    rows = []
    for index, example in enumerate(family.spec.examples):
        row = {
            "instruction": "",
            "input": "",
            "output": "",
            "source": "example",
            "source_file": str(family.path),
            "source_row": index,
            "meta": "{}",
        }
        row.update({k: v for k, v in example.items() if v is not None})
        for key in ("instruction", "input", "output", "rationale"):
            if key in row and not isinstance(row[key], str):
                row[key] = str(row[key])
        rows.append(row)
    table = conform(pa.Table.from_pylist(rows))
    return table.set_column(table.column_names.index("id"), "id", compute_ids(table))


def check_family(family: Family) -> None:
    """Render every template against the family's examples that it applies to.

    A template no example applies to cannot be checked, so it is an error too (add an example).
    """
    table = example_table(family)
    contexts = [record_context(row) for row in table.to_pylist()]
    has_options = np.array([bool(c.options) for c in contexts], dtype=bool)
    family_mask = applies_mask(table, has_options, family.spec.applies_to)
    if not family_mask.any():
        raise TemplateError(
            f"{family.path}: family {family.id}: none of its examples matches its applies_to ({family.spec.applies_to.describe()})"
        )
    for template in family.templates:
        mask = family_mask.copy()
        if template.spec.applies_to is not None:
            mask &= applies_mask(table, has_options, template.spec.applies_to)
        rows = np.flatnonzero(mask).tolist()
        if not rows:
            raise TemplateError(
                f"{template.where['prompt']}: template {template.id}: no example of the family matches its applies_to "
                f"({template.spec.applies_to.describe() if template.spec.applies_to else 'all'}); add one to `examples`"
            )
        for row in rows:
            others = [contexts[r] for r in rows if r != row]
            try:
                render(template, contexts[row], 0, others, template.few_shot)
            except RenderError as exc:
                where = template.where["prompt"]
                if exc.reason == "template_budget":
                    raise TemplateError(
                        f"{_where(template, exc.field, exc.line)}: template {template.id}: example {row} "
                        f"exceeds a template budget: {exc.detail}"
                    ) from None
                if exc.reason == "template_refused":
                    raise TemplateError(
                        f"{where}: template {template.id}: refused by the sandbox: {exc.detail}"
                    ) from None
                raise TemplateError(
                    f"{where}: template {template.id}: example {row}: {exc.reason}: {exc.detail}"
                ) from None


def _where(template: Template, field: str | None, line: int | None) -> str:
    """``file:line`` of line ``line`` of a template's ``field`` (its first line when unknown)."""
    where = template.where.get(field or "prompt", template.where["prompt"])
    path, _, first = where.rpartition(":")
    if line is None or not first.isdigit():
        return where
    return f"{path}:{int(first) + line - 1}"
