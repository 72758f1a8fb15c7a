"""Hostile and careless input: every case ends in a clear error or in exact accounting.

Each case is generated here (nothing large lives in the repo) and read in a forked child under a
memory limit (``RLIMIT_AS``: what the child has at fork plus 1.5 GiB) and a timeout, so a
regression that would swap or hang fails the test instead of the machine. An outcome is either the
error message, or the rows kept, the reject reasons and details, and the warnings: every case
asserts one of them exactly, and ``rows_read == kept + rejected`` for every file read.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import resource
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import CurateError
from curate.ingest import read_file
from curate.ingest.read import FileReader
from curate.ingest.sources import SourceConfig, read_source

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork, rlimits and FIFOs")

HEADROOM = 3 << 29  # 1.5 GiB over what the child has at fork
TIMEOUT_S = 60
ROW = {"instruction": "Name a primary color.", "input": "", "output": "Red."}


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _child(conn: Any, job: Callable[[], dict[str, Any]]) -> None:
    limit = _vm_size() + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        outcome = job()
    except CurateError as exc:
        outcome = {"error": str(exc)}
    except BaseException as exc:  # the failure this suite exists to catch
        outcome = {"traceback": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"}
    conn.send(outcome)
    conn.close()


def limited(job: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``job`` in a forked child under the memory limit and the timeout."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, job))
    process.start()
    child.close()
    if not parent.poll(TIMEOUT_S):
        process.kill()
        process.join()
        pytest.fail(f"hang: no outcome within {TIMEOUT_S} s")
    outcome: dict[str, Any] = parent.recv()
    process.join()
    assert "traceback" not in outcome, outcome["traceback"]
    return outcome


def outcome_of(path: Path, **options: Any) -> dict[str, Any]:
    def job() -> dict[str, Any]:
        result = read_file(path, source="h", **options)
        rejects = result.rejects.to_pylist()
        assert result.rows_read == result.records.num_rows + len(rejects)
        return {
            "kept": result.records.num_rows,
            "instructions": result.records.column("instruction").to_pylist()[:5],
            "outputs": result.records.column("output").to_pylist()[:5],
            "reasons": [r["reason"] for r in rejects],
            "details": [r["detail"] for r in rejects],
            "warnings": result.warnings,
            "format": result.format,
        }

    return limited(job)


def error_of(path: Path, **options: Any) -> str:
    outcome = outcome_of(path, **options)
    assert "error" in outcome, f"expected an error, got {outcome}"
    return str(outcome["error"])


def lines(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


# --------------------------------------------------------------------------- odd values


def test_lone_surrogate_is_replaced_and_counted_in_jsonl_and_arrays(tmp_path: Path) -> None:
    broken = '{"instruction": "Say hi \\ud800", "output": "Hi \\udfff!"}'
    pair = '{"instruction": "Emoji \\ud83d\\ude00", "output": "ok"}'
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text(lines(broken, pair))
    array = tmp_path / "s.json"
    array.write_text(f"[{broken},\n{pair}]")
    for path in (jsonl, array):
        got = outcome_of(path)
        assert got["kept"] == 2 and got["reasons"] == []
        assert got["instructions"] == ["Say hi \ufffd", "Emoji \U0001f600"]
        assert got["outputs"][0] == "Hi \ufffd!"
        assert any("1 rows had a lone UTF-16 surrogate" in w for w in got["warnings"])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("1" * 5000, "an integer of over 4,300 digits"),
        ("NaN", "NaN is not valid JSON"),
        ("-Infinity", "-Infinity is not valid JSON"),
    ],
)
def test_values_json_cannot_round_trip_are_row_rejects(
    tmp_path: Path, value: str, says: str
) -> None:
    odd = f'{{"instruction": "x", "output": "y", "score": {value}}}'
    jsonl = tmp_path / "v.jsonl"
    jsonl.write_text(lines(ROW, odd, ROW))
    array = tmp_path / "v.json"
    array.write_text(f"[{json.dumps(ROW)},\n{odd},\n{json.dumps(ROW)}]")
    for path in (jsonl, array):
        got = outcome_of(path)
        assert (got["kept"], got["reasons"]) == (2, ["parse_error"])
        assert says in got["details"][0] and "line 2" in got["details"][0]


def test_duplicate_keys_are_a_reject_not_a_silent_choice(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(lines(ROW, '{"instruction": "a", "output": "first", "output": "second"}'))
    got = outcome_of(path)
    assert (got["kept"], got["reasons"]) == (1, ["parse_error"])
    assert "key 'output' appears twice" in got["details"][0]


def test_lines_are_validated_one_by_one(tmp_path: Path) -> None:
    """An object split over two lines and two objects on one line were once accepted by a fast
    path that only counted values; each line is now its own row, with its own line number."""
    path = tmp_path / "split.jsonl"
    path.write_text(
        lines(
            ROW,
            '{"instruction": "a", "output": [1',
            "2]}",
            json.dumps(ROW) + ", " + json.dumps(ROW),
            {**ROW, "instruction": "last"},
        )
    )
    got = outcome_of(path)
    assert got["kept"] == 2 and got["instructions"] == [ROW["instruction"], "last"]
    assert got["reasons"] == ["parse_error"] * 3
    assert [d.split(": ")[0].split(", ")[1] for d in got["details"]] == [
        "line 2",
        "line 3",
        "line 4",
    ]


def test_deep_nesting_is_a_row_reject(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(
        lines(
            ROW, '{"instruction": "x", "output": "y", "m": ' + "[" * 100_000 + "]" * 100_000 + "}"
        )
    )
    got = outcome_of(path)
    assert (got["kept"], got["reasons"]) == (1, ["parse_error"])
    assert "nested too deeply" in got["details"][0]


# --------------------------------------------------------------------------- size and bombs


def test_a_200_mb_line_is_a_reject_read_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with open(path, "w") as handle:
        handle.write(lines(ROW))
        handle.write('{"instruction": "big", "output": "')
        block = "x" * (1 << 20)
        for _ in range(200):
            handle.write(block)
        handle.write('"}\n')
        handle.write(lines(ROW))
    got = outcome_of(path)
    assert (got["kept"], got["reasons"]) == (2, ["record_too_large"])
    assert "line 2" in got["details"][0] and "over the 33554432-byte limit" in got["details"][0]


def test_a_gzip_bomb_of_one_line_ends_in_a_reject_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=6) as handle:
        handle.write(b'{"instruction": "')
        block = b"a" * (1 << 24)
        for _ in range(80):  # 1.25 GiB of one line, ~1.3 MB on disk
            handle.write(block)
        handle.write(b'"}\n')
    assert path.stat().st_size < 8 << 20
    got = outcome_of(path)
    assert (got["kept"], got["reasons"]) == (0, ["record_too_large"])


def test_a_bomb_of_nul_bytes_is_named_binary_at_once(tmp_path: Path) -> None:
    path = tmp_path / "nul.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        for _ in range(16):  # 256 MiB of NUL bytes
            handle.write(b"\0" * (1 << 24))
    assert "binary data" in error_of(path)


def test_a_max_record_bytes_of_the_source_applies(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(lines(ROW, {**ROW, "output": "y" * 5000}))
    config = SourceConfig(name="s", path=str(path), max_record_bytes=1000)

    def job() -> dict[str, Any]:
        data = read_source(config)
        (rejects,) = data.rejects
        return {
            "kept": sum(t.num_rows for t in data.batches),
            "reasons": rejects.column("reason").to_pylist(),
        }

    assert limited(job) == {"kept": 1, "reasons": ["record_too_large"]}


# --------------------------------------------------------------------------- damaged streams


def test_truncated_gzip_and_zstd_are_errors_naming_how_far_they_got(tmp_path: Path) -> None:
    import zstandard

    data = lines(*({**ROW, "instruction": f"q{i}"} for i in range(5000))).encode()
    for suffix, packed in (
        (".gz", gzip.compress(data)),
        (".zst", zstandard.ZstdCompressor().compress(data)),
    ):
        path = tmp_path / f"cut.jsonl{suffix}"
        path.write_bytes(packed[: len(packed) * 3 // 4])
        message = error_of(path)
        assert "cut.jsonl" in message and "truncated" in message
        assert "decompressed bytes; the rest of the data is missing" in message


def test_lenient_keeps_the_rows_before_a_cut_and_says_the_rest_is_lost(tmp_path: Path) -> None:
    data = lines(*({**ROW, "instruction": f"q{i}"} for i in range(5000))).encode()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) // 2])
    got = outcome_of(path, lenient_json=True)
    assert 0 < got["kept"] < 5000
    # The line cut in half, then the reject for everything after the cut.
    assert got["reasons"] == ["parse_error", "truncated_input"]
    assert (
        "truncated gzip stream" in got["details"][1]
        and "rows after it are lost" in got["details"][1]
    )


def test_truncated_json_array_is_an_error_or_the_rows_before_it_when_lenient(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cut.json"
    path.write_text(
        "[\n"
        + ",\n".join(json.dumps({**ROW, "instruction": f"q{i}"}) for i in range(3))
        + ',\n{"instr'
    )
    assert "the file ends before the closing ']'" in error_of(path) or "Unterminated" in error_of(
        path
    )
    got = outcome_of(path, lenient_json=True)
    assert got["kept"] == 3 and got["reasons"] == ["parse_error"]


def test_a_file_that_grows_while_read_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "growing.jsonl"
    path.write_text(lines(*([ROW] * 40_000)))

    def job() -> dict[str, Any]:
        reader = FileReader(path, source="g")
        reader.limits.batch_rows = 1000
        for n, _ in enumerate(reader.chunks()):
            if n == 0:
                with open(path, "a") as handle:
                    handle.write(lines(ROW))
        return {"rows": reader.rows_read}

    message = limited(job)["error"]
    assert "growing.jsonl: the file changed while it was read" in message


def test_a_file_removed_during_the_run_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.jsonl").write_text(lines(ROW))
    (folder / "b.jsonl").write_text(lines(ROW))

    def job() -> dict[str, Any]:
        def remove_b(_: pa.Table) -> None:
            (folder / "b.jsonl").unlink(missing_ok=True)

        read_source(SourceConfig(name="s", path=str(folder)), on_records=remove_b)
        return {}

    message = limited(job)["error"]
    assert "b.jsonl: no such file (was it removed during the run?)" in message


# --------------------------------------------------------------------------- not regular files


def test_fifo_alone_or_in_a_directory_is_refused_before_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "x.jsonl"
    os.mkfifo(fifo)
    assert "is a named pipe (FIFO)" in error_of(fifo)

    def job() -> dict[str, Any]:
        read_source(SourceConfig(name="s", path=str(tmp_path)))
        return {}

    assert "x.jsonl: is a named pipe (FIFO)" in limited(job)["error"]


def test_devices_broken_links_and_link_cycles_are_named(tmp_path: Path) -> None:
    urandom = tmp_path / "random.jsonl"
    urandom.symlink_to("/dev/urandom")
    assert "is a character device" in error_of(urandom)
    assert "is a character device" in error_of(Path("/dev/zero"))
    dangling = tmp_path / "gone.jsonl"
    dangling.symlink_to(tmp_path / "nowhere.jsonl")
    assert "broken symbolic link" in error_of(dangling)
    loop_a, loop_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    assert "Too many levels of symbolic links" in error_of(loop_a)


# --------------------------------------------------------------------------- encodings and shapes


def test_encodings_and_binary_files_are_named(tmp_path: Path) -> None:
    text = lines(ROW, ROW)
    cases = {
        "bom16.jsonl": text.encode("utf-16"),
        "plain16.jsonl": text.encode("utf-16-le"),
        "bom32.jsonl": text.encode("utf-32"),
        "bin.jsonl": bytes(range(256)) * 4,
        "packed.jsonl": gzip.compress(text.encode()),
    }
    expected = {
        "bom16.jsonl": "UTF-16 text detected; re-encode the file as UTF-8",
        "plain16.jsonl": "UTF-16 text detected (no byte-order mark)",
        "bom32.jsonl": "UTF-32 text detected",
        "bin.jsonl": "binary data",
        "packed.jsonl": "gzip-compressed data; give the file a .gz suffix",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert expected[name] in error_of(path), name


def test_cr_only_lines_and_trailing_commas_are_read_with_a_warning(tmp_path: Path) -> None:
    cr = tmp_path / "mac.jsonl"
    cr.write_bytes(lines(ROW, ROW, ROW).replace("\n", "\r").encode())
    got = outcome_of(cr)
    assert got["kept"] == 3 and any("CR only" in w for w in got["warnings"])
    commas = tmp_path / "commas.jsonl"
    commas.write_text("".join(json.dumps(ROW) + ",\n" for _ in range(3)))
    got = outcome_of(commas)
    assert got["kept"] == 3 and any("3 lines end with a comma" in w for w in got["warnings"])


def test_parquet_inputs_are_read_as_parquet_and_named_when_misnamed(tmp_path: Path) -> None:
    table = pa.Table.from_pylist([ROW, {**ROW, "instruction": "Name a planet."}])
    path = tmp_path / "rows.parquet"
    pq.write_table(table, path)
    got = outcome_of(path)
    assert (got["kept"], got["format"]) == (2, "alpaca")
    misnamed = tmp_path / "rows.jsonl"
    misnamed.write_bytes(path.read_bytes())
    assert "a parquet file; give it a .parquet name" in error_of(misnamed)


def test_empty_and_blank_files_are_zero_rows(tmp_path: Path) -> None:
    for name, text in (("e.jsonl", ""), ("b.jsonl", "\n \n"), ("e.json", "  "), ("a.json", "[]")):
        path = tmp_path / name
        path.write_text(text)
        got = outcome_of(path)
        assert (got["kept"], got["reasons"]) == (0, []), name


# --------------------------------------------------------------------------- detection


def test_a_stray_row_of_another_format_is_one_reject_not_a_lost_file(tmp_path: Path) -> None:
    stray = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    path = tmp_path / "mixed.jsonl"
    path.write_text(lines(*([ROW] * 20), stray, *([ROW] * 20)))
    got = outcome_of(path)
    assert (got["format"], got["kept"], got["reasons"]) == ("alpaca", 40, ["format_mismatch"])
    assert "line 21" in got["details"][0] and "looks like sharegpt" in got["details"][0]


def test_mixed_schema_rows_each_keep_their_own_outcome(tmp_path: Path) -> None:
    path = tmp_path / "schema.jsonl"
    path.write_text(
        lines(
            ROW,
            {"prompt": "Say hi.", "completion": "Hi."},
            ROW,
            {"instruction": "No answer here."},
            ROW,
        )
    )
    got = outcome_of(path)
    assert got["format"] == "alpaca" and got["kept"] == 3
    assert got["reasons"] == ["format_mismatch", "missing_field"]


def test_the_manifest_says_how_sure_detection_was(tmp_path: Path) -> None:
    path = tmp_path / "mostly.jsonl"
    stray = {"conversations": [{"from": "human", "value": "hi"}]}
    path.write_text(lines(*([ROW] * 9), stray))
    (entry,) = read_source(SourceConfig(name="s", path=str(path))).files
    assert entry["format"] == "alpaca" and entry["format_detected"] is True
    assert (entry["format_confidence"], entry["format_rows_sampled"]) == (0.9, 10)
    assert entry["rows_read"] == 10 and entry["rows_rejected_at_ingest"] == 1
    assert entry["size"] == path.stat().st_size


def test_a_run_over_a_folder_with_a_broken_link_or_a_fifo_stops_with_a_clear_error(
    tmp_path: Path,
) -> None:
    from curate.engine.run import run_recipe
    from curate.recipe import load_recipe

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "good.jsonl").write_text(lines(ROW))
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(
        f"name: hostile\nsources:\n  - name: s\n    path: {folder}\nstages:\n  - normalize: {{}}\noutput: {tmp_path / 'out'}\n"
    )
    (folder / "gone.jsonl").symlink_to(folder / "nowhere.jsonl")
    with pytest.raises(CurateError, match=r"gone.jsonl: broken symbolic link"):
        run_recipe(load_recipe(recipe_path), out=tmp_path / "out", workers=1)
    (folder / "gone.jsonl").unlink()
    os.mkfifo(folder / "pipe.jsonl")
    with pytest.raises(CurateError, match=r"pipe.jsonl: is a named pipe"):
        run_recipe(load_recipe(recipe_path), out=tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


def test_zstd_frames_without_a_content_size_read_whole(tmp_path: Path) -> None:
    import zstandard

    path = tmp_path / "streamed.jsonl.zst"
    with open(path, "wb") as raw:
        writer = zstandard.ZstdCompressor().stream_writer(raw)  # no content size in the header
        for i in range(3000):
            writer.write((json.dumps({**ROW, "instruction": f"q{i}"}) + "\n").encode())
        writer.flush(zstandard.FLUSH_FRAME)
    assert zstandard.frame_content_size(path.read_bytes()) == -1
    got = outcome_of(path)
    assert (got["kept"], got["reasons"]) == (3000, [])
