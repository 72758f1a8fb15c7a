"""Language-ID accuracy and throughput: curate's backends against stock langdetect.

Reads ``../shared/data/langid/testset.jsonl.gz`` (labeled texts in length buckets: short 1-5 words,
medium 6-20, long 21-100; plus code snippets and edge strings, which have no language and are
reported as the share labeled ``und``) and samples of real Japanese, Chinese and English
instruction datasets (expected language = the dataset's). Every backend runs in its own
subprocess, on one core, with cold caches, so peak RSS and speed are its own.

    python bench/langid.py            # full table
    python bench/langid.py --quick    # 300 texts per bucket, smaller real-data samples
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
BUCKETS = ("short", "medium", "long", "code", "edge")
REAL = (
    ("dolly_ja", "dolly_ja/databricks-dolly-15k-ja.jsonl.gz", "alpaca", "ja"),
    ("alpaca_zh", "alpaca_zh/carbonz0/zh-data-part-00.json.gz", "alpaca", "zh"),
    ("alpaca", "alpaca/alpaca_data.json.gz", "alpaca", "en"),
    ("dolly", "dolly/databricks-dolly-15k.jsonl.gz", "dolly", "en"),
)
BACKENDS = ("langdetect-stock", "langdetect", "fasttext")
TARGETS = {"short": 0.73, "medium": 0.98, "long": 0.997}


def _load_testset(limit: int | None) -> dict[str, list[dict[str, str]]]:
    with gzip.open(DATA / "langid" / "testset.jsonl.gz", "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    by_bucket: dict[str, list[dict[str, str]]] = {b: [] for b in BUCKETS}
    for row in rows:
        by_bucket[row["bucket"]].append(row)
    if limit:
        # Keep every language: take every k-th row.
        for bucket, items in by_bucket.items():
            step = max(1, len(items) // limit)
            by_bucket[bucket] = items[::step][:limit]
    return by_bucket


def _real_texts(rel: str, fmt: str, limit: int) -> list[str]:
    from curate.ingest import read_file
    from curate.util.text import record_text

    table = read_file(DATA / rel, source="bench", format=fmt).records
    step = max(1, table.num_rows // limit)
    table = table.take(list(range(0, table.num_rows, step))[:limit])
    return [
        str(t)
        for t in record_text(
            table, ["instruction", "input", "output"], separator="\n", prefer_messages=True
        ).to_pylist()
    ]


class Stock:
    """langdetect as shipped: DetectorFactory.seed = 0, one Detector per text, errors -> und."""

    def __init__(self) -> None:
        from langdetect import DetectorFactory, detector_factory

        DetectorFactory.seed = 0
        detector_factory.init_factory()
        self.factory = detector_factory._factory

    def __call__(self, texts: list[str]) -> list[str]:
        from langdetect.lang_detect_exception import LangDetectException

        out = []
        for text in texts:
            detector = self.factory.create()
            detector.append(text)
            try:
                out.append(detector.detect().split("-")[0])
            except LangDetectException:
                out.append("und")
        return out


def _curate(backend: str) -> Any:
    from curate.lib.langid import identify

    def run(texts: list[str]) -> list[str]:
        return identify(texts, backend, cache=False).lang  # type: ignore[arg-type]

    return run


def _cold(backend: str) -> None:
    if backend == "langdetect":
        from curate.lib.langid.langdetect_nb import LangdetectProfiles

        LangdetectProfiles.shared()._words.clear()


def worker(backend: str, limit: int | None, real_limit: int) -> dict[str, Any]:
    # Load the model/profiles first: load time is reported separately from throughput.
    started = time.perf_counter()
    detect = Stock() if backend == "langdetect-stock" else _curate(backend)
    detect(["warm up"])
    load_seconds = time.perf_counter() - started
    results: dict[str, Any] = {
        "backend": backend,
        "load_seconds": round(load_seconds, 2),
        "rows": {},
    }
    testset = _load_testset(limit)
    for bucket in BUCKETS:
        rows = testset[bucket]
        texts = [r["text"] for r in rows]
        _cold(backend)
        t0 = time.perf_counter()
        langs = detect(texts)
        seconds = time.perf_counter() - t0
        if bucket in ("code", "edge"):
            score = sum(lang == "und" for lang in langs) / len(rows)
        else:
            score = sum(lang == r["lang"] for lang, r in zip(langs, rows, strict=True)) / len(rows)
        results["rows"][bucket] = {"n": len(rows), "score": score, "per_s": len(rows) / seconds}
    for name, rel, fmt, expected in REAL:
        n = real_limit // 4 if backend == "langdetect-stock" else real_limit
        texts = _real_texts(rel, fmt, n)
        _cold(backend)
        t0 = time.perf_counter()
        langs = detect(texts)
        seconds = time.perf_counter() - t0
        results["rows"][name] = {
            "n": len(texts),
            "score": sum(lang == expected for lang in langs) / len(texts),
            "per_s": len(texts) / seconds,
        }
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=BACKENDS)
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS))
    args = parser.parse_args()
    limit = 300 if args.quick else None
    real_limit = 1000 if args.quick else 4000
    if args.worker:
        print(json.dumps(worker(args.worker, limit, real_limit)))
        return
    if not (DATA / "langid" / "testset.jsonl.gz").exists():
        sys.exit(f"no benchmark data at {DATA}; this benchmark needs ../shared/data/langid/")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    results = {}
    for backend in args.backends:
        if backend == "fasttext":
            from curate.lib.langid import fasttext_backend

            if not fasttext_backend.available():
                print(
                    "fasttext backend not installed (pip install 'curate[fasttext]'): skipped",
                    file=sys.stderr,
                )
                continue
        cmd = [sys.executable, __file__, "--worker", backend, *(["--quick"] if args.quick else [])]
        # taskset pins the worker to one core where available.
        if Path("/usr/bin/taskset").exists():
            cmd = ["taskset", "-c", "0", *cmd]
        out = subprocess.run(
            cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT
        ).stdout
        results[backend] = json.loads(out.strip().splitlines()[-1])
    _print_table(results)


def _print_table(results: dict[str, Any]) -> None:
    names = list(results)
    rows = [*BUCKETS, *(r[0] for r in REAL)]
    print(
        "Language ID: accuracy (code/edge: share labeled 'und') and texts/s on one core, cold caches"
    )
    header = f"{'set':<11} {'n':>5} {'target':>7} | " + " | ".join(f"{n:^26}" for n in names)
    print(header)
    print(
        f"{'':<11} {'':>5} {'':>7} | "
        + " | ".join(f"{'acc':>7} {'texts/s':>9} {'x stock':>8}" for _ in names)
    )
    print("-" * len(header))
    for row in rows:
        first = results[names[0]]["rows"].get(row)
        if first is None:
            continue
        target = TARGETS.get(row)
        cells = []
        for name in names:
            r = results[name]["rows"][row]
            base = results.get("langdetect-stock", {}).get("rows", {}).get(row)
            ratio = f"{r['per_s'] / base['per_s']:>7.1f}x" if base else f"{'':>8}"
            cells.append(f"{100 * r['score']:>6.1f}% {r['per_s']:>9,.0f} {ratio}")
        target_text = f"{100 * target:.1f}%" if target else "-"
        print(f"{row:<11} {first['n']:>5} {target_text:>7} | " + " | ".join(cells))
    print("-" * len(header))
    labeled = ("short", "medium", "long")
    for name in names:
        r = results[name]["rows"]
        total_n = sum(r[b]["n"] for b in labeled)
        total_s = sum(r[b]["n"] / r[b]["per_s"] for b in labeled)
        print(
            f"{name:<17} labeled short+medium+long: {total_n / total_s:>8,.0f} texts/s | "
            f"model load {results[name]['load_seconds']:.2f} s | peak RSS {results[name]['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
