"""Parsing: a data file into batches of items, with file and line numbers, in bounded memory.

JSON Lines and TSV are read line by line, a JSON array element by element (the standard library's
decoder parses each element; only the brackets and commas between elements are handled here),
parquet by record batch. One JSON document (a Super-NaturalInstructions task) is read whole, up to a
limit. Every row is parsed on its own, so a bad row is a reject naming its line, not a lost file.
Turning items into Arrow records and rejects is :mod:`curate.ingest.builder`.

What happens to odd input, the same for JSON Lines and JSON arrays:

- ``NaN`` / ``Infinity``, an integer of over 4,300 digits, and a key given twice in one object:
  the row is rejected as ``parse_error`` saying which (none of them round-trips through JSON).
- A lone UTF-16 surrogate escape (``"\\ud800"``, common in scraped chat logs) cannot be written
  as UTF-8: it becomes U+FFFD, and the file gets a warning counting the rows.
- A row of over ``max_record_bytes`` is rejected as ``record_too_large`` without being parsed.
- A UTF-16/32 file, binary data, and a parquet or compressed file under a plain name: an error
  saying what the file is and what to do.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from curate.errors import InputFileError, RowReject
from curate.ingest.files import data_suffix
from curate.ingest.stream import DataStream, check_regular, split_lines

# Longest raw text kept in a parse-error reject (the row is quarantined, not lost: see detail).
MAX_RAW_CHARS = 100_000
# Defaults of the reader limits.
BATCH_ROWS = 100_000
MAX_RECORD_BYTES = 32 << 20
# One JSON document, or a broken JSON array read whole to recover what parses.
MAX_WHOLE_BYTES = 512 << 20


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
    """One batch of rows of a file (rows ``first_row`` .. ``first_row + len - 1``)."""

    kind: str  # "records" (list of rows), "document" (one JSON object), "tsv" (list of field lists)
    items: list[Item]
    document: Any = None
    warnings: list[str] = field(default_factory=list)
    # A batch that parsed cleanly keeps its plain values; Items are built only if needed.
    values: list[Any] | None = None
    lines: list[int] | None = None  # 1-based line of each value
    first_row: int = 0

    def all_items(self) -> list[Item]:
        if self.values is not None and not self.items:
            lines: list[int | None] = [*self.lines] if self.lines else [None for _ in self.values]
            self.items = [
                Item(self.first_row + i, line, v)
                for i, (line, v) in enumerate(zip(lines, self.values, strict=True))
            ]
        return self.items

    def __len__(self) -> int:
        return len(self.values) if self.values is not None and not self.items else len(self.items)


@dataclass
class ParsedStream:
    """A file being parsed: its layout, and its rows as batches (iterate ``batches`` once)."""

    kind: str
    layout: str  # jsonl, json_array, json_document, tsv, parquet
    batches: Iterator[ParsedFile]
    warnings: list[str]
    stream: DataStream | None = None
    document: Any = None
    path: Path | None = None

    def fingerprint(self) -> dict[str, object]:
        """Size and sha256 of the bytes read (call once the batches are consumed)."""
        if self.stream is not None:
            return self.stream.fingerprint()
        from curate.ingest.files import file_fingerprint

        return file_fingerprint(self.path) if self.path is not None else {}


@dataclass
class Limits:
    batch_rows: int = BATCH_ROWS
    max_record_bytes: int = MAX_RECORD_BYTES
    max_whole_bytes: int = MAX_WHOLE_BYTES


# --------------------------------------------------------------------------- one value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"key {twice!r} appears twice in one object")
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
# Finds where an element ends when the strict decoder refused it for its content, not its syntax.
_SKIPPER = json.JSONDecoder(parse_int=len, parse_constant=lambda _: None)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_WHITESPACE = re.compile(r"[ \t\r\n]*")
# Between two elements of an array: a comma, and the start of the next element (not a "]").
_NEXT_ELEMENT = re.compile(r"[ \t\r\n]*,[ \t\r\n]*(?=[^ \t\r\n,\]])")


def _fix_surrogates(value: Any) -> Any:
    """Lone surrogates (from ``\\udXXX`` escapes) replaced by U+FFFD, in every string."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return (
                value.encode("utf-8", "surrogatepass")
                .decode("utf-8", "replace")
                .replace("\ufffd\ufffd\ufffd", "\ufffd")
            )
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    return value


