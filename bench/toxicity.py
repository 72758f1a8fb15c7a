"""Toxicity stage on real data: speed, memory and what each backend drops.

Reads Alpaca and Dolly from ``../shared/data`` (ingest + normalize, as a run does), then runs the
``toxicity`` stage once per case, each in a fresh process (so peak RSS is its own, model included).
Prints a markdown table (records/s of the stage alone, model load time, peak RSS, rows dropped at
the default threshold, per side) and then the dropped rows themselves, so a person can judge
precision. A second table plants one insult in the middle of long clean Alpaca answers and counts
how many each case catches, and how many of the same answers without the insult it drops: what
chunking long texts buys against a bag-of-words model's dilution.

    python bench/toxicity.py                    # both files, default cases
    python bench/toxicity.py --limit 5000       # first 5,000 rows of each file
    python bench/toxicity.py --chunk-chars 150 1 500 0   # classifier cases to compare
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from typing import Any

from realdata import DATA, PATHS, concatenated

INSULTS = (
    "You are a fucking idiot.",
    "Shut up, you stupid bitch.",
    "I hate you, you worthless piece of shit.",
    "Go kill yourself, loser.",
)
SHOW = 30
SWEEP = (0.95, 0.98, 0.99)
CUT = 120


def load(limit: int | None) -> Any:
    return concatenated(["alpaca", "dolly"], limit)


def planted(limit: int) -> tuple[Any, Any]:
    """Long clean Alpaca answers (> 1,000 chars), with and without an insult in the middle."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from curate.ingest import read_file

    table = read_file(PATHS["alpaca"], source="alpaca").records
    table = table.filter(pc.greater(pc.utf8_length(table.column("output")), 1000))
    table = table.slice(0, limit)
    outputs = table.column("output").to_pylist()
    dirty = []
    for i, text in enumerate(outputs):
        sentences = text.split(". ")
        sentences.insert(len(sentences) // 2, INSULTS[i % len(INSULTS)].rstrip("."))
        dirty.append(". ".join(sentences))
    index = table.column_names.index("output")
    return table, table.set_column(index, "output", pa.array(dirty, pa.string()))


def case_params(case: str) -> dict[str, Any]:
    backend, _, chunk = case.partition(":")
    params: dict[str, Any] = {"backend": backend}
    if chunk:
        params["chunk_chars"] = int(chunk)
    return params


def _worker(case: str, limit: int | None, plant: int, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    import pyarrow.compute as pc

    from curate.stages.filters.toxicity import Toxicity

    table = load(limit)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stage = Toxicity(**case_params(case))
    started = time.perf_counter()
    stage.prepare()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    kept, rejected = stage.run(table)
    run_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = stage.manifest_info()
    drops = []
    for row in rejected.select(["source", "instruction", "output", "detail"]).to_pylist():
        drops.append(row)
    # The same scores, counted at higher thresholds (scope both: the worse side).
    worst = stage.score(table)[0].max(axis=0)
    sweep = {t: int((worst >= t).sum()) for t in SWEEP}
    clean, dirty = planted(plant)
    caught = Toxicity(**case_params(case)).score(dirty)[0][1]
    false = Toxicity(**case_params(case)).score(clean)[0].max(axis=0)
    by_source = {
        str(v["values"]): int(v["counts"])
        for v in pc.value_counts(rejected.column("source").combine_chunks()).to_pylist()
    }
    queue.put(
        {
            "case": case,
            "rows": table.num_rows,
            "kept": kept.num_rows,
            "dropped": rejected.num_rows,
            "by_source": by_source,
            "dropped_by": info["counts"]["dropped_by"],
            "load_s": load_s,
            "run_s": run_s,
            "rss_data_mib": rss_data / 1024,
            "peak_mib": peak / 1024,
            "drops": drops,
            "sweep": sweep,
            "planted": {
                t: (int((caught >= t).sum()), int((false >= t).sum()), clean.num_rows)
                for t in (0.9, *SWEEP)
            },
        }
    )


def measure(case: str, limit: int | None, plant: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    proc = ctx.Process(target=_worker, args=(case, limit, plant, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def short(text: str | None) -> str:
    flat = " ".join((text or "").split()).replace("|", "\\|")
    return flat if len(flat) <= CUT else flat[: CUT - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="rows per file (default: all)")
    parser.add_argument(
        "--chunk-chars",
        type=int,
        nargs="*",
        default=[150, 0],
        help="classifier cases: chunk_chars values (the first is shown as the default case)",
    )
    parser.add_argument("--planted", type=int, default=200, help="long answers with an insult")
    parser.add_argument("--show", type=int, default=SHOW, help="dropped rows printed per case")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return 0
    cases = [f"classifier:{c}" for c in args.chunk_chars] + ["wordlist"]
    results = [measure(case, args.limit, args.planted) for case in cases]
    print(
        "| case | rows | records/s | model load s | peak RSS MiB (after data) | dropped | alpaca "
        "| dolly | by prompt / completion | dropped at 0.95 / 0.98 / 0.99 "
        "| planted insult caught at 0.9 / 0.98 | clean long dropped at 0.9 / 0.98 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        sides = r["dropped_by"]
        planted_at = r["planted"]
        total = planted_at[0.9][2]
        print(
            f"| {r['case']} | {r['rows']:,} | {r['rows'] / r['run_s']:,.0f} | {r['load_s']:.2f} "
            f"| {r['peak_mib']:.0f} ({r['rss_data_mib']:.0f}) | {r['dropped']} "
            f"| {r['by_source'].get('alpaca', 0)} | {r['by_source'].get('dolly', 0)} "
            f"| {sides['prompt']} / {sides['completion']} "
            f"| {' / '.join(str(r['sweep'][t]) for t in SWEEP)} "
            f"| {planted_at[0.9][0]}/{total} / {planted_at[0.98][0]}/{total} "
            f"| {planted_at[0.9][1]} / {planted_at[0.98][1]} |"
        )
    print()
    print(
        "records/s: the stage's run() alone, one process; model load: prepare(); peak RSS of the "
        "process, in brackets after ingest + normalize of the data, before the stage. Dropped: "
        "threshold 0.9, scope both (the defaults); a row can be dropped by both sides. Planted: "
        "long clean Alpaca answers (> 1,000 chars) with one insult in the middle, and the same "
        "answers without it."
    )
    for r in results:
        print()
        print(f"### {r['case']}: {min(args.show, r['dropped'])} of {r['dropped']} dropped rows")
        print()
        print("| # | source | instruction | output | detail |")
        print("|---:|---|---|---|---|")
        for i, row in enumerate(r["drops"][: args.show], 1):
            print(
                f"| {i} | {row['source']} | {short(row['instruction'])} | {short(row['output'])} "
                f"| {short(row['detail'])} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
