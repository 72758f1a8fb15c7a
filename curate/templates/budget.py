"""Template budgets: what one render of a (record, template) pair may cost.

The sandbox (:mod:`jinja2.sandbox`) stops templates from running code or reading files; budgets stop
them from exhausting the machine. Every limit lives here:

=================  ===============================================================================
``MAX_CHARS``      100,000 characters per rendered string (prompt, completion, answer choices,
                   few-shot prefix) and per string or list an operator, filter, method or slice
                   makes (``*``, ``+``, ``%``, ``~``, ``|join``, ``.replace``, ...): checked *before*
                   it is built where it could outgrow its inputs. A record whose own text
                   (instruction, input, output, rationale, options) is longer gets twice its length.
``MADE_FACTOR``    10: one rendered string may make at most 10 x its size budget of new strings
                   and list items in all (1,000,000 characters by default), so that nothing piles
                   up gigabytes copy by copy (``list.append`` or a macro call in a long loop).
``MAX_INT_DIGITS`` 10,000 digits per integer made by ``*`` or ``**``.
``MAX_RANGE``      10,000 items per ``range()`` (jinja2's sandbox allows 100,000).
``MAX_DEPTH``      50 nested calls: macros, ``caller()``, recursive loops (so no RecursionError);
                   50 levels of nested lists or dicts turned into text.
``MAX_STEPS``      1,000,000 steps per (record, template): loop iterations, calls, operators,
                   filters, lookups. Deterministic, unlike ``MAX_SECONDS``.
``MAX_SECONDS``    1 s of wall clock per (record, template), few-shot exemplars included; looked at
                   every ``CHECK_EVERY`` steps (no thread, no signal: safe in worker processes).
=================  ===============================================================================

``lipsum`` is not available to templates. Exceeding a budget raises :class:`BudgetExceeded` (a
:class:`~curate.errors.RowReject` with reason ``template_budget``); rendering turns it into a reject
of that (record, template) pair, and loading a family whose own examples exceed one fails with
the file and line (:func:`curate.templates.render.check_family`).

Where it is enforced: :class:`BudgetedEnvironment` intercepts ``*``, ``**``, ``+`` and ``%``
(:meth:`~BudgetedEnvironment.call_binop`), every call (methods, macros, globals), attribute and item
lookup, every filter (wrapped), every ``{{ output }}`` that is not a short string (``finalize``),
every joined buffer (macro bodies, ``{% set %}`` and ``{% filter %}`` blocks: ``concat``);
:class:`BudgetCodeGenerator` routes ``~``, slices and every ``{% for %}`` iteration through the
budget too; the renderer checks each rendered string's size. The current :class:`Budget` is per
thread (:data:`ACTIVE`); outside a render only the size limits apply.
"""

from __future__ import annotations

import collections
import math
import re
import string
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from functools import update_wrapper
from typing import Any

import jinja2
import jinja2.nodes as nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context, LoopContext, Namespace
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg, pass_context

from curate.errors import RowReject

MAX_CHARS = 100_000
MADE_FACTOR = 10
MAX_INT_DIGITS = 10_000
MAX_RANGE = 10_000
MAX_DEPTH = 50
MAX_STEPS = 1_000_000
MAX_SECONDS = 1.0
CHECK_EVERY = 256  # steps between two looks at the clock

_INT_BITS = int(MAX_INT_DIGITS / math.log10(2))


class BudgetExceeded(RowReject):
    """A template exceeded a budget: ``budget`` names which (output, size, memory, integer, range,
    depth, steps, time). ``field`` and ``line`` (of the template text) are set by the renderer."""

    def __init__(self, budget: str, detail: str) -> None:
        super().__init__("template_budget", f"{budget} budget: {detail}")
        self.budget = budget
        self.field: str | None = None
        self.line: int | None = None