def _value_error(exc: ValueError) -> RowError:
    text = str(exc)
    if "integer string conversion" in text or "Exceeds the limit" in text:
        text = "an integer of over 4,300 digits"
    return RowError("parse_error", text)


class _Surrogates:
    """Counts rows whose lone surrogates were replaced, for one warning per file."""

    def __init__(self) -> None:
        self.rows = 0

    def clean(self, raw: str, value: Any) -> Any:
        if _SURROGATE_ESCAPE.search(raw) is None:
            return value
        fixed = _fix_surrogates(value)
        if fixed != value:
            self.rows += 1
        return fixed

    def warn(self, display: str, warnings: list[str]) -> None:
        if self.rows:
            warnings.append(
                f"{display}: {self.rows} rows had a lone UTF-16 surrogate escape (like \\ud800); "
                "each was replaced by U+FFFD"
            )


# --------------------------------------------------------------------------- opening


def open_parsed(
    path: Path, display: str, lenient_json: bool = False, limits: Limits | None = None
) -> ParsedStream:
    """Start parsing one data file. File-level failures raise ``InputFileError``."""
    limits = limits or Limits()
    suffix = data_suffix(path)
    if suffix == ".parquet":
        check_regular(path, display)
        return ParsedStream(
            "records", "parquet", _parquet_batches(path, display, limits), [], path=path
        )
    stream = DataStream(path, display, lenient=lenient_json)
    chunks = stream.chunks()
    first = b""
    for first in chunks:
        if first:
            break
    _check_encoding(first, display, stream.compression is not None)
    chunks = chain([first], chunks)
    warnings: list[str] = []
    if suffix == ".tsv":
        lines = _lines(chunks, first, limits, display, warnings)
        return ParsedStream("tsv", "tsv", _tsv_batches(lines, display, limits), warnings, stream)
    if suffix in (".jsonl", ".ndjson"):
        lines = _lines(chunks, first, limits, display, warnings)
        batches = _jsonl_batches(lines, display, limits, warnings)
        return ParsedStream("records", "jsonl", batches, warnings, stream)
    head = first.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return ParsedStream("records", "json_array", iter(()), warnings, stream)
    if head[:1] == b"[":
        if lenient_json:
            text = _decode_whole(
                b"".join(_bounded(chunks, limits.max_whole_bytes, display)), display
            )
            batches = _array_batches(iter([text]), display, True, limits, warnings)
        else:
            batches = _array_batches(_decoded(chunks, display), display, False, limits, warnings)
        return ParsedStream("records", "json_array", batches, warnings, stream)
    if head[:1] == b"{" and _starts_json_lines(head):
        lines = _lines(chunks, first, limits, display, warnings)
        batches = _jsonl_batches(lines, display, limits, warnings)
        return ParsedStream("records", "jsonl", batches, warnings, stream)
    data = b"".join(_bounded(chunks, limits.max_whole_bytes, display))
    text = _decode_whole(data, display)
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputFileError(f"{display}: JSON nested too deeply to parse") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and head[:1] == b"{":  # JSON Lines with a long first line
            lines = _lines(iter([data]), data, limits, display, warnings)
            batches = _jsonl_batches(lines, display, limits, warnings)
            return ParsedStream("records", "jsonl", batches, warnings, stream)
        raise InputFileError(
            f"{display}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from exc
    except ValueError as exc:
        raise InputFileError(f"{display}: invalid JSON: {_value_error(exc).detail}") from exc
    if isinstance(value, dict):
        return ParsedStream("document", "json_document", iter(()), warnings, stream, value)
    raise InputFileError(
        f"{display}: top-level JSON is a {type(value).__name__}; expected an array of objects or one object"
    )


def _bounded(chunks: Iterator[bytes], limit: int, display: str) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise InputFileError(
                f"{display}: over {limit >> 20} MiB once decompressed, too large to read whole (a "
                "single JSON object, or `lenient: true` on a JSON array); split it or write it as "
                "JSON Lines"
            )
        yield chunk


def _starts_json_lines(head: bytes) -> bool:
    """A ``.json`` file whose first line is a whole JSON object with more after it is JSON Lines
    (pretty-printed single objects span lines and fail the first-line parse)."""
    end = head.find(b"\n")
    if end < 0:
        return False
    try:
        first = json.loads(head[:end])
    except ValueError:
        return False
    return isinstance(first, dict) and bool(head[end:].strip())


def _check_encoding(first: bytes, display: str, compressed: bool) -> None:
    """Name what a file that is not UTF-8 text is, instead of failing on its first byte."""
    if first.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise InputFileError(f"{display}: UTF-32 text detected; re-encode the file as UTF-8")
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputFileError(f"{display}: UTF-16 text detected; re-encode the file as UTF-8")
    if first.startswith(b"PAR1"):
        raise InputFileError(f"{display}: a parquet file; give it a .parquet name to read it")
    if not compressed and first.startswith(b"\x1f\x8b"):
        raise InputFileError(f"{display}: gzip-compressed data; give the file a .gz suffix")
    if not compressed and first.startswith(b"\x28\xb5\x2f\xfd"):
        raise InputFileError(f"{display}: zstd-compressed data; give the file a .zst suffix")
    head = first[:4096]
    if b"\x00" in head:
        odd, even = head[1::2].count(0), head[0::2].count(0)
        # ASCII as UTF-16: a NUL in every other byte, almost none in the others.
        if max(odd, even) > len(head) // 4 and min(odd, even) < len(head) // 40:
            raise InputFileError(
                f"{display}: UTF-16 text detected (no byte-order mark); re-encode the file as UTF-8"
            )
        raise InputFileError(f"{display}: binary data (NUL bytes in the first 4 KiB), not text")


def _lines(
    chunks: Iterator[bytes], first: bytes, limits: Limits, display: str, warnings: list[str]
) -> Iterator[tuple[int, bytes, int]]:
    """Lines of a line-based file; old Mac files that end lines with CR alone are split on CR."""
    separator = b"\n"
    if b"\n" not in first and b"\r" in first:
        separator = b"\r"
        warnings.append(f"{display}: lines end with CR only (old Mac style); read as line ends")
    lines = split_lines(chunks, limits.max_record_bytes, separator)
    first_line = next(lines, None)
    if first_line is None:
        return
    number, text, length = first_line
    if text.startswith(b"\xef\xbb\xbf"):
        text, length = text[3:], length - 3
    yield number, text, length
    yield from lines


def _decoded(chunks: Iterator[bytes], display: str) -> Iterator[str]:
    """UTF-8 text of a byte stream, chunk by chunk; a bad byte is an error naming its line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    offset = 0
    newlines = 0
    for chunk in chunks:
        try:
            yield decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            prefix = chunk[: exc.start]
            line = newlines + prefix.count(b"\n") + 1
            col = exc.start - (prefix.rfind(b"\n") + 1) + 1
            raise InputFileError(
                f"{display}:{line}:{col}: not valid UTF-8 (byte 0x{chunk[exc.start]:02x} at offset "
                f"{offset + exc.start}); re-encode the file as UTF-8"
            ) from exc
        offset += len(chunk)
        newlines += chunk.count(b"\n")
    try:
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{display}: not valid UTF-8 (the file ends inside a character); re-encode it as UTF-8"
        ) from exc


def _decode_whole(data: bytes, display: str) -> str:
    return "".join(_decoded(iter([data]), display))


def decode_text(data: bytes, path: str) -> str:
    """Whole bytes as UTF-8 text; a bad byte is an error naming its line."""
    return _decode_whole(data, path)


# --------------------------------------------------------------------------- JSON Lines, TSV


def _too_large(row: int, line_no: int, raw: bytes, length: int, limit: int) -> Item:
    return Item(
        row,
        line_no,
        None,
        RowError(
            "record_too_large",
            f"a line of {length} bytes is over the {limit}-byte limit (max_record_bytes); "
            "it was not parsed",
        ),
        raw[:1000].decode("utf-8", "replace"),
    )


class _Batcher:
    """Rows into batches of ``size``: a row is its parsed value, or an ``Item`` carrying its
    error. A batch of records with no error keeps plain values (the columnar path needs no Item
    per row); any other batch is made of Items."""

    def __init__(self, size: int, kind: str = "records") -> None:
        self.size = size
        self.kind = kind
        self.row = 0  # index in the file of the next row
        self._start()

    def _start(self) -> None:
        self.first_row = self.row
        self.values: list[Any] = []
        self.lines: list[int] = []
        self.clean = self.kind == "records"

    def add(self, value: Any, line: int) -> ParsedFile | None:
        """Add a row; the batch when it is full."""
        if type(value) is Item:
            self.clean = False
        self.values.append(value)
        self.lines.append(line)
        self.row += 1
        return self.flush() if len(self.values) >= self.size else None

    def flush(self) -> ParsedFile | None:
        """The rows not yet handed out, as a batch (None when there are none)."""
        if not self.values:
            return None
        values, lines, first, clean = self.values, self.lines, self.first_row, self.clean
        self._start()
        if clean:
            return ParsedFile(self.kind, [], values=values, lines=lines, first_row=first)
        items = [
            value if type(value) is Item else Item(first + i, line, value)
            for i, (line, value) in enumerate(zip(lines, values, strict=True))
        ]
        return ParsedFile(self.kind, items, first_row=first)


class _LineParser:
    """One JSON Lines row: the C scanner directly for a clean line, the full decoder (for its
    messages) for anything else."""

    def __init__(self, display: str, warnings: list[str]) -> None:
        self.display = display
        self.warnings = warnings
        self.surrogates = _Surrogates()
        self.trailing_commas = 0
        self._scan = _DECODER.scan_once  # type: ignore[attr-defined]

    def parse(self, row: int, line_no: int, raw: bytes) -> Any:
        """The row's value, or an ``Item`` carrying its error."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            detail = f"not valid UTF-8 at byte {exc.start} of the line"
            return Item(
                row,
                line_no,
                None,
                RowError("encoding_error", detail),
                raw.decode("utf-8", errors="replace"),
            )
        try:
            value, end = self._scan(text, 0)
            if end != len(text):
                raise ValueError("more after the value")
        except (StopIteration, ValueError, RecursionError):
            return self._slow(row, line_no, text)
        if "\\u" in text:
            value = self.surrogates.clean(text, value)
        return value

    def _slow(self, row: int, line_no: int, text: str) -> Any:
        decode = _DECODER.decode
        try:
            value = decode(text)
        except json.JSONDecodeError as exc:
            stripped = text.rstrip()
            if exc.msg == "Extra data" and stripped.endswith(","):
                try:  # `{...},` on every line: an array printed without its brackets
                    value = decode(stripped[:-1])
                except ValueError:
                    pass
                else:
                    self.trailing_commas += 1
                    return self.surrogates.clean(text, value)
            detail = f"invalid JSON at column {exc.colno}: {exc.msg}"
            return Item(row, line_no, None, RowError("parse_error", detail), text)
        except RecursionError:
            error = RowError("parse_error", "JSON nested too deeply")
            return Item(row, line_no, None, error, text[:MAX_RAW_CHARS])
        except ValueError as exc:
            return Item(row, line_no, None, _value_error(exc), text)
        return self.surrogates.clean(text, value)

    def finish(self) -> None:
        self.surrogates.warn(self.display, self.warnings)
        if self.trailing_commas:
            self.warnings.append(
                f"{self.display}: {self.trailing_commas} lines end with a comma after the "
                "object; ignored"
            )


def _jsonl_batches(
    lines: Iterator[tuple[int, bytes, int]], display: str, limits: Limits, warnings: list[str]
) -> Iterator[ParsedFile]:
    parser = _LineParser(display, warnings)
    limit = limits.max_record_bytes
    batcher = _Batcher(limits.batch_rows)
    for line_no, raw, length in lines:
        if not raw or (raw[0] in b" \t\r\n" and not raw.strip()):
            continue
        if length > limit:
            value: Any = _too_large(batcher.row, line_no, raw, length, limit)
        else:
            value = parser.parse(batcher.row, line_no, raw)
        batch = batcher.add(value, line_no)
        if batch is not None:
            yield batch
    rest = batcher.flush()
    if rest is not None:
        yield rest
    parser.finish()


def _tsv_batches(
    lines: Iterator[tuple[int, bytes, int]], display: str, limits: Limits
) -> Iterator[ParsedFile]:
    batcher = _Batcher(limits.batch_rows, "tsv")
    for line_no, raw, length in lines:
        if not raw.strip():
            continue
        value: Any
        if length > limits.max_record_bytes:
            value = _too_large(batcher.row, line_no, raw, length, limits.max_record_bytes)
        else:
            try:
                value = raw.decode("utf-8").split("\t")
            except UnicodeDecodeError as exc:
                detail = f"not valid UTF-8 at byte {exc.start} of the line"
                error = RowError("encoding_error", detail)
                value = Item(batcher.row, line_no, None, error, raw.decode("utf-8", "replace"))
        batch = batcher.add(value, line_no)
        if batch is not None:
            yield batch
    rest = batcher.flush()
    if rest is not None:
        yield rest


# --------------------------------------------------------------------------- JSON arrays


class _ArrayReader:
    """Elements of a JSON array over a sliding text buffer, each parsed by the stdlib decoder.

    The buffer holds the element being parsed plus at most a chunk: an element is retried with
    more text only while it is shorter than ``max_chars``, so memory stays bounded.
    """

    def __init__(
        self,
        texts: Iterator[str],
        display: str,
        lenient: bool,
        max_chars: int,
        warnings: list[str],
    ) -> None:
        self.texts = texts
        self.display = display
        self.lenient = lenient
        self.max_chars = max_chars
        self.warnings = warnings
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number at self.pos
        self.counted = 0  # buffer offset self.line was counted up to
        self.resynced = False
        self.escapes = False
        self._scan = _DECODER.scan_once  # type: ignore[attr-defined]

    # Buffer management -------------------------------------------------------
    def fill(self) -> bool:
        """Append more text, dropping what is before ``pos``; False at the end of the file."""
        piece = next(self.texts, None)
        if piece is None:
            self.eof = True
            return False
        self.line_at(self.pos)
        self.buf = self.buf[self.pos :] + piece
        # Most files have no \u escape at all: then no element needs the surrogate check.
        self.escapes = self.escapes or "\\u" in piece
        self.counted -= self.pos
        self.pos = 0
        return True

    def line_at(self, offset: int) -> int:
        if offset > self.counted:
            self.line += self.buf.count("\n", self.counted, offset)
            self.counted = offset
        return self.line

    def where(self, offset: int) -> tuple[int, int]:
        line = self.line_at(offset)
        col = offset - (self.buf.rfind("\n", 0, offset) + 1) + 1
        return line, col

    def skip_ws(self) -> bool:
        """Move past whitespace; False when the file ends first."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return True
            if not self.fill():
                return False

    def fail(self, offset: int, message: str) -> InputFileError:
        line, col = self.where(offset)
        return InputFileError(
            f"{self.display}:{line}:{col}: invalid JSON: {message}. Fix the file, or set "
            "`lenient: true` on this source to keep the records that parse and reject the rest "
            "with reason=parse_error."
        )

    def note(self, offset: int, message: str) -> None:
        line, col = self.where(offset)
        self.warnings.append(f"{self.display}:{line}:{col}: {message}")

    # Elements ----------------------------------------------------------------
    def batches(self, batch_rows: int) -> Iterator[ParsedFile]:
        surrogates = _Surrogates()
        self.skip_ws()
        self.pos += 1  # the opening "[" (checked by the caller)
        batcher = _Batcher(batch_rows)
        after_value = False
        while True:
            if after_value:  # the common case, in one regex: a comma, then the next element
                found = _NEXT_ELEMENT.match(self.buf, self.pos)
                if found is not None:
                    self.pos = found.end()
                    after_value = False
            if not self.skip_ws():
                if not self.lenient:
                    raise self.fail(self.pos, "the file ends before the closing ']'")
                self.note(self.pos, "file ends before the closing ']'")
                break
            char = self.buf[self.pos]
            if char == "]":
                self.pos += 1
                if self.skip_ws():
                    if not self.lenient:
                        raise self.fail(self.pos, "Extra data after the closing ']'")
                    self.note(self.pos, "data after the closing ']' ignored")
                break
            if char == ",":
                closing = self._comma_before_end()
                if not after_value or closing >= 0:
                    if not self.lenient:
                        raise self.fail(closing if closing >= 0 else self.pos, "Expecting value")
                    self.note(
                        self.pos,
                        "trailing comma before ']' ignored"
                        if closing >= 0
                        else "extra comma ignored",
                    )
                self.pos += 1
                after_value = False
                continue
            if after_value:
                if not self.lenient:
                    raise self.fail(self.pos, "Expecting ',' delimiter")
                self.note(self.pos, "missing comma between elements")
            line = self.line_at(self.pos)
            batch = batcher.add(self._element(batcher.row, line, surrogates), line)
            if batch is not None:
                yield batch
            # After a recovered broken element the reader stands at the next element's start.
            after_value = not self.resynced
            self.resynced = False
        rest = batcher.flush()
        if rest is not None:
            yield rest
        surrogates.warn(self.display, self.warnings)

    def _comma_before_end(self) -> int:
        """Where the ``]`` is when the comma at ``pos`` is followed only by whitespace and ``]``;
        -1 otherwise."""
        probe = self.pos + 1
        while True:
            probe = _WHITESPACE.match(self.buf, probe).end()  # type: ignore[union-attr]
            if probe < len(self.buf):
                return probe if self.buf[probe] == "]" else -1
            shift = self.pos
            if not self.fill():
                return -1
            probe -= shift

    def _element(self, row: int, line: int, surrogates: _Surrogates) -> Any:
        """The element's value, or an ``Item`` carrying its error."""
        while True:
            try:
                value, end = self._scan(self.buf, self.pos)
            except StopIteration:
                error = json.JSONDecodeError("Expecting value", self.buf, self.pos)
                if not self.eof and len(self.buf) - self.pos <= self.max_chars:
                    self._grow()
                    continue
                return self._broken(row, line, error)
            except json.JSONDecodeError as exc:
                if not self.eof and len(self.buf) - self.pos <= self.max_chars:
                    self._grow()
                    continue
                return self._broken(row, line, exc)
            except RecursionError:
                raise self.fail(self.pos, "JSON nested too deeply to parse") from None
            except ValueError as exc:  # NaN, a huge integer, a key given twice
                return self._refused(row, line, exc)
            if end == len(self.buf) and not self.eof:  # a number may go on in the next chunk
                self._grow()
                continue
            start, self.pos = self.pos, end
            if self.escapes and self.buf.find("\\u", start, end) >= 0:
                return surrogates.clean(self.buf[start:end], value)
            return value

    def _grow(self) -> None:
        """More text for an element that does not end in the buffer (doubling, so that a long
        element is retried a logarithmic number of times)."""
        target = 2 * max(len(self.buf) - self.pos, 1)
        while len(self.buf) - self.pos < target and self.fill():
            pass

    def _refused(self, row: int, line: int, exc: ValueError) -> Item:
        try:
            _, end = _SKIPPER.raw_decode(self.buf, self.pos)
        except (ValueError, RecursionError):
            raise self.fail(self.pos, str(exc)) from None
        raw = self.buf[self.pos : end]
        self.pos = end
        return Item(row, line, None, _value_error(exc), raw)

    def _broken(self, row: int, line: int, exc: json.JSONDecodeError) -> Item:
        if len(self.buf) - self.pos > self.max_chars:
            message = f"an element of over {self.max_chars} characters (max_record_bytes)"
        else:
            message = exc.msg
        if not self.lenient:
            raise self.fail(exc.pos if exc.pos < len(self.buf) else self.pos, message)
        eline, ecol = self.where(min(exc.pos, len(self.buf)))
        # Resynchronise at the next line that opens an object.
        scan = min(exc.pos, len(self.buf))
        while True:
            probe = self.buf.find("\n", scan)
            if probe >= 0:
                nxt = _WHITESPACE.match(self.buf, probe).end()  # type: ignore[union-attr]
                if nxt < len(self.buf) and self.buf[nxt] == "{":
                    break
                if nxt < len(self.buf):
                    scan = probe + 1
                    continue
            old_len, shift = len(self.buf), self.pos
            if not self.fill():
                probe = len(self.buf)
                break
            scan = (probe if probe >= 0 else old_len) - shift
        raw = self.buf[self.pos : probe]
        self.pos = probe
        self.resynced = True
        return Item(
            row,
            line,
            None,
            RowError("parse_error", f"invalid JSON at line {eline}, column {ecol}: {message}"),
            raw[:MAX_RAW_CHARS],
        )


def _array_batches(
    texts: Iterator[str], display: str, lenient: bool, limits: Limits, warnings: list[str]
) -> Iterator[ParsedFile]:
    reader = _ArrayReader(texts, display, lenient, limits.max_record_bytes, warnings)
    return reader.batches(limits.batch_rows)


# --------------------------------------------------------------------------- parquet


def _parquet_batches(path: Path, display: str, limits: Limits) -> Iterator[ParsedFile]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(f"{display}: not a readable parquet file ({exc})") from exc
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=limits.batch_rows):
            values = batch.to_pylist()
            yield ParsedFile("records", [], values=values, first_row=row)
            row += len(values)
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(f"{display}: parquet read failed after {row} rows ({exc})") from exc


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
