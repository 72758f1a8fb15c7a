"""Scale benchmark: synthetic instruction records at 100k / 1M / 10M rows through a full recipe.

Records are generated on the fly (never committed) as gzipped JSONL shards of 100k rows, with ~5%
exact and ~5% near duplicates. Each size runs ``curate run`` in a fresh process; the table reports
wall time, rows/s and the peak RSS of the largest process (parent or worker).

    python bench/scale.py --sizes 100000 1000000 [--workers 2] [--engine local|ray] [--stages ...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = [
    "data",
    "model",
    "train",
    "token",
    "system",
    "answer",
    "question",
    "explain",
    "describe",
    "write",
    "list",
    "summarize",
    "compare",
    "people",
    "city",
    "river",
    "music",
    "history",
    "science",
    "energy",
    "market",
    "policy",
    "health",
    "water",
    "food",
    "language",
    "code",
    "function",
    "value",
    "error",
    "network",
    "memory",
    "light",
    "sound",
    "color",
    "animal",
    "plant",
    "school",
    "travel",
    "money",
    "time",
    "story",
    "poem",
    "letter",
    "email",
    "report",
    "plan",
    "design",
    "build",
    "test",
    "measure",
    "improve",
]
SHARD_ROWS = 100_000


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def generate(directory: Path, rows: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    files = []
    recent: list[dict[str, str]] = []
    for shard_start in range(0, rows, SHARD_ROWS):
        path = directory / f"synthetic-{shard_start // SHARD_ROWS:05d}.jsonl.gz"
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
            for _ in range(min(SHARD_ROWS, rows - shard_start)):
                roll = rng.random()
                if recent and roll < 0.05:
                    record = dict(rng.choice(recent))  # exact duplicate
                elif recent and roll < 0.10:
                    base = rng.choice(recent)  # near duplicate: a few words changed
                    words = base["instruction"].split()
                    for _ in range(2):
                        words[rng.randrange(len(words))] = rng.choice(WORDS)
                    record = {**base, "instruction": " ".join(words)}
                else:
                    record = {
                        "instruction": sentence(rng, rng.randint(12, 40)),
                        "input": sentence(rng, rng.randint(0, 30)) if rng.random() < 0.4 else "",
                        "output": " ".join(
                            sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(1, 5))
                        ),
                    }
                    recent.append(record)
                    if len(recent) > 1000:
                        recent.pop(0)
                handle.write(json.dumps(record) + "\n")
        files.append(path)
    return files


def available_stages() -> list[str]:
    from curate.stages import registry

    keys = {cls.key() for cls in registry().values()}
    wanted = ["normalize", "exact_dedup", "minhash_dedup", "quality", "language", "expand", "mix"]
    return [k for k in wanted if k in keys]


def run(rows: int, workers: int, engine: str, stages: list[str], keep: bool) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"curate-scale-{rows}-"))
    try:
        started = time.perf_counter()
        (work / "in").mkdir()
        generate(work / "in", rows)
        gen_seconds = time.perf_counter() - started
        recipe = {
            "name": f"scale{rows}",
            "seed": 0,
            "sources": [{"name": "synthetic", "path": str(work / "in"), "format": "alpaca"}],
            "stages": [{s: {}} for s in stages],
            "output": str(work / "run"),
            "workers": workers,
        }
        if engine != "local":
            recipe["engine"] = engine
        (work / "recipe.yaml").write_text(json.dumps(recipe))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "curate.cli", "run", str(work / "recipe.yaml"), "-q"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        manifest = json.loads((work / "run" / "manifest.json").read_text())
        return {
            "rows": rows,
            "gen_s": gen_seconds,
            "seconds": seconds,
            "rows_per_s": rows / seconds,
            "peak_rss_mib": max(peak, before) / 1024,
            "kept": manifest["rows"]["kept"],
            "stage_seconds": {s["name"]: s["seconds"] for s in manifest["stages"]},  # type: ignore[dict-item]
        }
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", default="local")
    parser.add_argument("--stages", nargs="+", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    stages = args.stages or available_stages()
    print(f"engine={args.engine} workers={args.workers} stages={stages}")
    print(
        f"{'rows':>10} {'seconds':>9} {'rows/s':>9} {'peak RSS MiB':>12} {'kept':>10}  per-stage seconds"
    )
    for size in args.sizes:
        r = run(size, args.workers, args.engine, stages, args.keep)
        per_stage = " ".join(f"{k}={v:.1f}" for k, v in r["stage_seconds"].items())  # type: ignore[attr-defined]
        print(
            f"{size:>10} {r['seconds']:9.1f} {r['rows_per_s']:9.0f} {r['peak_rss_mib']:12.0f} {int(r['kept']):>10}  {per_stage}",
            flush=True,
        )
    print(
        "peak RSS = largest single process (RUSAGE_CHILDREN ru_maxrss); generation time not included"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
