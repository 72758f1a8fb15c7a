"""Chat templates: a record's conversation, and Hugging Face-style jinja templates rendered on it.

A template takes ``messages`` (``[{role, content}, ...]``) and ``add_generation_prompt``, as
``tokenizer.apply_chat_template`` does, and renders in the same kind of environment: jinja2's
``ImmutableSandboxedEnvironment`` with ``trim_blocks``/``lstrip_blocks``, the ``loopcontrols``
extension, a ``{% generation %}`` block that only renders its body, the ``tojson`` filter and the
``raise_exception`` and ``strftime_now`` globals. Shipped templates live in
``curate/data/chat_templates/<name>.jinja``; a template of your own is a ``.jinja`` file, a
``tokenizer_config.json`` (its ``chat_template`` field, a string or the ``[{name, template}]`` list
whose ``default`` entry is used; its special tokens such as ``bos_token`` become variables), or a
folder holding ``chat_template.jinja`` or ``tokenizer_config.json``.

Many conversations render in one template call (the template as the body of a loop, or a macro
called in one): rendering per conversation costs several times more. Each output is the same as
a render on its own (checked on the first conversations); when the wrapped form cannot be
compiled, or a conversation makes the template raise, conversations are rendered one by one.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import jinja2
import jinja2.ext
import jinja2.meta
import pyarrow as pa
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from curate.errors import StageError
from curate.util.chat import CHAT_MESSAGE_COLUMNS, chat_messages

Message = dict[str, str]
Conversation = list[Message]

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "data" / "chat_templates"
SHIPPED_TEMPLATES: tuple[str, ...] = ("chatml", "llama3", "mistral", "gemma", "alpaca")
# ``chat_template: tokenizer``: the template next to the tokenizer.json.
FROM_TOKENIZER = "tokenizer"
_SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "sep_token",
    "cls_token",
    "mask_token",
)
# Conversations per wrapped render (bounds the size of one output string).
_BATCH = 2048
_ONE_TRAILING_NEWLINE = re.compile(r"(?:\r\n|\r|\n)\Z")


def conversation(record: Mapping[str, Any]) -> Conversation:
    """The turns of one record, as ``[{role, content}, ...]``: those ``curate export --chat``
    writes (:func:`curate.util.chat.chat_messages`), after a ``system`` turn when the record has a
    ``system`` field, and with a missing role or content read as "" (a template renders text).
    """
    turns: Conversation = chat_messages(record)
    if record.get("messages"):
        return [{"role": t["role"] or "", "content": t["content"] or ""} for t in turns]
    system = record.get("system")
    if isinstance(system, str) and system.strip():
        turns.insert(0, {"role": "system", "content": system})
    return turns


# The record columns :func:`conversation` reads.
CONVERSATION_COLUMNS = (*CHAT_MESSAGE_COLUMNS, "system")


def table_conversations(table: pa.Table) -> list[Conversation]:
    """:func:`conversation` of every row of a record table (missing columns read as empty)."""
    names = [name for name in CONVERSATION_COLUMNS if name in table.column_names]
    if not names:
        return [conversation({}) for _ in range(table.num_rows)]
    columns = [table.column(name).to_pylist() for name in names]
    return [conversation(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]


def last_assistant(turns: Sequence[Mapping[str, str]]) -> int | None:
    """Index of the last assistant turn, None when there is none."""
    for index in range(len(turns) - 1, -1, -1):
        if turns[index]["role"] == "assistant":
            return index
    return None


class TemplateFailure(Exception):
    """A template raised (``raise_exception``, a bad variable) on one conversation."""


def _raise_exception(message: str) -> NoReturn:
    raise jinja2.exceptions.TemplateError(message)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


class _Generation(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` (HF marks assistant text so): its body."""

    tags = {"generation"}  # noqa: RUF012 (jinja2 declares it so)

    def parse(self, parser: Any) -> list[nodes.Node]:
        next(parser.stream)
        return list(parser.parse_statements(("name:endgeneration",), drop_needle=True))