class Budget:
    """What is left to one render of a (record, template) pair.

    The counters start from class defaults and the limits are read from this module when used
    (so that a test can lower them): one is made for every pair, and that must be cheap.
    """

    steps = 0  # steps taken
    depth = 0  # calls now nested
    made = 0  # characters (list items) made by the string now rendered
    next_check = CHECK_EVERY  # the step at which the limits and the clock are looked at next

    def __init__(self, max_chars: int | None = None) -> None:
        self.max_chars = MAX_CHARS if max_chars is None else max_chars
        self.max_made = MADE_FACTOR * self.max_chars
        self.deadline = time.monotonic() + MAX_SECONDS

    def set_limit(self, max_chars: int) -> None:
        """The size budget of what is rendered next (each record's own, see :func:`record_limit`)."""
        self.max_chars = max_chars
        self.max_made = MADE_FACTOR * max_chars

    def step(self) -> None:
        self.steps += 1
        if self.steps >= self.next_check:
            self.check()

    def check(self) -> None:
        if self.steps > MAX_STEPS:
            raise BudgetExceeded(
                "steps",
                f"more than {MAX_STEPS:,} steps (loop iterations, calls, operators, filters, lookups)",
            )
        if time.monotonic() > self.deadline:
            raise BudgetExceeded("time", f"rendering took more than {MAX_SECONDS:g} s")
        self.next_check = min(self.steps + CHECK_EVERY, MAX_STEPS + 1)

    def chars(self, size: int, what: str) -> None:
        """Refuse a string (or list) of ``size`` characters (items) made by ``what``."""
        if size > self.max_chars:
            raise BudgetExceeded(
                "size",
                f"{what} would make {size:,} characters or items (at most {self.max_chars:,})",
            )

    def spend(self, size: int, what: str) -> None:
        """Count ``size`` characters (items) made by ``what`` against the current string's total."""
        self.made += size
        if self.made > self.max_made:
            raise BudgetExceeded(
                "memory",
                f"{what}: more than {self.max_made:,} characters of strings and lists made while rendering one string",
            )

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.depth -= 1
            raise BudgetExceeded(
                "depth", f"calls (macros, caller, recursive loops) nested over {MAX_DEPTH} deep"
            )

    def leave(self) -> None:
        self.depth -= 1


class _Unbudgeted(Budget):
    """Outside any render (compile-time constant folding): only the size limits apply."""

    next_check = sys.maxsize

    def __init__(self) -> None:
        super().__init__()
        self.max_made = sys.maxsize

    def step(self) -> None:
        pass

    def spend(self, size: int, what: str) -> None:
        pass

    def enter(self) -> None:
        pass

    def leave(self) -> None:
        pass


UNBUDGETED: Budget = _Unbudgeted()


class _Active(threading.local):
    budget: Budget = UNBUDGETED


ACTIVE = _Active()
"""``ACTIVE.budget``: the budget templates rendered now spend (per thread); :data:`UNBUDGETED`
outside renders. Renderers set it around a render and put the previous one back after."""


def current() -> Budget:
    """The budget templates rendered now spend (per thread); :data:`UNBUDGETED` outside renders."""
    return ACTIVE.budget


class activate:
    """``with activate(budget):`` makes ``budget`` the current one inside."""

    __slots__ = ("budget", "previous")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.previous = UNBUDGETED

    def __enter__(self) -> Budget:
        self.previous = ACTIVE.budget
        ACTIVE.budget = self.budget
        return self.budget

    def __exit__(self, *exc: object) -> None:
        ACTIVE.budget = self.previous


def record_limit(record_chars: int) -> int:
    """The size budget for a record whose own text is ``record_chars`` long."""
    return max(MAX_CHARS, 2 * record_chars)


# --- sizes ------------------------------------------------------------------------------------

_SEQUENCES: tuple[type[Any], ...] = (
    list,
    tuple,
    set,
    frozenset,
    collections.deque,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
)


def text_size(value: Any, limit: int) -> int:
    """About ``len(str(value))`` (exact for strings), without building it; counting stops past
    ``limit``. Containers count their items' sizes, however often an item is repeated."""
    if isinstance(value, str):
        return len(value)
    return _measure(value, limit)[0]


