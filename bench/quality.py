"""Quality stage throughput on one core: the default ``quality`` stage on real rows (Alpaca + Dolly,
normalized) and on synthetic rows (``bench/scale.py``'s generator), with each rule's share.

Each case runs in this one process on one core, best of ``--repeat`` runs after a warm-up call.
The baseline, measured in the same run on the same rows, is one RE2 pass over the three text
columns (``count_substring_regex(text, r"\\S+")``): the cheapest thing a regex rule does, so the
ratio says how many such passes the whole stage costs.

    python bench/quality.py [--repeat 3] [--synthetic 100000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import best_of
from realdata import DATA, concatenated
from scale import generate


def warm_best_of(repeat: int, work: Callable[[], Any]) -> float:
    work()  # warm-up: regexes compiled, phrase lists loaded
    return best_of(repeat, work)[0]


def word_passes(texts: list[Any]) -> list[Any]:
    import pyarrow.compute as pc

    return [pc.count_substring_regex(text, r"\S+") for text in texts]


def synthetic(rows: int) -> Any:
    import pyarrow as pa

    from curate.ingest import read_file
    from curate.stages.normalize import Normalize

    with tempfile.TemporaryDirectory() as scratch:
        tables = [
            Normalize().run(read_file(path, source="synthetic", with_ids=False).records).kept
            for path in generate(Path(scratch), rows)
        ]
    return pa.concat_tables(tables)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synthetic", type=int, default=100_000, help="synthetic rows")
    args = parser.parse_args()

    import pyarrow.compute as pc

    from curate.stages import get_stage
    from curate.stages.filters.quality import Quality
    from curate.stages.filters.quality.rules import TextView

    cases = []
    if DATA.is_dir():
        cases.append(("Alpaca + Dolly", concatenated(["alpaca", "dolly"])))
    else:
        print(f"real rows skipped: {DATA} not found")
    cases.append(("synthetic", synthetic(args.synthetic)))
    stage = get_stage("quality")()
    assert isinstance(stage, Quality)
    print(f"\n{stage.name}, one core, best of {args.repeat}\n")
    print("| rows | count | baseline s | quality s | rows/s | vs baseline | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    shares: dict[str, dict[str, float]] = {}
    for name, table in cases:
        texts = [pc.fill_null(table.column(c), "") for c in ("instruction", "input", "output")]
        baseline = warm_best_of(args.repeat, partial(word_passes, texts))
        seconds = warm_best_of(args.repeat, partial(stage.run, table))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"| {name} | {table.num_rows} | {baseline:.3f} | {seconds:.3f} | "
            f"{table.num_rows / seconds:,.0f} | {seconds / baseline:.1f}x | {peak:,.0f} |"
        )
        # Each rule's own time (a rule that first builds a shared view column pays for it).
        rule_seconds: dict[str, float] = {}
        for _ in range(args.repeat):
            view = TextView(table)
            for rule in stage.rules():
                started = time.perf_counter()
                rule.check(view)
                took = time.perf_counter() - started
                rule_seconds[rule.name] = min(rule_seconds.get(rule.name, took), took)
        total = sum(rule_seconds.values())
        shares[name] = {rule: took / total for rule, took in rule_seconds.items()}
    print("\n| rule | " + " | ".join(shares) + " |")
    print("|---|" + "---:|" * len(shares))
    first = shares[next(iter(shares))]
    for rule_name in sorted(first, key=lambda r: -first[r]):
        print(
            f"| {rule_name} | " + " | ".join(f"{s[rule_name]:.1%}" for s in shares.values()) + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
