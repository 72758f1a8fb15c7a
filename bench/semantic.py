"""``semantic_dedup`` on real Alpaca + Dolly: what it removes beyond exact and near dedup, how fast.

Runs ``normalize`` → ``exact_dedup`` → ``minhash_dedup`` (the default recipe's dedup) and then
``semantic_dedup`` on what they keep, in one process, and prints: rows in and removed per stage,
the semantic stage's phase times (embedding, LSH, verification) and records/s, the candidate
and verified pair counts, and ``--show N`` random removals with their keeper and cosine, for a
person to label (same request and interchangeable answers = a correct drop).

    python bench/semantic.py [--show 100] [--threshold 0.93]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time

import pyarrow as pa
from realdata import DATA, concatenated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (DATA / "alpaca").is_dir():
        sys.exit(f"needs the real data under {DATA}")
    from curate.lib.embed import load_embedder
    from curate.stages.dedup.exact import ExactDedup
    from curate.stages.dedup.minhash import MinHashDedupV2
    from curate.stages.dedup.semantic import SemanticDedup

    table = concatenated(["alpaca", "dolly"])
    rows = [("ingest + normalize", table.num_rows, 0, 0.0)]
    for stage in (ExactDedup(), MinHashDedupV2()):
        started = time.perf_counter()
        result = stage.run(table)
        rows.append(
            (stage.name, table.num_rows, result.rejected.num_rows, time.perf_counter() - started)
        )
        table = result.kept
    params = {} if args.threshold is None else {"threshold": args.threshold}
    semantic = SemanticDedup(**params)
    started = time.perf_counter()
    load_embedder("static")
    loaded = time.perf_counter() - started
    batches = [table.slice(i, 20_000) for i in range(0, table.num_rows, 20_000)]
    started = time.perf_counter()
    semantic.fit(batches)
    fitted = time.perf_counter() - started
    results = [semantic.apply(batch) for batch in batches]
    seconds = time.perf_counter() - started
    rejected = pa.concat_tables([r.rejected for r in results])
    rows.append((semantic.name, table.num_rows, rejected.num_rows, seconds))
    print("| stage | rows in | removed | seconds |\n|---|---|---|---|")
    for name, n, removed, took in rows:
        print(f"| {name} | {n:,} | {removed:,} | {took:.1f} |")
    info = semantic.manifest_info()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nsemantic_dedup: model load {loaded:.2f} s, fit {fitted:.1f} s "
        f"({table.num_rows / fitted:,.0f} records/s end to end), peak RSS {peak:,.0f} MiB"
    )
    print({k: info[k] for k in ("candidate_pairs", "verified_pairs", "clusters", "removed")})
    print({k: v for k, v in info.items() if k.startswith("seconds")})
    if args.show:
        text = {
            r["id"]: f"{r['instruction']} / {r['input']}"
            for r in table.select(["id", "instruction", "input"]).to_pylist()
        }
        drops = rejected.select(["instruction", "input", "duplicate_of", "detail"]).to_pylist()
        random.Random(args.seed).shuffle(drops)
        print(f"\n{min(args.show, len(drops))} of {len(drops)} removals (removed || keeper):\n")
        for number, row in enumerate(drops[: args.show], start=1):
            cos = json.loads(row["detail"])["cosine"]
            removed = f"{row['instruction']} / {row['input']}"[:120].replace("\n", " ")
            keeper = text[row["duplicate_of"]][:120].replace("\n", " ")
            print(f"{number:3d}. {cos:.3f} | {removed} || {keeper}")


if __name__ == "__main__":
    main()