def _measure(value: Any, limit: int) -> tuple[int, int]:
    """(size, nesting depth) of ``value`` as text; stops as soon as size passes ``limit``."""
    total = 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2  # quotes inside a container's repr
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            total += 8
        elif isinstance(item, int):
            total += int(item.bit_length() * 0.30103) + 2
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 3
        elif isinstance(item, dict):
            # every item costs its separator now, so the stack never outgrows the count
            total += 2 + 4 * len(item)
            deepest = max(deepest, depth + 1)
            if total <= limit:
                stack.extend((k, depth + 1) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, _SEQUENCES):
            total += 2 + 2 * len(item)
            deepest = max(deepest, depth + 1)
            if total <= limit:
                stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, Namespace):
            total += 12
            stack.append((object.__getattribute__(item, "_Namespace__attrs"), depth))
        else:
            total += 64  # reprs of other objects (macros, loops, ranges) are short
        if total > limit:
            break
    return total, deepest


def _check_text(value: Any, what: str, budget: Budget) -> None:
    """Refuse turning a container whose text would pass the budget into a string."""
    if isinstance(value, (str, int, float)) or value is None:
        return
    limit = budget.max_chars
    size, depth = _measure(value, limit)
    if size > limit:
        budget.chars(size, what)
    if depth > MAX_DEPTH:
        raise BudgetExceeded(
            "depth", f"{what}: lists or dicts nested {depth} deep (at most {MAX_DEPTH})"
        )


def _check_result(value: Any, what: str, budget: Budget) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        budget.chars(len(value), what)
        budget.spend(len(value), what)
    return value


def _int_digits(value: int) -> int:
    return int(abs(value).bit_length() * 0.30103) + 1


# --- operators --------------------------------------------------------------------------------

_SIZED = (str, bytes, list, tuple)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _mul_check(left: Any, right: Any, budget: Budget) -> None:
    if isinstance(right, _SIZED):
        left, right = right, left
    if isinstance(left, _SIZED) and isinstance(right, int):
        budget.chars(len(left) * max(right, 0), f"{type(left).__name__} * {right:,}")
    elif isinstance(left, int) and isinstance(right, int):
        digits = _int_digits(left) + _int_digits(right)
        if digits > MAX_INT_DIGITS:
            raise BudgetExceeded(
                "integer", f"'*' would make a {digits:,}-digit integer (at most {MAX_INT_DIGITS:,})"
            )


def _pow_check(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        bits = math.log2(abs(left)) * right
        if bits > _INT_BITS:
            raise BudgetExceeded(
                "integer",
                f"'**' would make an integer of about {int(bits * 0.30103):,} digits (at most {MAX_INT_DIGITS:,})",
            )


def _add_check(left: Any, right: Any, budget: Budget) -> None:
    if isinstance(left, _SIZED) and isinstance(right, _SIZED):
        budget.chars(len(left) + len(right), f"{type(left).__name__} + {type(right).__name__}")


def _format_values(args: Any) -> list[Any]:
    if isinstance(args, dict):
        return list(args.values())
    if isinstance(args, tuple):
        return list(args)
    return [args]


def _printf_check(fmt: str | bytes, args: Any, what: str, budget: Budget) -> None:
    """``fmt % args``: every conversion may print the largest argument, padded to its width."""
    if isinstance(fmt, bytes):
        fmt = fmt.decode("latin-1")
    specs = _PRINTF.findall(fmt)
    if not specs:
        return
    values = _format_values(args)
    limit = budget.max_chars
    largest = max((text_size(v, limit) for v in values), default=0)
    ints = [abs(v) for v in values if isinstance(v, int)]
    widest = 0
    for width, precision in specs:
        for number in (width, precision):
            if number == "*":
                widest = max(widest, max(ints, default=0))
            elif number:
                widest = max(widest, int(number))
    budget.chars(len(fmt) + len(specs) * (largest + widest), what)


def _braces_check(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any], budget: Budget) -> None:
    """``fmt.format(...)``: every field may print the largest argument, padded to its width."""
    try:
        fields = [spec for _, name, spec, _ in string.Formatter().parse(fmt) if name is not None]
    except ValueError:
        return  # str.format raises the same error
    if not fields:
        return
    values = [*args, *kwargs.values()]
    limit = budget.max_chars
    largest = max((text_size(v, limit) for v in values), default=0)
    widest = 0
    for spec in fields:
        numbers = [int(n) for n in re.findall(r"\d+", spec or "")]
        if spec and "{" in spec:
            numbers += [abs(v) for v in values if isinstance(v, int)]
        widest = max(widest, *numbers, 0)
    budget.chars(len(fmt) + len(fields) * (largest + widest), "str.format")


