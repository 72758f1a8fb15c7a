"""Planted-contamination recall and false positives of the ``decontaminate`` stage on real data.

Benchmark questions (GSM8K test, MMLU sample, MT-bench, Vicuna) are copied into Alpaca with light
edits; recall is measured per edit (``decontaminate_v1`` and ``_v2`` side by side), false positives
on the clean Alpaca and Dolly records, and
throughput against a baseline (a Python set of word 13-gram tuples, the textbook implementation)
measured in the same run.

    python bench/decontam.py
"""

from __future__ import annotations

import random
import resource
import time
from pathlib import Path

import pyarrow as pa

from curate.ingest import read_file
from curate.records import conform
from curate.stages import Decontaminate, DecontaminateV2, Normalize
from curate.util.text import matching_text

DecontaminateV1 = Decontaminate

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
EVAL = DATA / "eval"
BENCHMARKS = [
    str(EVAL / "gsm8k" / "test.jsonl.gz"),
    str(EVAL / "mmlu_test_1444.json.gz"),
    str(EVAL / "mt_bench" / "question.jsonl"),
    str(EVAL / "vicuna_bench" / "question.jsonl"),
]


def edits(question: str, rng: random.Random) -> dict[str, dict[str, str]]:
    words = question.split()
    middle = len(words) // 2
    swapped = [*words[:middle], "really", *words[middle + 1 :]] if len(words) > 2 else words
    dropped = words[:middle] + words[middle + 1 :] if len(words) > 2 else words
    return {
        "verbatim": {"instruction": question},
        "case+punct": {"instruction": question.upper().replace(",", "").replace("?", " ?")},
        "prefix": {"instruction": "Answer the following question carefully. " + question},
        "in input": {"instruction": "Solve this.", "input": question},
        "1 word replaced": {"instruction": " ".join(swapped)},
        "1 word dropped": {"instruction": " ".join(dropped)},
    }


def main() -> None:
    rng = random.Random(0)
    items = []
    for path in BENCHMARKS:
        records = read_file(Path(path), source="b").records
        rows = records.to_pylist()
        items.extend((Path(path).name, r) for r in rng.sample(rows, min(100, len(rows))))
    planted = []
    for name, item in items:
        question = (
            item["input"]
            if item["instruction"].startswith("Please answer the following")
            else f"{item['instruction']} {item['input']}"
        ).strip()
        for kind, fields in edits(question, rng).items():
            planted.append(
                {
                    "id": f"{kind}|{name}|{len(planted)}",
                    "output": "answer",
                    "source": kind,
                    "input": "",
                    **fields,
                }
            )
    planted_table = conform(pa.Table.from_pylist(planted))
    total: dict[str, int] = {}
    for row in planted:
        total[row["source"]] = total.get(row["source"], 0) + 1
    stages = {
        "v1": DecontaminateV1(benchmarks=BENCHMARKS),
        "v2": DecontaminateV2(benchmarks=BENCHMARKS),
    }
    caught: dict[str, dict[str, int]] = {}
    for version, stage in stages.items():
        t0 = time.perf_counter()
        stage.index()
        print(
            f"{version} index: {len(stage.index().items)} items, {stage.index().num_ngrams} n-grams, "
            f"built in {time.perf_counter() - t0:.2f} s"
        )
        counts = caught.setdefault(version, {})
        for source in stage.run(planted_table).rejected.column("source").to_pylist():
            counts[source] = counts.get(source, 0) + 1
    print()
    print(
        f"{'planted edit':<18} {'v1 caught':>10} {'v1 recall':>9} {'v2 caught':>10} {'v2 recall':>9}"
    )
    for kind in [*total, "all"]:
        n = total[kind] if kind != "all" else len(planted)
        row = f"{kind:<18}"
        for version in stages:
            got = caught[version].get(kind, 0) if kind != "all" else sum(caught[version].values())
            row += f" {got:>6}/{n:<3} {100 * got / n:>8.1f}%"
        print(row)
    print()
    print(
        f"{'clean set':<12} {'stage':>5} {'rows':>7} {'false pos':>9} {'curate rows/s':>14} {'baseline rows/s':>16} {'speedup':>8}"
    )
    for name, rel in (
        ("alpaca", "alpaca/alpaca_data.json.gz"),
        ("dolly", "dolly/databricks-dolly-15k.jsonl.gz"),
    ):
        table = Normalize().run(read_file(DATA / rel, source=name).records).kept
        base_seconds = baseline(stages["v1"], table)
        for version, stage in stages.items():
            t0 = time.perf_counter()
            result = stage.run(table)
            seconds = time.perf_counter() - t0
            print(
                f"{name:<12} {version:>5} {table.num_rows:>7} {result.rejected.num_rows:>9} {table.num_rows / seconds:>14,.0f} {table.num_rows / base_seconds:>16,.0f} {base_seconds / seconds:>7.1f}x"
            )
            for detail in result.rejected.column("detail").to_pylist():
                print(f"    {detail[:150]}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def baseline(stage: Decontaminate, table: pa.Table) -> float:
    """A Python set of 13-word tuples from the benchmark questions, checked row by row."""
    n = stage.params.ngram
    grams = set()
    for item in stage.index().items:
        words = item.question.split()
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    text = pa.compute.binary_join_element_wise(
        table.column("instruction"), table.column("input"), table.column("output"), "\n"
    )
    t0 = time.perf_counter()
    for row in matching_text(text).to_pylist():
        words = row.split()
        any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1))
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
