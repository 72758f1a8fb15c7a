"""Near-duplicate removal, whole process, beside its peers in the same run: ``curate run`` (normalize
+ minhash_dedup), the datasketch best-practice script and datatrove's MinHash deduplication (its
four pipeline steps on the local executor), all on the same synthetic JSON Lines file.

    .venv/bin/python bench/peers.py                  # 100k records
    .venv/bin/python bench/peers.py --docs 20000     # a quick run

``datatrove`` is a bench-only dependency (``pip install -e '.[bench]'``); without it its row says
so. The records are ``bench/dedup.py``'s corpus: ~100 words each, 10% of them planted variants
(1-3 word edits, case and punctuation changes) of another record. Every tool reads the same
file, dedups on instruction + input, and writes what it keeps. Settings are matched where the
tools allow: word 5-grams, 128 hash functions and a 0.8 threshold (datatrove takes bands and rows:
the ones datasketch's MinHashLSH picks for 0.8). curate verifies candidates by Jaccard; the two
peers remove what shares a band. Each tool runs as its own process tree; wall seconds
include start-up, reading and writing; peak RSS is the tree's (sampled). "planted" is what an
exact answer removes: every planted variant but one per group.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch.lsh import _optimal_param
from measure import MIB, PeakSampler

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dedup import corpus_file  # noqa: E402

THRESHOLD = 0.8
NUM_PERM = 128
NGRAM = 5
# curate's default stage, and the same stage set like the peers: accept a candidate pair on the
# signature's estimate, without the minimal-pair guard (which keeps requests whose ask changed
# apart: the planted edits often change the instruction).
CURATE_SETTINGS = [
    ("", ""),
    (": verify estimate, no minimal-pair guard", ", verify: estimate, minimal_pairs: false"),
    # What the peers compute: one Jaccard over instruction + input, no per-field thresholds, names
    # or minimal pairs (curate still verifies a candidate by its signature; the peers do not).
    (
        ": bare (one Jaccard, no guards)",
        ", verify: estimate, minimal_pairs: false, same_names: false, field_thresholds: {}",
    ),
]

DATASKETCH_SCRIPT = textwrap.dedent(
    """
    # The datasketch best-practice script: MinHash.bulk over word 5-gram shingles (xxh32),
    # MinHashLSH with the threshold, each record queried then inserted (the first one is kept).
    import json, re, sys
    import xxhash
    from datasketch import MinHash, MinHashLSH

    source, target, threshold, num_perm, ngram = sys.argv[1:6]
    threshold, num_perm, ngram = float(threshold), int(num_perm), int(ngram)
    word = re.compile(r"\\w+")
    records = [json.loads(line) for line in open(source, encoding="utf-8")]

    def shingles(record):
        words = word.findall((record["instruction"] + " " + record["input"]).lower())
        grams = {" ".join(words[i : i + ngram]) for i in range(max(1, len(words) - ngram + 1))}
        return [g.encode("utf-8") for g in grams]

    hashes = MinHash.bulk(
        [shingles(r) for r in records], num_perm=num_perm, hashfunc=xxhash.xxh32_intdigest
    )
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = []
    with open(target, "w", encoding="utf-8") as out:
        for index, (record, minhash) in enumerate(zip(records, hashes)):
            if lsh.query(minhash):
                removed.append(record["id"])
                continue
            lsh.insert(index, minhash)
            out.write(json.dumps(record) + "\\n")
    print(json.dumps({"removed": removed}))
    """
)

DATATROVE_SCRIPT = textwrap.dedent(
    """
    # datatrove's MinHash deduplication: signatures, buckets, clusters, filter (local executor).
    import json, sys
    from pathlib import Path
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    import datatrove.utils.hashes.xxhash as dt_xxhash
    import xxhash

    # datatrove hashes str shingles with xxhash, which xxhash 4 no longer takes: encode first
    # (the same hash datatrove computes with xxhash 3; at module level so workers get it too).
    dt_xxhash.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode() if isinstance(data, str) else data)
    dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)

    source, work, bands, rows, ngram, tasks = sys.argv[1:7]
    bands, rows, ngram, tasks = int(bands), int(rows), int(ngram), int(tasks)
    work = Path(work)
    config = MinhashConfig(n_grams=ngram, num_buckets=bands, hashes_per_bucket=rows)

    def reader():
        def adapter(self, data, path, id_in_file):
            return {"text": data["instruction"] + " " + data["input"], "id": data["id"]}
        return JsonlReader(str(Path(source).parent), glob_pattern=Path(source).name, adapter=adapter)

    if __name__ == "__main__":
        steps = [
            ([reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)], tasks),
            ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=config)], bands),
            ([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"), config=config)], 1),
            ([reader(), MinhashDedupFilter(input_folder=str(work / "remove"),
                exclusion_writer=JsonlWriter(str(work / "removed"), compression=None)),
              JsonlWriter(str(work / "kept"), compression=None)], tasks),
        ]
        for index, (pipeline, count) in enumerate(steps):
            LocalPipelineExecutor(pipeline=pipeline, tasks=count, workers=min(count, 2),
                                  logging_dir=str(work / f"logs{index}")).run()
        removed = [json.loads(line)["id"] for f in sorted((work / "removed").rglob("*.jsonl"))
                   for line in open(f)]
        print(json.dumps({"removed": removed}))
    """
)


def shingle_set(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + NGRAM]) for i in range(max(1, len(words) - NGRAM + 1))}


def true_matches(table: pa.Table, group: np.ndarray) -> set[str]:
    """Ids of records whose planted group holds another record at exact Jaccard >= THRESHOLD
    (word 5-grams of instruction + input, lower-cased): the removals a threshold of 0.8 allows.
    (Unplanted records are random Zipf text: no pair of them comes near 0.8.)"""
    ids = table.column("id").to_pylist()
    texts = [
        f"{a} {b}"
        for a, b in zip(
            table.column("instruction").to_pylist(), table.column("input").to_pylist(), strict=True
        )
    ]
    members: dict[int, list[int]] = {}
    for row, value in enumerate(group.tolist()):
        if value >= 0:
            members.setdefault(value, []).append(row)
    matched: set[str] = set()
    for rows in members.values():
        sets = {row: shingle_set(texts[row]) for row in rows}
        for a in rows:
            for b in rows:
                if a < b and len(sets[a] & sets[b]) >= THRESHOLD * len(sets[a] | sets[b]):
                    matched.update((ids[a], ids[b]))
    return matched


def measured(command: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the process tree, stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = PeakSampler(lambda: {"tree": ([process.pid], True)})
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    peak = sampler.stop().get("tree", 0)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {stderr[-2000:]}")
    return wall, peak, stdout


def run_script(tool: str, path: Path, code: str, arguments: list[Any]) -> dict[str, Any]:
    """Write a peer's script, run it in its own process, read the ids it removed (last line)."""
    path.write_text(code)
    wall, peak, stdout = measured([sys.executable, str(path), *map(str, arguments)], path.parent)
    removed = json.loads(stdout.splitlines()[-1])["removed"]
    return {"tool": tool, "wall": wall, "peak": peak, "removed": removed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="curate-peers-") as scratch_name:
        scratch = Path(scratch_name)
        table = pq.read_table(corpus_file(args.docs, 0, scratch))
        group = table.column("planted_group").to_numpy()
        planted = int(np.sum(group >= 0) - len(np.unique(group[group >= 0])))
        allowed = true_matches(table, group)
        # An exact answer keeps one record of each planted group that has a true match.
        ids = table.column("id").to_pylist()
        exact = len(allowed) - len({int(group[i]) for i, rid in enumerate(ids) if rid in allowed})
        source = scratch / "records.jsonl"
        with source.open("w", encoding="utf-8") as out:
            for row in table.select(["id", "instruction", "input", "output"]).to_pylist():
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        # The bands and rows MinHashLSH picks for the threshold (datatrove takes them as numbers).
        bands, rows = _optimal_param(THRESHOLD, NUM_PERM, 0.5, 0.5)
        results: list[dict[str, Any]] = []

        for label, extra in CURATE_SETTINGS:
            recipe = scratch / "recipe.yaml"
            out = scratch / "curate-run"
            recipe.write_text(
                "name: peers\n"
                f"sources: [{{name: synthetic, path: {source}}}]\n"
                f"stages: [normalize, {{minhash_dedup: {{threshold: {THRESHOLD}, "
                f"num_perm: {NUM_PERM}, ngram: {NGRAM}{extra}}}}}]\n"
                f"output: {out}\n"
            )
            command = [sys.executable, "-m", "curate.cli", "run", str(recipe), "-q", "--force"]
            wall, peak, _ = measured([*command, "--workers", str(args.workers)], REPO)
            manifest = json.loads((out / "manifest.json").read_text())
            stage = next(s for s in manifest["stages"] if s["name"].startswith("minhash_dedup"))
            results.append(
                {
                    "tool": f"curate run (normalize + minhash_dedup{label})",
                    "wall": wall,
                    "peak": peak,
                    "removed": pq.read_table(
                        out / "rejects", filters=[("stage", "==", stage["name"])], columns=["id"]
                    )
                    .column("id")
                    .to_pylist(),
                }
            )

        results.append(
            run_script(
                "datasketch best-practice script",
                scratch / "datasketch_dedup.py",
                DATASKETCH_SCRIPT,
                [source, scratch / "ds.jsonl", THRESHOLD, NUM_PERM, NGRAM],
            )
        )
        try:
            import datatrove  # noqa: F401

            results.append(
                run_script(
                    f"datatrove MinHash, 4 steps ({bands} buckets x {rows})",
                    scratch / "datatrove_dedup.py",
                    DATATROVE_SCRIPT,
                    [source, scratch / "dt", bands, rows, NGRAM, args.workers],
                )
            )
        except ImportError:
            results.append({"tool": "datatrove: not installed (pip install -e '.[bench]')"})

    reference, like = results[0], results[2]
    print(
        f"\n{args.docs:,} synthetic records ({planted:,} planted variants beyond one per group); "
        f"threshold {THRESHOLD}, {NUM_PERM} permutations, word {NGRAM}-grams; an exact answer "
        f"removes {exact:,}\n"
    )
    print(
        "| tool | wall s | records/s | peak RSS MiB | removed | removed vs curate bare "
        "| removed with a true >= 0.8 match | of the exact answer's removals | "
        "time vs curate (default) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        if "wall" not in row:
            print(f"| {row['tool']} | | | | | | | | |")
            continue
        print(
            f"| {row['tool']} | {row['wall']:.1f} | {args.docs / row['wall']:,.0f} | "
            f"{row['peak'] / MIB:,.0f} | {len(row['removed']):,} | "
            f"{(len(row['removed']) - len(like['removed'])) / max(1, len(like['removed'])):+.2%} | "
            f"{len(set(row['removed']) & allowed) / max(1, len(row['removed'])):.1%} | "
            f"{len(set(row['removed']) & allowed) / max(1, exact):.1%} | "
            f"{row['wall'] / reference['wall']:.2f}x |"
        )


if __name__ == "__main__":
    main()