# --- str methods ------------------------------------------------------------------------------


def _replace_size(text: str | bytes, old: Any, new: Any, count: Any, limit: int) -> int:
    size = len(text)
    new_size = len(new) if isinstance(new, (str, bytes)) else text_size(new, limit)
    old_size = len(old) if isinstance(old, (str, bytes)) else text_size(old, limit)
    growth = new_size - old_size
    if growth <= 0:
        return size
    found = text.count(old) if isinstance(old, type(text)) and old else size + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return size + found * growth


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _method_size(
    name: str, text: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any], limit: int
) -> int | None:
    """Size of ``text.name(*args)`` when it can outgrow ``text`` and its arguments."""
    if name in ("ljust", "rjust", "center", "zfill"):
        width = _arg(args, kwargs, 0, "width", 0)
        return max(len(text), width) if isinstance(width, int) else None
    if name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        tab: str | bytes = "\t" if isinstance(text, str) else b"\t"
        if isinstance(tabsize, int):
            return len(text) + text.count(tab) * max(tabsize, 0)  # type: ignore[arg-type]
        return None
    if name == "replace":
        if len(args) < 2:
            return None
        return _replace_size(text, args[0], args[1], _arg(args, kwargs, 2, "count", -1), limit)
    if name == "translate" and args:
        table = args[0]
        values = table.values() if isinstance(table, dict) else table
        if isinstance(values, (str, bytes)):
            return len(text)
        widest = max((text_size(v, limit) for v in list(values)[: limit + 1]), default=1)
        return len(text) * max(widest, 1)
    return None


def _join_size(separator: int, items: list[Any], limit: int) -> int:
    total = separator * max(len(items) - 1, 0)
    for item in items:
        total += text_size(item, limit)
        if total > limit:
            break
    return total


_MUTABLE = (list, dict, set, bytearray, collections.deque)


# --- filters ----------------------------------------------------------------------------------

# Filters that never turn their value into text (others do: a list's repr is checked first).
_KEEP_TYPE = frozenset(
    [
        "abs",
        "attr",
        "batch",
        "count",
        "d",
        "default",
        "dictsort",
        "first",
        "float",
        "groupby",
        "int",
        "items",
        "join",
        "last",
        "length",
        "list",
        "map",
        "max",
        "min",
        "pprint",
        "random",
        "reject",
        "rejectattr",
        "reverse",
        "round",
        "select",
        "selectattr",
        "slice",
        "sort",
        "sum",
        "tojson",
        "unique",
    ]
)


def _materialize(value: Any) -> Any:
    return value if isinstance(value, (list, tuple, str, dict)) else list(value)


def _filter_size(
    name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any], budget: Budget
) -> tuple[Any, int | None]:
    """(value, to pass on; the size the filter's result can reach when it can outgrow its input)."""
    limit = budget.max_chars
    text = value if isinstance(value, str) else None
    if name in ("center", "batch", "slice"):
        key = {"center": "width", "batch": "linecount", "slice": "slices"}[name]
        number = _arg(args, kwargs, 0, key, 80 if name == "center" else 1)
        if isinstance(number, int):
            size = len(text) if text is not None else 0
            return value, max(size, number)
    elif name == "indent" and text is not None:
        width = _arg(args, kwargs, 0, "width", 4)
        pad = width if isinstance(width, int) else text_size(width, limit)
        return value, len(text) + (text.count("\n") + 1) * max(pad, 0)
    elif name == "wordwrap" and text is not None:
        width = _arg(args, kwargs, 0, "width", 79)
        wrap = _arg(args, kwargs, 2, "wrapstring", None)
        wrap_size = 1 if wrap is None else text_size(wrap, limit)
        breaks = 2 * len(text) // max(width if isinstance(width, int) else 1, 1)
        return value, len(text) + (breaks + text.count("\n") + 2) * wrap_size
    elif name == "urlize" and text is not None:
        extra = sum(
            text_size(_arg(args, kwargs, i, k, ""), limit) for i, k in ((2, "target"), (3, "rel"))
        )
        words = len(text.split())
        return value, len(text) + words * extra
    elif name == "replace" and text is not None and len(args) >= 2:
        count = _arg(args, kwargs, 2, "count", None)
        return value, _replace_size(text, args[0], args[1], -1 if count is None else count, limit)
    elif name == "format" and text is not None:
        budget_args: Any = kwargs or args
        _printf_check(text, budget_args, "the format filter", budget)
    elif name == "join":
        value = _materialize(value)
        items = list(value.values()) if isinstance(value, dict) else list(value)
        separator = _arg(args, kwargs, 0, "d", "")
        return value, _join_size(text_size(separator, limit), items, limit)
    elif name == "sum":
        value = _materialize(value)
        start = _arg(args, kwargs, 1, "start", 0)
        if not isinstance(start, (int, float)):
            return value, text_size(start, limit) + _join_size(0, list(value), limit)
    elif name == "tojson":
        indent = _arg(args, kwargs, 0, "indent", None)
        if indent and not isinstance(value, str):
            pad = indent if isinstance(indent, int) else text_size(indent, limit)
            size, depth = _measure(value, limit)
            return value, size * (2 + max(pad, 0) * depth)
    return value, None


