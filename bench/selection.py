"""``select`` on real Alpaca + Dolly: is a diverse 5,000 more diverse than a random 5,000?

Reads both files (``read_file`` + ``normalize``), runs ``exact_dedup``, then draws 5,000 rows
several ways and prints a markdown table per selection:

- Dolly-category entropy (bits, over the Dolly rows' ``category``; 3 bits = 8 even categories)
- mean nearest-neighbour cosine within the selection (exact: the static embedder's int8 vectors of
  instruction + input, blocked matrix products), and the rows whose nearest neighbour is at
  cosine >= the run's threshold (for select these are pairs the LSH missed)
- cluster entropy: the selection's rows over 32 clusters of the whole input (the report's
  farthest-point centroids of a seeded 20,000-row sample; 5 bits = even)
- response-format entropy: the spread of the ``response_format`` labels of the selected outputs
- Dolly's share of the selection
- time and peak RSS of the select stage (fit + apply, embedding included; the process's peak
  is reset before each run, the input table is already in memory)

The rows: a seeded random 5,000; ``select: {budget: 5000}`` as is (no score: stream order, so
Alpaca's rows come first); ``score: hash(id)`` (a fixed pseudo-random order, so that the only
difference from random is the similarity check) at diversity 0, 0.5 and 1 with the default
τ = 0.9, and at diversity 0.5 and 1 with τ = 0.7 (where this embedder's neighbours are: a
random 5,000's mean nearest-neighbour cosine is about 0.55); ``score: length(output)`` (longest
answers first) at diversity 0 and 1; and ``balance: clusters`` (round-robin over k-means clusters
of the requests) with hash(id) at τ 0.9 and 0.7, and over clusters × Dolly category (Alpaca's
null category is one value), over clusters × response format, and over category alone. "Rows with NN ≥ threshold" counts, for select, the pairs
its LSH missed (random and diversity 0 rows: at 0.9).

    python bench/selection.py [--budget 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from realdata import DATA, concatenated

BLOCK = 2048


def rss_mib(field: str) -> float:
    """VmRSS or VmHWM (peak) of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def nearest_cosines(quantized: np.ndarray) -> np.ndarray:
    """Each row's largest cosine to another row, exact (int8 dot products in float32 are
    integers below 2**24), in blocks of rows: never more than BLOCK × n at once."""
    n = len(quantized)
    floats = quantized.astype(np.float32)
    norms = np.sqrt((quantized.astype(np.int32) ** 2).sum(axis=1).astype(np.float64))
    best = np.full(n, -1.0)
    for start in range(0, n, BLOCK):
        dots = (floats[start : start + BLOCK] @ floats.T).astype(np.float64)
        denominator = norms[start : start + BLOCK, None] * norms[None, :]
        cosines = np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)
        rows = np.arange(len(dots))
        cosines[rows, start + rows] = -1.0  # not itself
        best[start : start + BLOCK] = cosines.max(axis=1)
    return best


def entropy(values: list[Any]) -> float:
    counts = np.array(list(Counter(values).values()), np.float64)
    if counts.sum() == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def cluster_entropy(vectors: np.ndarray, centroids: np.ndarray) -> float:
    """Entropy (bits) of the selection's rows over the report's clusters of the whole input."""
    from curate.run.report.diversity import cluster_sizes, entropy_bits

    return float(entropy_bits(cluster_sizes(vectors, centroids)) or 0.0)


def describe(
    name: str,
    rows: np.ndarray,
    table: pa.Table,
    vectors: np.ndarray,
    threshold: float,
    centroids: np.ndarray,
) -> dict[str, Any]:
    chosen = table.take(pa.array(rows, pa.int64()))
    sources = chosen.column("source").to_pylist()
    categories = [
        c
        for s, c in zip(sources, chosen.column("category").to_pylist(), strict=True)
        if s == "dolly"
    ]
    nearest = nearest_cosines(vectors[rows])
    return {
        "selection": name,
        "rows": len(rows),
        "dolly_entropy": entropy(categories),
        "nn_cosine": float(nearest.mean()),
        "threshold": threshold,
        "nn_at_threshold": int((nearest >= threshold).sum()),
        "dolly_share": sources.count("dolly") / max(len(sources), 1),
        "cluster_entropy": cluster_entropy(vectors[rows].astype(np.float32), centroids),
        "format_entropy": entropy(chosen.column("response_format").to_pylist()),
    }