def make_environment() -> ImmutableSandboxedEnvironment:
    """The environment chat templates render in (as ``transformers`` sets it up)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_Generation, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


ENV = make_environment()


@dataclass
class ChatTemplate:
    """A compiled chat template. ``render_batch`` renders many conversations at once."""

    name: str  # the shipped name or the path it came from
    source: str
    variables: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ...
    _single: jinja2.Template | None = field(default=None, repr=False)
    _batch: jinja2.Template | None = field(default=None, repr=False)
    _checked: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._single = ENV.from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            raise StageError(
                f"chat template {self.name}: line {exc.lineno}: {exc.message}"
            ) from None
        self._batch = None
        for wrapped in _wrappings(self.source):
            try:
                self._batch = ENV.from_string(wrapped)
                break
            except jinja2.TemplateError:
                continue  # e.g. {% extends %}: one render per conversation

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
        """One conversation; raises :class:`TemplateFailure` when the template does."""
        assert self._single is not None
        try:
            return self._single.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                tools=None,
                documents=None,
                **self.variables,
            )
        except Exception as exc:  # whatever the template's code raised, for this conversation
            raise TemplateFailure(str(exc) or type(exc).__name__) from None

    def render_batch(
        self, items: Sequence[tuple[Sequence[Mapping[str, str]], bool]]
    ) -> list[str | TemplateFailure]:
        """``render(messages, add_generation_prompt)`` of every item, a failure in place of a
        text where the template raised."""
        out: list[str | TemplateFailure] = []
        for start in range(0, len(items), _BATCH):
            out.extend(self._render_chunk(items[start : start + _BATCH]))
        return out

    def _render_chunk(
        self, items: Sequence[tuple[Sequence[Mapping[str, str]], bool]]
    ) -> list[str | TemplateFailure]:
        if self._batch is not None and len(items) > 1:
            if not self._checked:
                self._check_batch(items[:8])
            texts = self._wrapped(items) if self._batch is not None else None
            if texts is not None:
                return list(texts)
        return [self._render_one(m, g) for m, g in items]

    def _render_one(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool
    ) -> str | TemplateFailure:
        try:
            return self.render(messages, add_generation_prompt)
        except TemplateFailure as failure:
            return failure

    def _wrapped(
        self, items: Sequence[tuple[Sequence[Mapping[str, str]], bool]]
    ) -> list[str] | None:
        """The wrapped render, None when it cannot say (a conversation raised, or one held the
        separator)."""
        assert self._batch is not None
        separator = f"\x00{secrets.token_hex(8)}\x00"
        try:
            text = self._batch.render(
                __curate_items=items,
                __curate_sep=separator,
                tools=None,
                documents=None,
                **self.variables,
            )
        except Exception:  # one conversation raised: the caller renders them one by one
            return None
        parts = text.split(separator)
        if len(parts) != len(items) + 1 or parts[-1]:
            return None
        return parts[:-1]

    def _check_batch(self, items: Sequence[tuple[Sequence[Mapping[str, str]], bool]]) -> None:
        """Once: the wrapped render must give what rendering one by one gives, else it is off."""
        wrapped = self._wrapped(items)
        if wrapped is None:
            return  # a conversation raised: checked on the next chunk
        self._checked = True
        single = [self._render_one(m, g) for m, g in items]
        if wrapped != single:
            self._batch = None


def _wrappings(source: str) -> list[str]:
    """Templates that render many conversations at once (``__curate_items``, each followed by
    ``__curate_sep``), cheapest first: the template as the body of a loop over the conversations
    (a loop body sees nothing of the last iteration's variables; not when the template names
    ``loop`` outside its own loops or has blocks), else as a macro called in that loop.

    The opening tag ends its line, so the template's first line starts a line (``lstrip_blocks``)
    and ``trim_blocks`` removes only that newline; the template's own trailing newline is dropped,
    as the lexer does for a template on its own.
    """
    body = _ONE_TRAILING_NEWLINE.sub("", source)
    loop = (
        "{%- for __m, __g in __curate_items -%}"
        "{{ __curate_one(__m, __g) }}{{ __curate_sep }}"
        "{%- endfor -%}"
    )
    wrappings = [
        "{%- macro __curate_one(messages, add_generation_prompt) %}\n"
        + body
        + "{%+ endmacro %}"
        + loop
    ]
    try:
        parsed = ENV.parse(source)
    except jinja2.TemplateError:
        return wrappings
    inline_safe = "loop" not in jinja2.meta.find_undeclared_variables(parsed) and not any(
        True for _ in parsed.find_all((nodes.Extends, nodes.Block, nodes.Macro, nodes.CallBlock))
    )
    if inline_safe:
        wrappings.insert(
            0,
            "{%- for messages, add_generation_prompt in __curate_items %}\n"
            + body
            + "{{ __curate_sep }}{% endfor %}",
        )
    return wrappings


def _special_tokens(config: Mapping[str, Any]) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for name in _SPECIAL_TOKENS:
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            tokens[name] = value
    return tokens


def _from_config(path: Path, spec: str) -> ChatTemplate:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StageError(f"chat template {spec!r}: cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or "chat_template" not in config:
        raise StageError(f"chat template {spec!r}: {path} has no chat_template field")
    template = config["chat_template"]
    if isinstance(template, list):
        named = {str(t.get("name")): t.get("template") for t in template if isinstance(t, dict)}
        if "default" not in named:
            raise StageError(
                f"chat template {spec!r}: {path} lists templates {', '.join(sorted(named))} "
                "but none named 'default'"
            )
        template = named["default"]
    if not isinstance(template, str):
        raise StageError(f"chat template {spec!r}: the chat_template of {path} is not text")
    return ChatTemplate(str(path), template, _special_tokens(config))


def _from_folder(folder: Path, spec: str) -> ChatTemplate:
    jinja_file = folder / "chat_template.jinja"
    config = folder / "tokenizer_config.json"
    if jinja_file.is_file():
        template = _from_file(jinja_file, spec)
        if config.is_file():
            try:
                found = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                found = {}
            template.variables = _special_tokens(found if isinstance(found, dict) else {})
        return template
    if config.is_file():
        return _from_config(config, spec)
    raise StageError(
        f"chat template {spec!r}: the folder {folder} has neither chat_template.jinja nor "
        "tokenizer_config.json"
    )


def _from_file(path: Path, spec: str) -> ChatTemplate:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StageError(f"chat template {spec!r}: cannot read {path}: {exc}") from None
    return ChatTemplate(str(path), source)


def load_chat_template(spec: str, tokenizer: str | None = None) -> ChatTemplate:
    """A shipped template by name (:data:`SHIPPED_TEMPLATES`), ``tokenizer`` (the template in the
    folder of the ``tokenizer`` path), or a path: a ``.jinja`` file, a ``tokenizer_config.json``,
    or a folder holding either."""
    if spec in SHIPPED_TEMPLATES:
        template = _from_file(TEMPLATE_DIR / f"{spec}.jinja", spec)
        template.name = spec
        return template
    if spec == FROM_TOKENIZER:
        if not tokenizer:
            raise StageError("chat template 'tokenizer' needs a tokenizer path")
        where = Path(tokenizer).expanduser()
        folder = where if where.is_dir() else where.parent
        if not folder.is_dir():
            raise StageError(
                f"chat template 'tokenizer': the tokenizer {tokenizer!r} is not a local path"
            )
        return _from_folder(folder, spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _from_folder(path, spec)
    if not path.is_file():
        raise StageError(
            f"chat template {spec!r}: {path} does not exist (expected one of "
            f"{', '.join(SHIPPED_TEMPLATES)}, '{FROM_TOKENIZER}', or a path to a .jinja file, a "
            "tokenizer_config.json or a folder holding one)"
        )
    if path.suffix == ".json":
        return _from_config(path, spec)
    return _from_file(path, spec)


__all__ = [
    "SHIPPED_TEMPLATES",
    "ChatTemplate",
    "Conversation",
    "TemplateFailure",
    "conversation",
    "last_assistant",
    "load_chat_template",
    "make_environment",
    "table_conversations",
]