def _wrap_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` behind the budget: a step, its result size checked before (when it can outgrow its
    input) and after. Context-passing, so jinja2 never folds it at compile time."""
    pass_arg = _PassArg.from_obj(func)
    stringifies = name not in _KEEP_TYPE
    what = f"the {name} filter"

    def checked(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = ACTIVE.budget
        budget.step()
        if stringifies:
            _check_text(value, what, budget)
        for arg in (*args, *kwargs.values()):
            _check_text(arg, what, budget)
        value, size = _filter_size(name, value, args, kwargs, budget)
        if size is not None:
            budget.chars(size, what)
        if pass_arg is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return _check_result(result, what, budget)

    return pass_context(update_wrapper(checked, func))


# --- the environment --------------------------------------------------------------------------


class _Ticking:
    """An iterable whose every item is a step (what ``{% for %}`` loops over)."""

    __slots__ = ("budget", "iterable")

    def __init__(self, iterable: Any, budget: Budget) -> None:
        self.iterable = iterable
        self.budget = budget

    def __iter__(self) -> Iterator[Any]:
        step = self.budget.step
        for item in self.iterable:
            step()
            yield item

    def __len__(self) -> int:
        return len(self.iterable)


def budget_range(*args: int) -> range:
    """``range`` with at most ``MAX_RANGE`` items."""
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise BudgetExceeded("range", f"range() of {size:,} items (at most {MAX_RANGE:,})")
    return numbers


def _finalize(value: Any) -> Any:
    """Every ``{{ output }}``: no more than the size budget; a container's text is checked first."""
    if type(value) is str and len(value) <= MAX_CHARS:
        return value  # the common case: a string that exists already fits any size budget
    budget = ACTIVE.budget
    budget.step()
    if isinstance(value, str):
        budget.chars(len(value), "an output expression")
    else:
        _check_text(value, "an output expression", budget)
    return value


def _concat(pieces: Iterable[str]) -> str:
    """Join a render's output, or a captured block's (macro, ``{% set %}``, ``{% filter %}``)."""
    parts = pieces if isinstance(pieces, list) else list(pieces)
    budget = ACTIVE.budget
    size = sum(map(len, parts))
    if size > budget.max_chars:
        raise BudgetExceeded(
            "output", f"{size:,} characters of output (at most {budget.max_chars:,})"
        )
    budget.spend(size, "a macro or block's output")
    return "".join(parts)


class _Slicing:
    """``value[a:b]`` in a template: the copy is spent (jinja2 slices without the sandbox)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __getitem__(self, key: Any) -> Any:
        budget = ACTIVE.budget
        budget.step()
        return _check_result(self.value[key], "a slice", budget)


class BudgetCodeGenerator(CodeGenerator):
    """Compiles ``~``, slices and ``{% for %}`` so that they spend the budget too."""

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.budget_slice(")
        self.visit(node.node, frame)
        self.write(")[")
        self.visit(node.arg, frame)
        self.write("]")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        ticking = nodes.Call(nodes.EnvironmentAttribute("budget_iter"), [node.iter], [], None, None)
        ticking.set_lineno(node.iter.lineno)
        loop = nodes.For(node.target, ticking, node.body, node.else_, node.test, node.recursive)
        loop.set_lineno(node.lineno)
        super().visit_For(loop, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.budget_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BudgetedTemplate(jinja2.Template):
    """``render()`` outside :func:`activate` gets a budget of its own."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        if ACTIVE.budget is not UNBUDGETED:
            return super().render(*args, **kwargs)
        with activate(Budget()):
            return super().render(*args, **kwargs)


class BudgetedEnvironment(SandboxedEnvironment):
    """The sandbox, with every operation that can grow a value or take time on the budget."""

    code_generator_class = BudgetCodeGenerator
    template_class = BudgetedTemplate
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(_concat)

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.globals.pop("lipsum", None)
        self.globals["range"] = budget_range
        self.filters = {name: _wrap_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = ACTIVE.budget
        budget.step()
        if operator == "*":
            _mul_check(left, right, budget)
        elif operator == "+":
            _add_check(left, right, budget)
        elif operator == "**":
            _pow_check(left, right)
        elif operator == "%" and isinstance(left, (str, bytes)):
            _printf_check(left, right, "'%' formatting", budget)
            _check_text(right, "'%' formatting", budget)
        return _check_result(self.binop_table[operator](left, right), f"'{operator}'", budget)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = ACTIVE.budget
        budget.step()
        what = "a call"
        owner = getattr(__obj, "__self__", None) if type(__obj) is types.BuiltinMethodType else None
        if isinstance(owner, (str, bytes)):
            name = __obj.__name__
            what = f"{type(owner).__name__}.{name}"
            if name == "join" and args:
                items = list(args[0])
                args = (items, *args[1:])
                budget.chars(_join_size(len(owner), items, budget.max_chars), what)
            else:
                size = _method_size(name, owner, args, kwargs, budget.max_chars)
                if size is not None:
                    budget.chars(size, what)
        elif isinstance(__obj, LoopContext) and args:
            args = (_Ticking(args[0], budget), *args[1:])  # a recursive loop's next level
        budget.enter()
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.leave()
        if isinstance(owner, _MUTABLE):
            budget.chars(len(owner), f"{type(owner).__name__}.{__obj.__name__}")
        return _check_result(result, what, budget)

    def getattr(self, obj: Any, attribute: str) -> Any:
        ACTIVE.budget.step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget = ACTIVE.budget
        budget.step()
        value = super().getitem(obj, argument)
        if type(argument) is slice:  # a copy (constant folding)
            _check_result(value, "a slice", budget)
        return value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            budget = ACTIVE.budget
            if is_map and len(args) == 1 and isinstance(args[0], dict):
                _braces_check(fmt, (), args[0], budget)
            else:
                _braces_check(fmt, args, kwargs, budget)
            result: str = formatter(*args, **kwargs)
            return _check_result(result, "str.format", budget)

        return update_wrapper(checked, formatter)

    def budget_slice(self, value: Any) -> _Slicing:
        """``value[a:b]``: see :class:`_Slicing`."""
        return _Slicing(value)

    def budget_iter(self, iterable: Any) -> Any:
        """What a ``{% for %}`` loop iterates: every item is a step."""
        return _Ticking(iterable, ACTIVE.budget)

    def budget_join(self, values: tuple[Any, ...]) -> str:
        """``a ~ b``: refused before it is built when it would pass the size budget."""
        budget = ACTIVE.budget
        budget.step()
        limit = budget.max_chars
        size = 0
        for value in values:
            size += text_size(value, limit)
        budget.chars(size, "'~'")
        budget.spend(size, "'~'")
        return "".join(map(str, values))


__all__ = [
    "ACTIVE",
    "CHECK_EVERY",
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_RANGE",
    "MAX_SECONDS",
    "MAX_STEPS",
    "UNBUDGETED",
    "Budget",
    "BudgetExceeded",
    "BudgetedEnvironment",
    "activate",
    "current",
    "record_limit",
    "text_size",
]
