"""Bytes in bounded memory: open one input file, decompress it in chunks, split it into lines.

A :class:`DataStream` refuses what is not a regular file before opening it (a FIFO would block
``open()`` forever, a device reads without end), hashes the bytes as they are read (the manifest's
fingerprint is of what was ingested, not of what is on disk later), checks every compressed stream
ends where its format says it ends, and notices a file that changed while it was read. Peak memory
is one chunk of compressed input plus what it expands to, whatever the file's size.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import zlib
from collections.abc import Iterator
from io import BufferedReader
from pathlib import Path

from curate.errors import InputFileError

try:  # ISA-L's gzip (the isal package, a dependency); the standard library's without it
    from isal import igzip as _fast_gzip
except ImportError:  # pragma: no cover - a platform without isal wheels
    _fast_gzip = None  # type: ignore[assignment]

# Decompressed bytes handed on at a time.
CHUNK_BYTES = 1 << 20
# Compressed zstd bytes fed to the decompressor at a time. zstd expands at most ~32,768x (one RLE
# block), so 4 KiB of input can never become more than ~128 MiB at once, even for a bomb.
_ZSTD_INPUT_BYTES = 4096


def check_regular(path: Path, display: str) -> os.stat_result:
    """The file's stat, following links; refuse anything that is not a regular file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise InputFileError(
                f"{display}: broken symbolic link (points to {os.readlink(path)})"
            ) from None
        raise InputFileError(f"{display}: no such file (was it removed during the run?)") from None
    except OSError as exc:  # ELOOP for a link cycle, EACCES, ...
        raise InputFileError(f"{display}: cannot read file ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a named pipe (FIFO)"
            if stat.S_ISFIFO(info.st_mode)
            else "a character device"
            if stat.S_ISCHR(info.st_mode)
            else "a block device"
            if stat.S_ISBLK(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )
        raise InputFileError(f"{display}: is {kind}; curate reads regular files only")
    return info


class _HashingReader:
    """A read-only file wrapper that hashes and counts the bytes that pass through it."""

    def __init__(self, handle: BufferedReader) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._handle.readinto(buffer)
        self.digest.update(memoryview(buffer)[:count])
        self.size += count
        return count

    def readable(self) -> bool:
        return True


class _Damaged(Exception):
    """A compressed stream that is cut or corrupt (raised as its error unless lenient)."""

    def __init__(self, error: InputFileError) -> None:
        super().__init__(str(error))
        self.error = error


class DataStream:
    """One input file, decompressed (.gz / .zst) as it is read.

    Iterate :meth:`chunks` once; then :meth:`fingerprint` is the size and sha256 of the bytes
    read, and the file is checked to be the one that was opened, unchanged.
    """

    def __init__(self, path: Path, display: str, lenient: bool = False) -> None:
        self.path = path
        self.display = display
        # lenient: a cut or corrupt compressed stream ends the data where the damage starts and
        # is described here, instead of raising.
        self.lenient = lenient
        self.damage: str | None = None
        self._stat = check_regular(path, display)
        self._handle = self._open()
        self._raw = _HashingReader(self._handle)
        self.decompressed = 0
        name = path.name.lower()
        self.compression = (
            "gzip" if name.endswith(".gz") else "zstd" if name.endswith((".zst", ".zstd")) else None
        )

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        try:
            if self.compression == "gzip":
                pieces = self._gzip(size)
            elif self.compression == "zstd":
                pieces = self._zstd()
            else:
                pieces = iter(lambda: self._raw.read(size), b"")
            try:
                for piece in pieces:
                    self.decompressed += len(piece)
                    yield piece
            except _Damaged as damaged:
                if not self.lenient:
                    raise damaged.error from damaged.__cause__
                self.damage = str(damaged.error)
            self._check_unchanged()
        finally:
            self._handle.close()

    def _gzip(self, size: int) -> Iterator[bytes]:
        if _fast_gzip is None:
            yield from self._stdlib_gzip(size)
            return
        # ISA-L inflates about 3x faster than zlib, but hands out less of a damaged stream (it
        # decodes ahead) and words its errors differently. On any error the file is decoded
        # again from the start by the standard library, which gives exactly its data and error:
        # the bytes already handed on are skipped, and the new reader's hash is the fingerprint.
        reader = _fast_gzip.GzipFile(fileobj=self._raw, mode="rb")
        delivered = 0
        while True:
            try:
                piece = reader.read1(size)
            except Exception:  # any damage: the standard library says what it is
                break
            if not piece:
                return
            delivered += len(piece)
            yield piece
        self._reopen()
        yield from self._stdlib_gzip(size, skip=delivered)

    def _stdlib_gzip(self, size: int, skip: int = 0) -> Iterator[bytes]:
        reader = gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[call-overload]
        while True:
            try:
                piece = reader.read1(size)  # read() would drop what it had at a cut
            except EOFError as exc:  # the stream ends inside a member: a cut file
                raise _Damaged(self._truncated("gzip")) from exc
            except (OSError, zlib.error) as exc:
                raise _Damaged(
                    InputFileError(
                        f"{self.display}: cannot decompress gzip after {self.decompressed} "
                        f"bytes ({exc or type(exc).__name__})"
                    )
                ) from exc
            if not piece:
                return
            if skip:
                dropped = min(skip, len(piece))
                skip -= dropped
                piece = piece[dropped:]
                if not piece:
                    continue
            yield piece

    def _open(self) -> BufferedReader:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputFileError(
                f"{self.display}: cannot read file ({exc.strerror or exc})"
            ) from exc

    def _reopen(self) -> None:
        """Read the file again from its start, through a new hashing reader."""
        self._handle.close()
        self._handle = self._open()
        self._raw = _HashingReader(self._handle)

    def _zstd(self) -> Iterator[bytes]:
        import zstandard

        decompressor = zstandard.ZstdDecompressor()
        frame = decompressor.decompressobj()
        started = False  # inside a frame whose end has not been seen
        while True:
            data = self._raw.read(_ZSTD_INPUT_BYTES)
            if not data:
                break
            while data:
                try:
                    out = frame.decompress(data)
                except zstandard.ZstdError as exc:
                    raise _Damaged(
                        InputFileError(
                            f"{self.display}: cannot decompress zstd after {self.decompressed} "
                            f"bytes ({exc or type(exc).__name__})"
                        )
                    ) from exc
                started = True
                if out:
                    yield out
                if frame.eof:  # a frame ended: the rest belongs to the next frame, if any
                    data = frame.unused_data
                    frame = decompressor.decompressobj()
                    started = False
                else:
                    data = b""
        if started:
            raise _Damaged(self._truncated("zstd"))

    def _truncated(self, kind: str) -> InputFileError:
        return InputFileError(
            f"{self.display}: truncated {kind} stream: the file ends inside a compressed block "
            f"after {self.decompressed} decompressed bytes; the rest of the data is missing"
        )

    def _check_unchanged(self) -> None:
        try:
            now = self.path.stat()
        except OSError:
            raise InputFileError(
                f"{self.display}: the file was removed while it was read"
            ) from None
        before = self._stat
        if (
            now.st_ino != before.st_ino
            or now.st_size != before.st_size
            or now.st_mtime_ns != before.st_mtime_ns
            or self._raw.size != before.st_size
        ):
            raise InputFileError(
                f"{self.display}: the file changed while it was read ({before.st_size} bytes when "
                f"opened, {self._raw.size} read, {now.st_size} now); rerun once it is complete"
            )

    def fingerprint(self) -> dict[str, object]:
        """Size and sha256 of the bytes read (the whole file once :meth:`chunks` is done)."""
        return {"size": self._raw.size, "sha256": self._raw.digest.hexdigest()}


def split_lines(
    chunks: Iterator[bytes], max_line_bytes: int, separator: bytes = b"\n"
) -> Iterator[tuple[int, bytes, int]]:
    """``(line number, line, full length)`` for every line, CR stripped, in bounded memory.

    A line longer than ``max_line_bytes`` is not kept whole: its first ``max_line_bytes`` bytes come
    with its real length, so the caller can reject it without ever holding it.
    """
    line_no = 0
    pending: list[bytes] = []
    pending_len = 0
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(separator, start)
            if end < 0:
                rest = chunk[start:]
                if pending_len < max_line_bytes:
                    pending.append(rest[: max_line_bytes - pending_len])
                pending_len += len(rest)
                break
            piece = chunk[start:end]
            line_no += 1
            if pending:
                if pending_len < max_line_bytes:
                    pending.append(piece[: max_line_bytes - pending_len])
                length = pending_len + len(piece)
                line = b"".join(pending)
                pending, pending_len = [], 0
            else:
                line = piece if len(piece) <= max_line_bytes else piece[:max_line_bytes]
                length = len(piece)
            yield line_no, line.rstrip(b"\r"), length
            start = end + 1
    if pending_len:
        yield line_no + 1, b"".join(pending).rstrip(b"\r"), pending_len


__all__ = ["CHUNK_BYTES", "DataStream", "check_regular", "split_lines"]
