"""The response_format stage on the real Alpaca and Dolly files: labels per source, speed, and
random examples of every label for a person to check.

Reads both files (``read_file`` + ``normalize``, like ``bench/ingest.py``), labels the answers
and prints a markdown table of the label distribution per source, the records/s of the stage
alone (best of ``--repeat`` runs, one process), and ``--examples`` random answers per label
(first 100 characters, newlines shown as ``⏎``).

    python bench/response_format.py [--repeat 3] [--examples 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter

from realdata import DATA, concatenated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--examples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return 0

    from curate.stages.response_format import COLUMN, LABELS, ResponseFormat, answer_text

    table = concatenated(["alpaca", "dolly"])

    best = float("inf")
    labeled = table
    for _ in range(args.repeat):
        started = time.perf_counter()
        labeled = ResponseFormat().run(table).kept
        best = min(best, time.perf_counter() - started)

    sources = ["alpaca", "dolly"]
    labels = labeled.column(COLUMN).to_pylist()
    source_of = labeled.column("source").to_pylist()
    counts: dict[str, Counter[str]] = {s: Counter() for s in sources}
    for label, source in zip(labels, source_of, strict=True):
        counts[source][label] += 1
    totals = {s: sum(counts[s].values()) for s in sources}
    everything = Counter(labels)

    print(f"| label | {' | '.join(sources)} | all |")
    print(f"|---|{'---:|' * (len(sources) + 1)}")
    for label in LABELS:
        cells = [f"{counts[s][label]} ({counts[s][label] / totals[s]:.1%})" for s in sources]
        print(
            f"| {label} | {' | '.join(cells)} | {everything[label]} ({everything[label] / len(labels):.1%}) |"
        )
    print(f"| total | {' | '.join(str(totals[s]) for s in sources)} | {len(labels)} |")
    print()
    print(
        f"response_format: {len(labels)} records in {best:.3f} s (best of {args.repeat}): "
        f"{len(labels) / best:,.0f} records/s, one process"
    )

    answers = answer_text(labeled, "output").to_pylist()
    rows_in_file = labeled.column("source_row").to_pylist()
    rng = random.Random(args.seed)
    for label in LABELS:
        rows = [i for i, value in enumerate(labels) if value == label]
        print(f"\n## {label} ({len(rows)} rows)")
        for i in sorted(rng.sample(rows, min(args.examples, len(rows)))):
            text = answers[i][:100].replace("\n", "⏎")
            print(f"- {source_of[i]}:{rows_in_file[i]}: {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
