"""Ingest + normalize + write throughput on the real Alpaca and Dolly files (one core).

Each case runs in a fresh process (so peak RSS is its own) and is repeated; the table reports
the best wall time, rows/s, peak RSS, and the ratio against a hand-written baseline measured in
the same run: ``json`` -> pandas DataFrame -> ``to_parquet`` (no normalization, no ids, no checks).

    python bench/ingest.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()
FILES = {
    "alpaca": DATA / "alpaca" / "alpaca_data.json.gz",
    "dolly": DATA / "dolly" / "databricks-dolly-15k.jsonl.gz",
}


def curate_case(path: Path, out: Path) -> int:
    from curate.ingest import read_file
    from curate.run.writer import write_parquet
    from curate.stages.normalize import Normalize

    result = read_file(path, source=path.stem, with_ids=False)  # normalize computes them
    table = Normalize().run(result.records).kept
    write_parquet(table, out / "data.parquet")
    return int(table.num_rows)


def baseline_case(path: Path, out: Path) -> int:
    import gzip
    import json

    import pandas as pd

    with gzip.open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    rows = (
        json.loads(text)
        if text.lstrip().startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    frame = pd.DataFrame(rows)
    frame.to_parquet(out / "data.parquet", compression="zstd")
    return len(frame)


def _worker(case: str, path: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    # Pre-import libraries so the timing measures work, not imports.
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import curate.ingest
    import curate.stages.normalize  # noqa: F401

    func = curate_case if case == "curate" else baseline_case
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        rows = func(Path(path), Path(tmp))
        seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((rows, seconds, peak_kib))


def measure(case: str, path: Path, repeat: int) -> tuple[int, float, int]:
    best: tuple[int, float, int] | None = None
    ctx = mp.get_context("spawn")
    for _ in range(repeat):
        queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        proc = ctx.Process(target=_worker, args=(case, str(path), queue))
        proc.start()
        result = queue.get()
        proc.join()
        if best is None or result[1] < best[1]:
            best = result
    assert best is not None
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return 0
    print(
        f"{'dataset':8} {'case':9} {'rows':>7} {'seconds':>8} {'rows/s':>9} {'MB/s':>6} {'peak RSS MiB':>12} {'vs baseline':>11}"
    )
    for name, path in FILES.items():
        import gzip

        megabytes = len(gzip.decompress(path.read_bytes())) / 1e6
        base_rows, base_s, base_rss = measure("baseline", path, args.repeat)
        rows, seconds, rss = measure("curate", path, args.repeat)
        for case, r, s, m in (
            ("baseline", base_rows, base_s, base_rss),
            ("curate", rows, seconds, rss),
        ):
            ratio = base_s / s if case == "curate" else 1.0
            print(
                f"{name:8} {case:9} {r:7d} {s:8.3f} {r / s:9.0f} {megabytes / s:6.1f} {m / 1024:12.0f} {ratio:10.2f}x"
            )
    print(
        "curate = read (detect, parse, map, ids) + normalize (NFC, controls, whitespace, placeholders, ids) + zstd parquet; one process, one core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
