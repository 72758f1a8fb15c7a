"""Parsing: a data file into items, with file and line numbers.

Decompression, JSON array (strict or lenient), JSON Lines and TSV parsing, and the helpers a format
uses to take text fields out of a parsed row. Turning items into Arrow records and rejects is
:mod:`curate.ingest.builder`; this module imports nothing from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import InputFileError, RowReject
from curate.ingest.files import data_suffix, line_col, read_bytes

# Longest raw text kept in a parse-error reject (the row is quarantined, not lost: see detail).
MAX_RAW_CHARS = 100_000


class RowError(RowReject):
    """A row that cannot become a record. Becomes a reject (or a fatal error with --strict)."""


@dataclass
class ReadContext:
    """Where rows come from and how to map them."""

    source: str
    file: str
    format: str = ""
    license: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    strict: bool = False
    lenient_json: bool = False
    # Skipped when the next stage recomputes ids anyway (normalize): saves a hash per row.
    with_ids: bool = True

    def columns(self, schema_field: str, *defaults: str) -> tuple[str, ...]:
        """Source columns to try for a schema field: the user's ``fields:`` mapping first."""
        mapped = self.fields.get(schema_field)
        return (mapped, *defaults) if mapped else defaults


@dataclass
class Item:
    """One parsed row: its 0-based index in the file, its 1-based line when known, the value."""

    row: int
    line: int | None
    value: Any
    error: RowError | None = None
    raw: str | None = None

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"record {self.row}"


@dataclass
class ParsedFile:
    kind: str  # "records" (list of rows), "document" (one JSON object), "tsv" (list of field lists)
    items: list[Item]
    document: Any = None
    warnings: list[str] = field(default_factory=list)
    # A cleanly parsed JSON array keeps its plain values; Items are built only if needed.
    values: list[Any] | None = None
    lines: list[int] | None = None  # 1-based line of each value (JSON Lines)

    def all_items(self) -> list[Item]:
        if self.values is not None and not self.items:
            lines: list[int | None] = [*self.lines] if self.lines else [None for _ in self.values]
            self.items = [
                Item(i, line, v) for i, (line, v) in enumerate(zip(lines, self.values, strict=True))
            ]
        return self.items


