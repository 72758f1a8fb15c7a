"""Template expansion + mix on real data (Alpaca + Dolly + FLAN CoT + NIv2), stages called directly.

Uses the sources and the mix weights of ``bench/recipes/mix_real.yaml``; prints the throughput of
each stage, the realized mix table (expected vs. realized rows per unit), the balance of template
assignment per task (every applicable template used, max - min <= 1) and one rendered row per
family.

    python bench/expand_mix.py [--target 20000] [--per-record 1] [--examples]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "bench" / "recipes" / "mix_real.yaml"


def load(recipe: dict) -> list[pa.Table]:
    from curate.ingest import read_file
    from curate.ingest.files import expand_paths
    from curate.stages.normalize import Normalize

    batches = []
    for source in recipe["sources"]:
        files, _ = expand_paths(source["path"], base=REPO)
        for path in files:
            records = read_file(path, source=source["name"], with_ids=False).records
            batches.append(Normalize().run(records).kept)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--target", type=int, default=None, help="Override the recipe's mix target."
    )
    parser.add_argument("--per-record", type=int, default=1)
    parser.add_argument(
        "--examples", action="store_true", help="Print one rendered row per family."
    )
    args = parser.parse_args()

    from curate.stages.expand import ExpandTemplates
    from curate.stages.mix.mix import Mix

    recipe = yaml.safe_load(RECIPE.read_text())
    (mix_params,) = [s["mix"] for s in recipe["stages"] if "mix" in s]
    if args.target is not None:
        mix_params["target"] = args.target

    started = time.perf_counter()
    batches = load(recipe)
    rows = sum(b.num_rows for b in batches)
    print(f"read + normalize: {rows} rows in {time.perf_counter() - started:.1f}s")

    expand = ExpandTemplates(per_record=args.per_record, seed=recipe["seed"])
    started = time.perf_counter()
    expand.fit(batches)
    expanded = [expand.apply(b).kept for b in batches]
    seconds = time.perf_counter() - started
    out_rows = sum(b.num_rows for b in expanded)
    print(f"expand: {rows} -> {out_rows} rows in {seconds:.1f}s ({out_rows / seconds:,.0f} rows/s)")

    mix = Mix(mix_params)
    started = time.perf_counter()
    mix.fit(expanded)
    mixed = [mix.apply(b).kept for b in expanded]
    seconds = time.perf_counter() - started
    print(f"mix: {out_rows} -> {sum(b.num_rows for b in mixed)} rows in {seconds:.2f}s\n")

    info = mix.manifest_info()
    print(f"{'unit':58} {'entry':20} {'avail':>6} {'min(n,K)':>8} {'expected':>9} {'realized':>8}")
    for unit in info["units"]:
        print(
            f"{unit['unit'][:58]:58} {unit['weight_entry'] or '-':20} {unit['available']:6} "
            f"{unit['mass']:8.0f} {unit['expected']:9.2f} {unit['realized']:8}"
        )
    print(f"\nby source: {info['by_source']}")
    print(f"by template type: {info['by_template_type']}")
    print(f"diversity: {info['diversity']}\n")

    # Balance: per (task, pool of applicable templates), count templates over all expanded rows.
    expander = expand._expander
    balance: dict[tuple[str, tuple[int, ...]], Counter[int]] = defaultdict(Counter)
    index = {t.id: i for i, t in enumerate(expander.templates)}
    for batch, out in zip(batches, expanded, strict=True):
        prep = expander.prepare(batch)
        row_of = {r: i for i, r in enumerate(batch.column("source_row").to_pylist())}
        for source_row, template_id in zip(
            out.column("source_row").to_pylist(), out.column("template_id").to_pylist(), strict=True
        ):
            if template_id is None:
                continue
            row = row_of[source_row]
            pool = tuple(prep.matrix[row].nonzero()[0].tolist())
            balance[(prep.task_names[prep.task_codes[row]], pool)][index[template_id]] += 1
    print(f"{'task':58} {'templates':>9} {'min':>6} {'max':>6}")
    for (task, pool), counter in sorted(balance.items()):
        values = [counter.get(t, 0) for t in pool]
        print(f"{task[:58]:58} {len(pool):9} {min(values):6} {max(values):6}")
    print(
        f"worst spread: {max(max(c.get(t, 0) for t in p) - min(c.get(t, 0) for t in p) for (_, p), c in balance.items())}"
    )

    if args.examples:
        seen: set[str] = set()
        for out in mixed:
            for row in out.filter(pa.compute.is_valid(out.column("template_id"))).to_pylist():
                family = row["template_id"].split("/")[0]
                if family in seen:
                    continue
                seen.add(family)
                print(
                    f"\n== {row['template_id']} ({row['template_type']}, task {row['task'] or row['category'] or row['source']})"
                )
                print(row["instruction"][:600])
                print("--- completion")
                print(row["output"][:400])


if __name__ == "__main__":
    main()
