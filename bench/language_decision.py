"""The language stage as a filter: how many rows it drops, and are they right.

For ``keep: [en]`` with each backend, ``language_v1`` (top-1 label on every field) against
``language_v2`` (the request, dropped only on strong evidence) and ``language_v3`` (a short request
also asks its answer) and ``language_v4`` (grammar words as a second opinion), in the same
process on the same rows:

- Alpaca + Dolly (67,013 English-corpus rows): rows dropped, and the drops listed for reading;
  throughput and the v2/v1 speed ratio;
- recall: dolly_ja, alpaca_zh (non-English instructions) must be dropped; the two non-English NIv2
  translation tasks are reported (their instructions are English);
- ``../shared/data/langid`` (human-translated UI strings, 8 languages): English kept and
  non-English removed, per length bucket.

    python bench/language_decision.py            # both backends (fasttext needs the extra)
    python bench/language_decision.py --backend langdetect --show 20
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pyarrow as pa

from curate.ingest import read_file
from curate.ingest.builder import RowBuilder
from curate.ingest.parse import ReadContext
from curate.lib import langid as langid_module
from curate.lib.langid.langdetect_nb import LangdetectProfiles, _add_rows
from curate.stages import get_stage

VERSIONS = ("language_v1", "language_v2", "language_v3", "language_v4")

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RECALL = {
    "dolly_ja": "dolly_ja/databricks-dolly-15k-ja.jsonl.gz",
    "alpaca_zh": "alpaca_zh/carbonz0/zh-data-part-00.json.gz",
    "niv2 gl->ja": "natural_instructions/adv_icl_copy/task1239_ted_translation_gl_ja.json.gz",
    "niv2 ro->en": "natural_instructions/adv_icl_copy/"
    "task1435_ro_sts_parallel_language_translation_ro_to_en.json.gz",
}


def _read(rel: str) -> pa.Table:
    return read_file(DATA / rel, source=rel.split("/")[0]).records


def _langid_table() -> tuple[pa.Table, list[str], list[str]]:
    with gzip.open(DATA / "langid" / "testset.jsonl.gz", "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    rows = [r for r in rows if r["bucket"] in ("short", "medium", "long")]
    builder = RowBuilder(ReadContext("langid", "langid/testset.jsonl.gz"))
    for i, row in enumerate(rows):
        builder.add(i, instruction=row["text"])
    return builder.records(), [r["bucket"] for r in rows], [r["lang"] for r in rows]


def per_ngram_raw_scores(
    profiles: LangdetectProfiles, texts: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: langdetect's sum gathered per n-gram (curate before the word-vector cache,
    what ``language_v1`` ran when the issue was filed), for the "as filed" row."""
    n = len(texts)
    all_ids: list[int] = []
    counts = np.zeros(n, dtype=np.int64)
    for row, text in enumerate(texts):
        ids = profiles.ngram_ids(text)
        counts[row] = len(ids)
        all_ids.extend(ids)
    scores = np.zeros((n, len(profiles.langs)), dtype=np.float64)
    if all_ids:
        flat = np.asarray(all_ids, dtype=np.int64)
        rows = np.repeat(np.arange(n), counts)
        for start in range(0, len(flat), 1 << 18):
            part = slice(start, start + (1 << 18))
            _add_rows(scores, rows[part], profiles.log_prob[flat[part]])
    return scores, counts


def run(backend: str, show: int) -> None:
    corpus = pa.concat_tables(
        [_read("alpaca/alpaca_data.json.gz"), _read("dolly/databricks-dolly-15k.jsonl.gz")]
    )
    print(f"\n## backend {backend}, keep [en]\n")
    print("| stage | Alpaca+Dolly dropped | rows/s | speed vs the first row |")
    print("|---|---:|---:|---:|")
    speeds: dict[str, float] = {}
    dropped: dict[str, pa.Table] = {}
    as_filed = "language_v1 as filed (per-n-gram scoring)"
    rows: list[tuple[str, str]] = [(as_filed, "language_v1")] if backend == "langdetect" else []
    for label, name in [*rows, *((name, name) for name in VERSIONS)]:
        stage = get_stage(name)(backend=backend)
        stage.prepare()
        profiles = LangdetectProfiles.shared()
        # Every row starts cold, as a worker does: no cached words, no cached v1 labels.
        profiles._vocab.clear()
        langid_module._cache.clear()
        with patch.object(
            LangdetectProfiles,
            "raw_scores",
            per_ngram_raw_scores if label == as_filed else LangdetectProfiles.raw_scores,
        ):
            started = time.perf_counter()
            _, rejected = stage.run(corpus)
            speeds[label] = corpus.num_rows / (time.perf_counter() - started)
        if label == name:
            dropped[name] = rejected
        ratio = speeds[label] / speeds[rows[0][0] if rows else "language_v1"]
        print(f"| {label} | {rejected.num_rows} | {speeds[label]:,.0f} | {ratio:.2f}x |")
    print("\n| recall set | rows | " + " | ".join(f"{n[-2:]} dropped" for n in VERSIONS) + " |")
    print("|---|---:|" + "---:|" * len(VERSIONS))
    for label, rel in RECALL.items():
        table = _read(rel)
        shares = []
        for name in VERSIONS:
            _, rejected = get_stage(name)(backend=backend).run(table)
            shares.append(f"{rejected.num_rows / table.num_rows:.2%}")
        print(f"| {label} | {table.num_rows} | " + " | ".join(shares) + " |")
    table, buckets, langs = _langid_table()
    short = [n[-2:] for n in VERSIONS]
    print(
        "\n| langid bucket | "
        + " | ".join(f"English kept {v}" for v in short)
        + " | "
        + " | ".join(f"non-English removed {v}" for v in short)
        + " |"
    )
    print("|---|" + "---:|" * (2 * len(VERSIONS)))
    outcome: dict[str, dict[tuple[str, bool], list[int]]] = {}
    for name in VERSIONS:
        kept, _ = get_stage(name)(backend=backend).run(table)
        kept_rows = set(kept.column("source_row").to_pylist())
        tally: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])
        for i, (bucket, lang) in enumerate(zip(buckets, langs, strict=True)):
            entry = tally[(bucket, lang == "en")]
            entry[0] += i in kept_rows
            entry[1] += 1
        outcome[name] = tally
    for bucket in ("short", "medium", "long"):
        cells = []
        for english in (True, False):
            for name in VERSIONS:
                k, total = outcome[name][(bucket, english)]
                cells.append(f"{(k if english else total - k) / total:.1%}")
        print(f"| {bucket} | " + " | ".join(cells) + " |")
    if show:
        print(f"\n{VERSIONS[-1]} drops on Alpaca+Dolly (first {show}):")
        for row in dropped[VERSIONS[-1]].to_pylist()[:show]:
            print(f"- {row['lang']}: {row['instruction'][:90]!r} ({row['detail']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["langdetect", "fasttext"], action="append")
    parser.add_argument("--show", type=int, default=10, help="drops of the newest version to list")
    args = parser.parse_args()
    for backend in args.backend or ["langdetect", "fasttext"]:
        run(backend, args.show)


if __name__ == "__main__":
    main()
