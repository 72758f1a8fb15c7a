"""Gzip inputs are inflated by ISA-L (``isal``) when it is installed, and a damaged stream is
decoded again by the standard library: data, errors, damage notes and fingerprints are the
standard library's exactly, whichever path read the file."""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import pytest

from curate.errors import InputFileError
from curate.ingest import stream


def _variants() -> dict[str, bytes]:
    rng = random.Random(5)
    data = b"".join(
        b'{"n": %d, "text": "%s"}\n' % (i, b"word " * rng.randrange(40)) for i in range(6000)
    )
    good = gzip.compress(data)
    variants = {
        "good": good,
        "two members": good + gzip.compress(b'{"n": -1}\n'),
        "trailing zeros": good + b"\0" * 16,
        "truncated half": good[: len(good) // 2],
        "truncated trailer": good[:-3],
        "bad crc": good[:-8] + b"\0\0\0\0" + good[-4:],
        "bad length": good[:-4] + b"\0\0\0\0",
        "trailing garbage": good + b"garbage!",
        "not gzip": b"\x1f\x8bXXXXXXXXXXXX",
    }
    for i in range(6):
        flipped = bytearray(good)
        flipped[rng.randrange(10, len(good))] ^= 1 << rng.randrange(8)
        variants[f"bit flip {i}"] = bytes(flipped)
    return variants


def _read(path: Path, lenient: bool) -> dict[str, Any]:
    source = stream.DataStream(path, str(path), lenient=lenient)
    pieces: list[bytes] = []
    try:
        for piece in source.chunks(1 << 14):
            pieces.append(piece)
    except InputFileError as exc:
        return {"data": b"".join(pieces), "error": str(exc)}
    return {"data": b"".join(pieces), "damage": source.damage, "print": source.fingerprint()}


@pytest.mark.parametrize("lenient", [False, True])
def test_the_fast_reader_gives_what_the_standard_library_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lenient: bool
) -> None:
    pytest.importorskip("isal")
    reopened: list[str] = []
    reopen = stream.DataStream._reopen

    def counting_reopen(self: stream.DataStream) -> None:
        reopened.append(self.path.name)
        reopen(self)

    monkeypatch.setattr(stream.DataStream, "_reopen", counting_reopen)
    for name, content in _variants().items():
        path = tmp_path / f"{name.replace(' ', '_')}.jsonl.gz"
        path.write_bytes(content)
        fast = _read(path, lenient)
        with monkeypatch.context() as patch:
            patch.setattr(stream, "_fast_gzip", None)
            standard = _read(path, lenient)
        assert fast == standard, name
    # The sound files were read by ISA-L alone; the damaged ones again by the standard library.
    assert not {"good.jsonl.gz", "two_members.jsonl.gz", "trailing_zeros.jsonl.gz"} & set(reopened)
    assert {"truncated_half.jsonl.gz", "bad_crc.jsonl.gz", "trailing_garbage.jsonl.gz"} <= set(
        reopened
    )
    good = _read(tmp_path / "good.jsonl.gz", lenient)
    assert good["data"].count(b"\n") == 6000 and good["print"]["size"] > 0
    damaged = _read(tmp_path / "truncated_half.jsonl.gz", lenient)
    assert "truncated gzip stream" in (damaged.get("error") or damaged.get("damage") or "")
