"""``semantic_dedup`` then ``select`` at scale: time and peak memory per size, each size in a fresh
process (so each peak RSS is its own).

The rows are synthetic but built from real text: each joins two real requests of Alpaca + Dolly
drawn by a seeded generator ("<request a> Also: <request b>"), so the set has real words and
lengths, few true duplicates, and as many rows as asked. The two stages share the run's
embedding cache (select reads the vectors semantic_dedup computed), as in ``curate run``.

    python bench/semantic_scale.py                       # 100,000 and 1,000,000 rows
    python bench/semantic_scale.py --sizes 200000 --budget 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from realdata import DATA, concatenated


def build(rows: int, seed: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    real = concatenated(["alpaca", "dolly"])
    requests = pc.utf8_trim_whitespace(
        pc.binary_join_element_wise(real.column("instruction"), real.column("input"), " ")
    ).to_pylist()
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(requests), rows)
    second = rng.integers(0, len(requests), rows)
    instruction = [f"{requests[a]} Also: {requests[b]}" for a, b in zip(first, second, strict=True)]
    template = real.slice(0, 1)
    base = {name: template.column(name)[0].as_py() for name in template.column_names}
    columns = {}
    for name, field in zip(template.column_names, template.schema, strict=True):
        if name == "id":
            columns[name] = pa.array([f"s{i:08d}" for i in range(rows)], field.type)
        elif name == "instruction":
            columns[name] = pa.array(instruction, field.type)
        elif name == "input":
            columns[name] = pa.array([""] * rows, field.type)
        elif name == "source_row":
            columns[name] = pa.array(np.arange(rows), field.type)
        else:
            columns[name] = pa.array([base[name]] * rows, field.type)
    return pa.table(columns, schema=template.schema)


def one_size(rows: int, budget: int, seed: int) -> dict[str, float]:
    from curate.lib.embed import load_embedder
    from curate.stages.dedup.semantic import SemanticDedup
    from curate.stages.select import Select

    table = build(rows, seed)
    load_embedder("static")
    built_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batches = [table.slice(i, 100_000) for i in range(0, table.num_rows, 100_000)]
    out: dict[str, float] = {"rows": rows, "rss_after_input": built_rss}
    with tempfile.TemporaryDirectory() as cache:
        semantic = SemanticDedup()
        semantic.use_cache_dir(Path(cache))
        started = time.perf_counter()
        semantic.fit(batches)
        kept = [semantic.apply(batch).kept for batch in batches]
        out["semantic_s"] = time.perf_counter() - started
        out["semantic_removed"] = semantic.manifest_info()["removed"]
        out["semantic_embed_s"] = semantic.manifest_info()["seconds_embed"]
        out["candidate_pairs"] = semantic.manifest_info()["candidate_pairs"]
        out["rss_after_semantic"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        select = Select(budget=budget)
        select.use_cache_dir(Path(cache))
        started = time.perf_counter()
        select.fit(kept)
        for batch in kept:
            select.apply(batch)
        out["select_s"] = time.perf_counter() - started
        out["select_reused"] = select.manifest_info()["embedding_cache"]["reused"]
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (DATA / "alpaca").is_dir():
        sys.exit(f"needs the real data under {DATA}")
    if args.one:
        print(json.dumps(one_size(args.one, args.budget, args.seed)))
        return
    print(
        "| rows | semantic_dedup s | records/s | embedding s | candidate pairs | removed | "
        "select s (budget, vectors reused) | peak RSS MiB (input alone) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--budget", str(args.budget)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {size:,} | {r['semantic_s']:.1f} | {size / r['semantic_s']:,.0f} | "
            f"{r['semantic_embed_s']:.1f} | {r['candidate_pairs']:,} | {r['semantic_removed']:,} | "
            f"{r['select_s']:.1f} ({args.budget:,}, {r['select_reused']:,}) | "
            f"{r['peak_rss']:,.0f} ({r['rss_after_input']:,.0f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