# (label, params): select's runs, each against the same input batches.
RUNS: list[tuple[str, dict[str, Any]]] = [
    ("`{budget}` (no score: stream order)", {}),
    ("score hash(id), diversity 0", {"score": "hash(id)", "diversity": 0.0}),
    ("score hash(id), diversity 0.5 (τ_d 0.95)", {"score": "hash(id)", "diversity": 0.5}),
    ("score hash(id), diversity 1 (τ 0.9)", {"score": "hash(id)"}),
    (
        "score hash(id), τ 0.7, diversity 0.5 (τ_d 0.85)",
        {"score": "hash(id)", "max_similarity": 0.7, "diversity": 0.5},
    ),
    ("score hash(id), τ 0.7, diversity 1", {"score": "hash(id)", "max_similarity": 0.7}),
    (
        "score hash(id), balance: clusters (64), diversity 1 (τ 0.9)",
        {"score": "hash(id)", "balance": "clusters"},
    ),
    (
        "score hash(id), balance: clusters (64), τ 0.7",
        {"score": "hash(id)", "balance": "clusters", "max_similarity": 0.7},
    ),
    (
        "score hash(id), balance: [clusters, category], τ 0.7",
        {"score": "hash(id)", "balance": ["clusters", "category"], "max_similarity": 0.7},
    ),
    (
        "score hash(id), balance: [clusters, response_format], τ 0.7",
        {"score": "hash(id)", "balance": ["clusters", "response_format"], "max_similarity": 0.7},
    ),
    (
        "score hash(id), balance: [category], τ 0.7",
        {"score": "hash(id)", "balance": ["category"], "max_similarity": 0.7},
    ),
    ("score length(output), diversity 0", {"score": "length(output)", "diversity": 0.0}),
    ("score length(output), diversity 1 (τ 0.9)", {"score": "length(output)"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (DATA / "alpaca").is_dir():
        sys.exit(f"needs the real data under {DATA}")
    from curate.lib.embed import load_embedder, quantize
    from curate.stages.dedup.exact import ExactDedup
    from curate.stages.select import Select

    table = concatenated(["alpaca", "dolly"])
    table = ExactDedup().run(table).kept
    # The row number, to find each kept row again.
    table = table.append_column("bench_row", pa.array(np.arange(table.num_rows), pa.int64()))
    from curate.stages import get_stage

    table = get_stage("response_format")().run(table).kept
    embedder = load_embedder("static")
    started = time.perf_counter()
    vectors = quantize(embedder.embed(Select().text(table).to_pylist()))
    sources = Counter(table.column("source").to_pylist())
    print(
        f"{table.num_rows:,} rows after exact_dedup ({dict(sources)}); embedding all of them "
        f"for the metrics: {time.perf_counter() - started:.1f} s\n"
    )
    from curate.run.report.diversity import farthest_point_centroids

    # The report's 32 clusters, picked from a seeded 20,000-row sample of the whole input.
    sample = np.sort(np.random.default_rng(1).choice(table.num_rows, 20_000, replace=False))
    floats = vectors.astype(np.float32)
    centroids = floats[sample][farthest_point_centroids(floats[sample], 32)]
    results = []
    rng = np.random.default_rng(args.seed)
    random_rows = np.sort(rng.choice(table.num_rows, size=args.budget, replace=False))
    results.append(
        describe(f"random (seed {args.seed})", random_rows, table, vectors, 0.9, centroids)
    )
    batches = [table.slice(i, 10_000) for i in range(0, table.num_rows, 10_000)]
    infos = []
    for label, params in RUNS:
        stage = Select(budget=args.budget, **params)
        stage.prepare()
        before = rss_mib("VmRSS")
        reset_peak()
        started = time.perf_counter()
        stage.fit(batches)
        kept = pa.concat_tables([stage.apply(batch).kept for batch in batches])
        seconds = time.perf_counter() - started
        peak = rss_mib("VmHWM")
        rows = kept.column("bench_row").to_numpy()
        threshold = stage.threshold if stage.checks_similarity else 0.9
        row = describe(
            label.format(budget=f"budget: {args.budget}"),
            rows,
            table,
            vectors,
            threshold,
            centroids,
        )
        row.update(seconds=seconds, peak_rss=peak, rss_added=peak - before)
        results.append(row)
        infos.append((label, stage.manifest_info()))
    print(
        "| selection | rows | Dolly-category entropy (bits) | mean NN cosine | rows with NN ≥ "
        "threshold | cluster entropy (bits, 32) | response-format entropy (bits) | Dolly share "
        "| select time (s) | peak RSS (MiB) | RSS added (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        timing = (
            f"{r['seconds']:.1f} | {r['peak_rss']:,.0f} | {r['rss_added']:,.0f}"
            if "seconds" in r
            else "– | – | –"
        )
        print(
            f"| {r['selection']} | {r['rows']:,} | {r['dolly_entropy']:.3f} | "
            f"{r['nn_cosine']:.4f} | {r['nn_at_threshold']:,} (≥ {r['threshold']:.2f}) | "
            f"{r['cluster_entropy']:.3f} | {r['format_entropy']:.3f} | "
            f"{r['dolly_share']:.1%} | {timing} |"
        )
    print(f"\n(max Dolly-category entropy: log2(8) = {math.log2(8):.3f} bits)\n")
    keys = (
        "threshold",
        "rejected",
        "rows",
        "p_candidate_at_threshold",
        "embedded",
        "cosines_computed",
        "seconds_read",
        "seconds_embed",
        "seconds_select",
    )
    for label, info in infos:
        print(f"- {label.format(budget='budget')}: { ({k: info[k] for k in keys}) }")


if __name__ == "__main__":
    main()
