"""Precision of every reject reason, against drops read and labeled by hand.

``bench/audit/<reason>.jsonl`` holds, for each reason the real-data recipe produces on Alpaca +
Dolly, a sample of its drops (>= 50, or all of them), each labeled ``correct`` or ``wrong`` with a
one-line why (the sample: the first 50 drops in ``md5(id)`` order of the run the labels were made
on, topped up with the next unlabeled drops in that order when fixes left fewer than 50 labeled
rows dropped). This script runs the current code on the same recipe and prints, per reason: drops now, rows
labeled, labeled rows still dropped for that reason, the precision among them (correct / still
dropped), and how many labeled rows are no longer dropped or now dropped for another reason —
so a fix shows as wrong drops that went away, and a regression as correct drops that did.

    python bench/audit.py                     # runs bench/recipes/alpaca_dolly.yaml up to decontaminate
    python bench/audit.py --run runs/alpaca_dolly   # or reads a finished run directory
    python bench/audit.py --out /tmp/audit          # keeps the run, to query its rejects
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import duckdb

from curate.engine.run import run_recipe
from curate.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
AUDIT = ROOT / "bench" / "audit"
RECIPE = ROOT / "bench" / "recipes" / "alpaca_dolly.yaml"
# Stages whose drops are not judgments about a row (the mix samples; expand renders).
NOT_AUDITED = ("expand", "mix")


def labels() -> dict[str, dict[str, dict[str, str]]]:
    found: dict[str, dict[str, dict[str, str]]] = {}
    for path in sorted(AUDIT.glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        found[path.stem] = {row["id"]: row for row in rows}
    return found


def current_drops(run_dir: Path) -> tuple[dict[str, str], Counter[str]]:
    """id -> reason of every row the run dropped (stages that judge rows), and drops per reason."""
    con = duckdb.connect()
    glob = (run_dir / "rejects" / "*.parquet").as_posix()
    rows = con.execute(
        f"SELECT id, reason, stage FROM read_parquet('{glob}', union_by_name = true) "
        "WHERE stage <> 'ingest'"
    ).fetchall()
    by_id: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for row_id, reason, stage in rows:
        if str(stage).rsplit("_v", 1)[0] in NOT_AUDITED:
            continue
        by_id[str(row_id)] = str(reason)
        counts[str(reason)] += 1
    return by_id, counts


def report(run_dir: Path) -> None:
    audited = labels()
    dropped, counts = current_drops(run_dir)
    print(
        "| reason | drops now | labeled | still dropped | precision | wrong drops | no longer dropped (correct/wrong) | now another reason |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total_correct = total_still = 0
    for reason in sorted(set(audited) | set(counts)):
        rows = audited.get(reason, {})
        still = [r for i, r in rows.items() if dropped.get(i) == reason]
        gone = [r for i, r in rows.items() if i not in dropped]
        moved = [r for i, r in rows.items() if i in dropped and dropped[i] != reason]
        correct = sum(r["label"] == "correct" for r in still)
        precision = f"{correct / len(still):.1%}" if still else "-"
        gone_text = f"{sum(r['label'] == 'correct' for r in gone)}/{sum(r['label'] == 'wrong' for r in gone)}"
        print(
            f"| {reason} | {counts.get(reason, 0)} | {len(rows)} | {len(still)} | {precision} | "
            f"{len(still) - correct} | {gone_text} | {len(moved)} |"
        )
        total_correct += correct
        total_still += len(still)
    if total_still:
        print(
            f"\nAll labeled drops still made: {total_correct}/{total_still} correct ({total_correct / total_still:.1%})."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run directory to read instead")
    parser.add_argument("--out", type=Path, help="keep the run in this directory (to query it)")
    args = parser.parse_args()
    if args.run:
        report(args.run)
        return
    recipe = load_recipe(RECIPE)
    recipe.stages = [s for s in recipe.stages if s.key not in NOT_AUDITED]
    if args.out:
        report(run_recipe(recipe, out=args.out, recipe_path=RECIPE).out_dir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = run_recipe(recipe, out=Path(tmp) / "audit", recipe_path=RECIPE)
        report(result.out_dir)


if __name__ == "__main__":
    main()