def decode_text(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Decode up to the bad byte to report a line number the user can open.
        prefix = data[: exc.start].decode("utf-8", errors="replace")
        line, col = line_col(prefix, len(prefix))
        raise InputFileError(
            f"{path}:{line}:{col}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-encode the file as UTF-8"
        ) from exc


def parse_file(path: Path, display: str, lenient_json: bool = False) -> ParsedFile:
    """Parse one data file into items. File-level failures raise ``InputFileError``."""
    suffix = data_suffix(path)
    data = read_bytes(path)
    if suffix == ".tsv":
        return _parse_tsv(data, display)
    if suffix in (".jsonl", ".ndjson"):
        return _parse_jsonl(data, display)
    text = decode_text(data, display)
    stripped = text.lstrip()
    if not stripped:
        return ParsedFile("records", [])
    if stripped[0] == "[":
        return _parse_json_array(text, display, lenient_json)
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputFileError(f"{display}: JSON nested too deeply to parse") from None
    except json.JSONDecodeError as exc:
        if exc.msg.startswith("Extra data") and stripped[0] == "{":
            # A ".json" file that is really JSON Lines.
            return _parse_jsonl(data, display)
        raise InputFileError(
            f"{display}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from exc
    if isinstance(value, dict):
        return ParsedFile("document", [], document=value)
    raise InputFileError(
        f"{display}: top-level JSON is a {type(value).__name__}; expected an array of objects or one object"
    )


def _parse_json_array(text: str, display: str, lenient: bool) -> ParsedFile:
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputFileError(f"{display}: JSON nested too deeply to parse") from None
    except json.JSONDecodeError as exc:
        if not lenient:
            raise InputFileError(
                f"{display}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}. "
                "Fix the file, or set `lenient: true` on this source to keep the records that parse "
                "and reject the rest with reason=parse_error."
            ) from exc
        return _parse_json_array_lenient(text, display)
    if not isinstance(value, list):
        raise InputFileError(f"{display}: expected a JSON array")
    return ParsedFile("records", [], values=value)


def _parse_json_array_lenient(text: str, display: str) -> ParsedFile:
    """Element-by-element recovery: keep what parses, quarantine the rest with positions."""
    decoder = json.JSONDecoder()
    items: list[Item] = []
    warnings: list[str] = []
    pos = text.index("[") + 1
    n = len(text)
    row = 0

    def skip_ws(p: int) -> int:
        while p < n and text[p] in " \t\r\n":
            p += 1
        return p

    while True:
        pos = skip_ws(pos)
        if pos >= n:
            line, col = line_col(text, pos)
            warnings.append(f"{display}:{line}:{col}: file ends before the closing ']'")
            break
        if text[pos] == "]":
            break
        if text[pos] == ",":
            line, col = line_col(text, pos)
            after = skip_ws(pos + 1)
            if after < n and text[after] == "]":
                warnings.append(f"{display}:{line}:{col}: trailing comma before ']' ignored")
            else:
                warnings.append(f"{display}:{line}:{col}: extra comma ignored")
            pos += 1
            continue
        line, col = line_col(text, pos)
        try:
            value, end = decoder.raw_decode(text, pos)
        except RecursionError:
            raise InputFileError(
                f"{display}:{line}:{col}: JSON nested too deeply to parse"
            ) from None
        except json.JSONDecodeError as exc:
            eline, ecol = line_col(text, exc.pos)
            # Resynchronise at the next line that opens an object.
            nxt = text.find("\n", exc.pos)
            nxt = n if nxt < 0 else nxt
            while nxt < n:
                candidate = skip_ws(nxt)
                if candidate < n and text[candidate] == "{":
                    break
                nl = text.find("\n", nxt + 1)
                nxt = n if nl < 0 else nl
            raw = text[pos:nxt]
            items.append(
                Item(
                    row,
                    line,
                    None,
                    RowError(
                        "parse_error", f"invalid JSON at line {eline}, column {ecol}: {exc.msg}"
                    ),
                    raw,
                )
            )
            row += 1
            pos = nxt
            continue
        items.append(Item(row, line, value))
        row += 1
        pos = skip_ws(end)
        if pos < n and text[pos] == ",":
            after = skip_ws(pos + 1)
            if after < n and text[after] == "]":
                line, col = line_col(text, pos)
                warnings.append(f"{display}:{line}:{col}: trailing comma before ']' ignored")
            pos += 1
    return ParsedFile("records", items, warnings=warnings)


def _parse_jsonl(data: bytes, display: str) -> ParsedFile:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    line_numbers = [n for n, raw in enumerate(lines, start=1) if raw.strip()]
    # Fast path: one C-level parse of all lines as an array; any bad line falls back to per-line.
    try:
        values = json.loads(b"[" + b",".join(lines[n - 1] for n in line_numbers) + b"]")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        values = None
    if isinstance(values, list) and len(values) == len(line_numbers):
        return ParsedFile("records", [], values=values, lines=line_numbers)
    return _parse_jsonl_lines(data, display)


def _decoded_lines(data: bytes, items: list[Item]) -> Iterator[tuple[int, str]]:
    """Non-blank lines as (1-based line, text), BOM and CR dropped. A line that is not UTF-8
    becomes an ``encoding_error`` item in ``items`` instead."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            detail = f"not valid UTF-8 at byte {exc.start} of the line"
            items.append(
                _line_error(
                    len(items),
                    line_no,
                    "encoding_error",
                    detail,
                    raw.decode("utf-8", errors="replace"),
                )
            )
            continue
        yield line_no, text


def _line_error(row: int, line_no: int, reason: str, detail: str, raw: str) -> Item:
    return Item(row, line_no, None, RowError(reason, detail), raw)


def _parse_jsonl_lines(data: bytes, display: str) -> ParsedFile:
    items: list[Item] = []
    for line_no, text in _decoded_lines(data, items):
        row = len(items)
        try:
            items.append(Item(row, line_no, json.loads(text)))
        except RecursionError:
            items.append(
                _line_error(
                    row, line_no, "parse_error", "JSON nested too deeply", text[:MAX_RAW_CHARS]
                )
            )
        except json.JSONDecodeError as exc:
            detail = f"invalid JSON at column {exc.colno}: {exc.msg}"
            items.append(_line_error(row, line_no, "parse_error", detail, text))
    return ParsedFile("records", items)


def _parse_tsv(data: bytes, display: str) -> ParsedFile:
    items: list[Item] = []
    for line_no, text in _decoded_lines(data, items):
        items.append(Item(len(items), line_no, text.split("\t")))
    return ParsedFile("tsv", items)


def sample_keys(items: Sequence[Item], limit: int = 50) -> set[str]:
    keys: set[str] = set()
    for item in items[:limit]:
        if isinstance(item.value, dict):
            keys.update(item.value)
    return keys


# --------------------------------------------------------------------------- row helpers


def take_text(obj: dict[str, Any], names: Sequence[str], *, required: bool, what: str) -> str:
    """Pop the first present column among ``names`` as text ("" when absent and optional)."""
    for name in names:
        if name in obj:
            value = obj.pop(name)
            if value is None:
                if required:
                    raise RowError("missing_field", f"field {name!r} is null")
                return ""
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise RowError(
                "wrong_type", f"field {name!r} should be text, got {type(value).__name__}"
            )
    if required:
        raise RowError(
            "missing_field", f"missing required field {what!r} (looked for {', '.join(names)})"
        )
    return ""


def take_optional_text(obj: dict[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        if name in obj:
            value = obj.pop(name)
            if value is None:
                return None
            if isinstance(value, str):
                return value
            return (
                json.dumps(value, ensure_ascii=False)
                if not isinstance(value, (int, float))
                else str(value)
            )
    return None
