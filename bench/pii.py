"""The ``pii`` stage on real data: planted recall and precision per type, what it finds in real
datasets, and throughput.

1. **Planted**: seeded fake values (``faker``: e-mail addresses, phone numbers in several
   countries' formats, public IPv4/IPv6, cards of four networks, IBANs of five countries, API keys
   and private-key blocks) are put into real Alpaca, Dolly and ShareGPT text, one per row, at a
   random word boundary. Recall: the planted value is found, typed right, and replaced. Precision:
   of the spans found in those rows, the share that are planted values of that type (findings in
   the real text around them are listed separately, for a person to judge).
2. **Real**: counts per type on Alpaca, Dolly, LIMA, oasst (zh) and ShareGPT (demo), and with
   ``--show N`` a random sample of N findings with 40 characters of context, for hand review
   (printed to the terminal only; nothing is written).
3. **Speed**: records/s of the stage on Alpaca + Dolly (normalized first), one process, and the
   ratio against the ``normalize`` stage run on the same rows in the same process.

    python bench/pii.py [--show 60]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections import Counter

import pyarrow as pa
from realdata import DATA, PATHS, normalized


def fakes(seed: int) -> list[tuple[str, str]]:
    import faker

    fake = faker.Faker(["en_US", "en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "en_IN"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    values: list[tuple[str, str]] = []
    for _ in range(100):
        values.append(("email", fake.unique.free_email() if _ % 2 else fake.unique.company_email()))
    for _ in range(40):
        area = rng.choice(["212", "415", "617", "312", "206", "303", "404", "713"])
        exchange = rng.choice("23456789") + rng.choice("0123456789") + rng.choice("1234")
        values.append(("phone", f"({area}) {exchange}-{fake.numerify('####')}"))
    international = [
        "+44 20 7946 ####",
        "+49 30 ########",
        "+33 1 ## ## ## ##",
        "+31 20 ### ####",
        "+91 98### #####",
        "+34 91 ### ## ##",
    ]
    for i in range(60):
        values.append(("phone", fake.numerify(international[i % len(international)])))
    for _ in range(60):
        values.append(("ip", fake.ipv4_public()))
    for _ in range(20):
        values.append(("ip", fake.ipv6(network=False)))
    for card_type in ("visa16", "mastercard", "amex", "discover") * 20:
        values.append(("card", fake.credit_card_number(card_type=card_type)))
    for locale in ("de_DE", "en_GB", "fr_FR", "nl_NL", "es_ES") * 16:
        values.append(("iban", fake[locale].iban()))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    for _ in range(25):
        values.append(("secret", "AKIA" + "".join(rng.choice(alphabet) for _ in range(16))))
        values.append(
            (
                "secret",
                "ghp_"
                + "".join(
                    rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                    for _ in range(36)
                ),
            )
        )
        values.append(
            (
                "secret",
                "xoxb-"
                + fake.numerify("############-#############-")
                + "".join(
                    rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                    for _ in range(24)
                ),
            )
        )
    for _ in range(25):
        body = "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
            for _ in range(64)
        )
        values.append(
            (
                "secret",
                f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n{body[::-1]}\n-----END RSA PRIVATE KEY-----",
            )
        )
    return values


def _insert(text: str, value: str, rng: random.Random) -> str:
    spaces = [i for i, char in enumerate(text) if char == " "] or [len(text)]
    at = rng.choice(spaces)
    return f"{text[:at]} {value}{text[at:]}" if text else value


def planted(tables: dict[str, pa.Table], seed: int) -> None:
    from curate.stages.filters.pii import Pii

    rng = random.Random(seed)
    values = fakes(seed)
    pool = []
    for name in ("alpaca", "dolly", "sharegpt"):
        table = tables[name]
        pool.extend((name, row) for row in table.slice(0, 2000).to_pylist())
    rows = []
    for kind, value in values:
        name, row = rng.choice(pool)
        row = dict(row)
        field = "messages" if row.get("messages") else rng.choice(["instruction", "output"])
        if field == "messages":
            turns = [dict(t) for t in row["messages"]]
            turn = rng.randrange(len(turns))
            turns[turn]["content"] = _insert(turns[turn]["content"], value, rng)
            row["messages"] = turns
        else:
            row[field] = _insert(row[field] or "", value, rng)
        row["_value"], row["_kind"] = value, kind
        rows.append(row)
    truth = [(r.pop("_kind"), r.pop("_value")) for r in rows]
    from curate.records import conform

    table = conform(pa.Table.from_pylist(rows))
    stage = Pii()
    found = stage._redact(table, hidden=stage._hidden())  # spans + redacted text
    redacted, audit = found
    text_after = [str(r) for r in redacted.to_pylist()]
    stats: dict[str, Counter[str]] = {}
    extra: list[tuple[str, str]] = []
    for index, (kind, value) in enumerate(truth):
        counter = stats.setdefault(kind, Counter())
        counter["planted"] += 1
        entries = audit.get(index, [])
        digest = stage.scanner.digest(value)
        hit = [e for e in entries if e["hash"] == digest]
        if hit and hit[0]["type"] == kind and value not in text_after[index]:
            counter["found"] += 1
        for entry in entries:
            if entry["hash"] == digest and entry["type"] == kind:
                stats.setdefault(entry["type"], Counter())["right"] += 1
            else:
                stats.setdefault(entry["type"], Counter())["other"] += 1
                extra.append((entry["type"], f"row {index} ({kind} planted)"))
    print("\n## Planted values in real text\n")
    print("| type | planted | found | recall | spans found | planted spans | precision |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("email", "phone", "ip", "card", "iban", "secret"):
        c = stats.get(kind, Counter())
        spans = c["right"] + c["other"]
        print(
            f"| {kind} | {c['planted']} | {c['found']} | {c['found'] / max(c['planted'], 1):.3f} | "
            f"{spans} | {c['right']} | {c['right'] / max(spans, 1):.3f} |"
        )
    if extra:
        print(
            f"\nSpans that are not the planted value ({len(extra)}):", Counter(t for t, _ in extra)
        )


def real(tables: dict[str, pa.Table], show: int, seed: int) -> None:
    from curate.stages.filters.pii import Pii

    print("\n## Real datasets (default settings)\n")
    print(
        "| dataset | rows | rows with a finding | "
        + " | ".join(("email", "phone", "ip", "card", "iban", "secret"))
        + " |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    samples: list[tuple[str, str, str]] = []
    for name, table in tables.items():
        stage = Pii()
        _, audit = stage._redact(table, hidden=stage._hidden())
        counts = Counter(e["type"] for entries in audit.values() for e in entries)
        print(
            f"| {name} | {table.num_rows:,} | {len(audit):,} | "
            + " | ".join(
                str(counts.get(k, 0)) for k in ("email", "phone", "ip", "card", "iban", "secret")
            )
            + " |"
        )
        rows = table.to_pylist() if show else []
        for index, entries in audit.items():
            for entry in entries:
                if not show:
                    continue
                row = rows[index]
                text = (
                    row["messages"][entry["turn"]]["content"]
                    if entry["field"] == "messages"
                    else row[entry["field"]]
                )
                start, end = entry["start"], entry["end"]
                context = (
                    text[max(0, start - 40) : start]
                    + "[["
                    + text[start:end]
                    + "]]"
                    + text[end : end + 40]
                ).replace("\n", " ")
                samples.append((name, entry["type"], context))
    if show:
        rng = random.Random(seed)
        picked = rng.sample(samples, min(show, len(samples)))
        print(f"\n## {len(picked)} findings for hand review (of {len(samples)})\n")
        for number, (name, kind, context) in enumerate(sorted(picked), start=1):
            print(f"{number:3d}. {name:9s} {kind:6s} {context}")


def speed(tables: dict[str, pa.Table]) -> None:
    from curate.stages.filters.pii import Pii
    from curate.stages.normalize import Normalize

    table = pa.concat_tables([tables["alpaca"], tables["dolly"]], promote_options="default")
    stage = Pii()
    stage.prepare()
    stage.run(table.slice(0, 100))  # warm the detectors
    best: dict[str, float] = {}
    for name, run in (("pii", stage.run), ("normalize", Normalize().run)):
        for _ in range(2):
            started = time.perf_counter()
            run(table)
            seconds = time.perf_counter() - started
            best[name] = min(best.get(name, seconds), seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\n## Speed on Alpaca + Dolly (one process)\n")
    print("| stage | rows | seconds | records/s | peak RSS MiB | vs normalize |")
    print("|---|---|---|---|---|---|")
    for name in ("pii", "normalize"):
        print(
            f"| {name} | {table.num_rows:,} | {best[name]:.2f} | {table.num_rows / best[name]:,.0f} | "
            f"{peak:,.0f} | {best[name] / best['normalize']:.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=0, help="findings to print for hand review")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if not (DATA / "alpaca").is_dir():
        sys.exit(f"needs the real data under {DATA}")
    tables = {name: normalized(name) for name in PATHS}
    planted(tables, args.seed)
    real(tables, args.show, args.seed)
    speed(tables)


if __name__ == "__main__":
    main()
