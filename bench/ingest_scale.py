"""Ingest at scale: multi-GB JSON Lines and JSON arrays, plain, gzip and zstd, and two bombs.

Generates the files from real Alpaca and Dolly rows repeated (Dolly's columns renamed to Alpaca's,
so one file has one format), then reads each with ``read_source`` exactly as ``curate run``'s ingest
does, handing each ``batch_size``-row table to a sink that counts it (the parquet writing after it
is the same at any file size and is measured by ``bench/ingest.py``). Every case runs in a fresh
process on one core, so peak RSS is its own. The baseline, measured in the same run on the same
file, is the least a reader can do: a ``for line in file: json.loads(line)`` loop (for arrays:
``json.load`` of the whole file, which is what ingest did before and is where memory ran out).

    python bench/ingest_scale.py                      # 5 GB JSON Lines, 2 GB JSON array
    python bench/ingest_scale.py --jsonl-gb 0.5 --array-gb 0.2   # a quick look
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
BLOCK_ROWS = 20_000


def real_rows() -> list[dict[str, str]]:
    with gzip.open(DATA / "alpaca" / "alpaca_data.json.gz", "rt", encoding="utf-8") as handle:
        rows: list[dict[str, str]] = json.load(handle)
    with gzip.open(
        DATA / "dolly" / "databricks-dolly-15k.jsonl.gz", "rt", encoding="utf-8"
    ) as lines:
        for line in lines:
            row = json.loads(line)
            rows.append(
                {
                    "instruction": row["instruction"],
                    "input": row["context"],
                    "output": row["response"],
                }
            )
    return rows


def generate(folder: Path, jsonl_gb: float, array_gb: float) -> dict[str, tuple[Path, int]]:
    """The test files and their row counts."""
    import zstandard

    rows = real_rows()
    encoded = [json.dumps(row, ensure_ascii=False).encode() for row in rows]
    files: dict[str, tuple[Path, int]] = {}
    for layout, gb in (("jsonl", jsonl_gb), ("json", array_gb)):
        plain = folder / f"rows.{layout}"
        target = int(gb * 1e9)
        count = 0
        with open(plain, "wb") as handle:
            written = 0
            if layout == "json":
                handle.write(b"[\n")
            while written < target:
                start = count % len(encoded)
                block = [encoded[(start + i) % len(encoded)] for i in range(BLOCK_ROWS)]
                joined = (b",\n" if layout == "json" else b"\n").join(block)
                if layout == "json" and count:
                    joined = b",\n" + joined
                elif layout == "jsonl":
                    joined += b"\n"
                handle.write(joined)
                written += len(joined)
                count += BLOCK_ROWS
            if layout == "json":
                handle.write(b"\n]\n")
        files[f"{layout} plain"] = (plain, count)
        gz = folder / f"rows.{layout}.gz"
        zst = folder / f"rows.{layout}.zst"
        with open(plain, "rb") as source, gzip.open(gz, "wb", compresslevel=1) as sink:
            while chunk := source.read(1 << 24):
                sink.write(chunk)
        with open(plain, "rb") as source, open(zst, "wb") as sink:
            zstandard.ZstdCompressor(level=3).copy_stream(source, sink)
        files[f"{layout} gzip"] = (gz, count)
        files[f"{layout} zstd"] = (zst, count)
    # Bombs: a few MB that expand to over 4 GB of one line.
    bomb = folder / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as sink:
        sink.write(b'{"instruction": "')
        block = b"a" * (1 << 26)
        for _ in range(66):
            sink.write(block)
        sink.write(b'"}\n')
    files["bomb gzip 4.4 GB"] = (bomb, 1)
    zbomb = folder / "bomb.jsonl.zst"
    with open(zbomb, "wb") as raw:
        writer = zstandard.ZstdCompressor(level=19).stream_writer(raw)
        writer.write(b'{"instruction": "')
        for _ in range(66):
            writer.write(b"a" * (1 << 26))
        writer.write(b'"}\n')
        writer.flush(zstandard.FLUSH_FRAME)
    files["bomb zstd 4.4 GB"] = (zbomb, 1)
    return files


def curate_case(path: Path) -> dict[str, Any]:
    from curate.ingest.sources import SourceConfig, read_source

    counted = {"records": 0, "rejects": 0, "reasons": set()}

    def records(table: Any) -> None:
        counted["records"] += table.num_rows

    def rejects(table: Any) -> None:
        counted["rejects"] += table.num_rows
        counted["reasons"].update(table.column("reason").to_pylist())

    try:
        data = read_source(
            SourceConfig(name="s", path=str(path)), on_records=records, on_rejects=rejects
        )
        outcome = ",".join(sorted(counted["reasons"])) or "ok"
        rows = data.rows_read
    except Exception as exc:  # the table shows what a user would see
        outcome = f"error: {str(exc)[:60]}"
        rows = counted["records"] + counted["rejects"]
    return {"rows": rows, "outcome": outcome}


def baseline_case(path: Path) -> dict[str, Any]:
    opener: Any = open
    if path.suffix == ".gz":
        opener = gzip.open
    elif path.suffix == ".zst":
        import zstandard

        def opener(name: Path, mode: str) -> Any:
            return io.BufferedReader(zstandard.open(name, mode))

    rows = 0
    with opener(path, "rb") as handle:
        if ".jsonl" in path.name:
            for line in handle:
                if line.strip():
                    json.loads(line)
                    rows += 1
        else:
            rows = len(json.load(handle))
    return {"rows": rows, "outcome": "ok"}


def _worker(case: str, path: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import curate.ingest.sources  # noqa: F401  (imports are not the work)

    started = time.perf_counter()
    try:
        result = (curate_case if case == "curate" else baseline_case)(Path(path))
    except MemoryError:
        result = {"rows": 0, "outcome": "MemoryError"}
    result["seconds"] = time.perf_counter() - started
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def measure(case: str, path: Path, memory_gib: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    proc = ctx.Process(target=_limited, args=(case, str(path), queue, memory_gib))
    proc.start()
    proc.join()
    return (
        queue.get()
        if not queue.empty()
        else {"rows": 0, "outcome": "killed", "seconds": 0, "peak_mib": 0}
    )


def _limited(case: str, path: str, queue: mp.Queue, memory_gib: float) -> None:  # type: ignore[type-arg]
    # The baseline would swap the machine on a whole-file read: cap what it may take.
    limit = int(memory_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _worker(case, path, queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsonl-gb", type=float, default=5.0)
    parser.add_argument("--array-gb", type=float, default=2.0)
    parser.add_argument("--tmp", default=None, help="where to write the generated files")
    parser.add_argument("--baseline-memory-gib", type=float, default=12.0)
    args = parser.parse_args()
    if not (DATA / "alpaca").is_dir():
        sys.exit(f"needs the real data under {DATA}")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        started = time.perf_counter()
        files = generate(Path(tmp), args.jsonl_gb, args.array_gb)
        print(f"generated {len(files)} files in {time.perf_counter() - started:.0f} s", flush=True)
        header = (
            f"| {'file':<18} | {'size on disk':>12} | {'rows':>10} | {'rows ok':>7} | "
            f"{'curate rows/s':>13} | {'peak RSS MiB':>12} | {'baseline rows/s':>15} | "
            f"{'baseline RSS MiB':>16} | {'speed vs baseline':>17} | outcome |"
        )
        print(header)
        print("|" + "|".join("-" * (len(cell) + 0) for cell in header.split("|")[1:-1]) + "|")
        for name, (path, expected) in files.items():
            ours = measure("curate", path, 16.0)
            base = (
                measure("baseline", path, args.baseline_memory_gib)
                if "bomb" not in name
                else {"rows": 0, "seconds": 0.0, "peak_mib": 0.0, "outcome": "-"}
            )
            rate = ours["rows"] / ours["seconds"] if ours["seconds"] else 0.0
            base_rate = base["rows"] / base["seconds"] if base["seconds"] and base["rows"] else 0.0
            ratio = f"{rate / base_rate:.2f}x" if base_rate else base["outcome"]
            print(
                f"| {name:<18} | {path.stat().st_size / 1e6:>9.0f} MB | {ours['rows']:>10,} | "
                f"{'yes' if ours['rows'] == expected else 'NO':>7} | {rate:>13,.0f} | "
                f"{ours['peak_mib']:>12,.0f} | {base_rate:>15,.0f} | {base['peak_mib']:>16,.0f} | "
                f"{ratio:>17} | {ours['outcome']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
