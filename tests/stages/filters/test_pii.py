"""The ``pii`` stage: each type found in real-looking text, allow-lists, turns, the audit, a run
directory that keeps no redacted value, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from curate.records import conform
from curate.stages.filters.pii import Pii

faker = pytest.importorskip("faker")

PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)


def table(*rows: dict[str, Any]) -> pa.Table:
    full = [
        {"id": f"r{i}", "source": "t", "instruction": "", "input": "", "output": "", **row}
        for i, row in enumerate(rows)
    ]
    return conform(pa.Table.from_pylist(full))


def kept_and_rejected(
    stage: Pii, *rows: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    result = stage.run(table(*rows))
    assert result.kept.num_rows + result.rejected.num_rows == len(rows)
    return result.kept.to_pylist(), result.rejected.to_pylist()


def planted(seed: int = 7) -> dict[str, list[str]]:
    fake = faker.Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    fake.seed_instance(seed)
    return {
        "email": [fake.unique.free_email() for _ in range(6)],
        "phone": ["+44 20 7946 0018", "+49 30 901820", "(415) 867-5309", "+33 1 42 68 53 00"],
        "ip": [fake.ipv4_public() for _ in range(4)] + ["2a00:1450:4007:80e::200e"],
        "card": [fake.credit_card_number(card_type=t) for t in ("visa16", "mastercard", "amex")],
        "iban": [fake["de_DE"].iban(), fake["en_GB"].iban(), fake["fr_FR"].iban()],
        "secret": [
            "AKIA" + "Q3EGRTYUI7PLMN2X",
            "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
            "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        ],
    }


def test_every_type_is_found_and_redacted_in_real_looking_text() -> None:
    values = planted()
    rows = [
        {
            "instruction": f"Write a reply to this message: my {kind} is {value}, thanks.",
            "output": "Thanks for reaching out!",
        }
        for kind, found in values.items()
        for value in found
    ]
    kept, rejected = kept_and_rejected(Pii(), *rows)
    assert rejected == []
    for row, (kind, value) in zip(
        kept, [(k, v) for k, vs in values.items() for v in vs], strict=True
    ):
        assert value not in row["instruction"], (kind, value, row["instruction"])
        assert f"<{kind.upper()}>" in row["instruction"], (kind, value, row["instruction"])
        (span,) = row["pii_spans"]
        assert (span["type"], span["field"], span["action"]) == (kind, "instruction", "redact")
        assert span["hash"] != value and len(span["hash"]) == 16


def test_private_key_blocks_and_assigned_secrets_are_secrets() -> None:
    kept, _ = kept_and_rejected(
        Pii(),
        {"instruction": "Why does ssh refuse this key?", "input": PRIVATE_KEY},
        {"instruction": "Fix my config", "input": 'db_password = "Tq8#vLm2Zx9Rk4Wp"\nport = 5432'},
        {"instruction": "Fix my config", "input": 'password = "your_password_here"'},
    )
    assert kept[0]["input"] == "<SECRET>"
    assert kept[1]["input"] == 'db_password = "<SECRET>"\nport = 5432'
    assert kept[2]["input"] == 'password = "your_password_here"'  # a placeholder, not a secret


def test_allow_lists_keep_training_examples_as_they_are() -> None:
    rows = [
        {"instruction": "Enter a valid email address", "output": "example@example.com"},
        {"instruction": "Give a sample address", "output": "jane.doe@test.example"},
        {"instruction": "Which address range is this?", "input": "192.168.1.20 and 203.0.113.7"},
        {"instruction": "What is the IPv6 documentation prefix?", "output": "2001:db8::1"},
        {"instruction": "Call the fictional number", "output": "(555) 555-0123 or 555-0199"},
        {"instruction": "Which version?", "output": "Upgrade to version 10.2.3.4 today."},
        {"instruction": "Contact support", "output": "Write to help@acme-corp.com"},
        {"instruction": "Use the test card", "output": "4111 1111 1111 1111"},
    ]
    kept, _ = kept_and_rejected(Pii({"allow": ["acme-corp.com"]}), *rows)
    for before, after in zip(rows, kept, strict=True):
        assert after["output"] == before.get("output", ""), after
        assert after["input"] == before.get("input", ""), after
        assert after["pii_spans"] is None
    # Without the user's allow-list entry the support address is found.
    kept, _ = kept_and_rejected(Pii(), rows[6])
    assert kept[0]["output"] == "Write to <EMAIL>"


def test_what_real_data_showed_is_not_personal_stays() -> None:
    """Findings a person judged wrong on Alpaca, Dolly, LIMA and oasst (bench/pii.py --show)."""
    rows = [
        "server.login('my_gmail_address@gmail.com', 'my_password')",
        "a@d.co b@d.co c@x.co d@x.co f@w.co",
        "call me at 123-456-7890 or my email 123@gmail.com",
        "For example, lorem.ipsum@dolor.com is an email.",
        'msg = new MailMessage("xxxx@gmail.com", "yyyy@gmail.com")',
        "ssh git@github.com",
        "Suicide Prevention Hotline: 1-800-273-8255",
        "Name: Jane Doe Phone Number: (234) 567-8901",
        "57841 1948571 236 7 62594381 3458129793 6157839462 6194382571",
        "1 2 3 4 5 6 7 8 9 10",
        "The latest version of Google Chrome (version 86.0.4240.111) is out",
        "XYZ State (08/2017 – 12/2018) - Utilized customer analytics",
        "I'm on a Mac using git 1.7.7.3, he's on Windows",
        "to lub(T1, T2) (§15.12.2.7).",
    ]
    kept, _ = kept_and_rejected(Pii(), *({"output": text} for text in rows))
    for text, row in zip(rows, kept, strict=True):
        assert row["output"] == text and row["pii_spans"] is None, row["pii_spans"]
    personal = ["Please, call me at (732)830-9763", "Call 314-652-3617 or toll free 888-652-3617"]
    kept, _ = kept_and_rejected(Pii(), *({"output": text} for text in personal))
    assert [row["output"] for row in kept] == [
        "Please, call me at <PHONE>",
        "Call <PHONE> or toll free 888-652-3617",
    ]


def test_conversations_are_redacted_turn_by_turn_with_one_placeholder_per_value() -> None:
    messages = [
        {"role": "user", "content": "I am ann.lee@gmail.com, my friend is bo.chan@yahoo.com"},
        {"role": "assistant", "content": "Hello ann.lee@gmail.com!"},
        {"role": "user", "content": "Thanks, reach me at +44 20 7946 0018"},
    ]
    kept, _ = kept_and_rejected(
        Pii(),
        {"instruction": "Thanks, reach me at +44 20 7946 0018", "messages": messages},
    )
    (row,) = kept
    turns = [m["content"] for m in row["messages"]]
    assert turns == [
        "I am <EMAIL>, my friend is <EMAIL_2>",
        "Hello <EMAIL>!",
        "Thanks, reach me at <PHONE>",
    ]
    assert row["instruction"] == "Thanks, reach me at <PHONE>"
    where = sorted((s["field"], s["turn"], s["type"]) for s in row["pii_spans"])
    assert where == [
        ("instruction", None, "phone"),
        ("messages", 0, "email"),
        ("messages", 0, "email"),
        ("messages", 1, "email"),
        ("messages", 2, "phone"),
    ]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant", "user"]


def test_drop_and_flag_actions_and_an_audit_without_values() -> None:
    card = planted()["card"][0]
    stage = Pii({"actions": {"card": "drop", "email": "flag"}})
    kept, rejected = kept_and_rejected(
        stage,
        {"instruction": f"Charge card {card} for the order"},
        {"instruction": "Mail ann.lee@gmail.com the invoice"},
    )
    (reject,) = rejected
    assert reject["reason"] == "pii_card" and card not in json.dumps(reject)
    assert "<CARD>" in reject["instruction"]
    detail = json.loads(reject["detail"])
    assert detail["drop"] == "card" and detail["spans"][0]["type"] == "card"
    (row,) = kept
    assert row["instruction"] == "Mail ann.lee@gmail.com the invoice"  # flagged, kept as is
    assert row["pii_spans"][0]["action"] == "flag"
    assert stage.manifest_info()["found"] == {"card": {"drop": 1}, "email": {"flag": 1}}


def test_own_patterns_and_determinism() -> None:
    rows = [{"instruction": "Employee EMP-123456 wrote to ann.lee@gmail.com"}] * 3
    first = Pii({"patterns": {"employee_id": r"EMP-\d{6}"}}).run(table(*rows)).kept
    again = Pii({"patterns": {"employee_id": r"EMP-\d{6}"}}).run(table(*rows)).kept
    assert first.equals(again)
    assert first.column("instruction")[0].as_py() == "Employee <EMPLOYEE_ID> wrote to <EMAIL>"


def test_unknown_types_and_bad_patterns_are_clear_errors() -> None:
    from curate.errors import StageError

    with pytest.raises(StageError, match="unknown types"):
        Pii({"types": ["ssn"]})
    with pytest.raises(StageError, match="pattern 'x' is not a valid regex"):
        Pii({"patterns": {"x": "("}})


def write_recipe(tmp_path: Path, rows: list[dict[str, Any]], extra: str = "") -> Path:
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + "{broken line with ann.lee@gmail.com\n"
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: private\nbatch_size: 4\n"
        f"sources:\n  - name: s\n    path: {data}\n"
        "stages:\n  - normalize: {}\n  - exact_dedup: {}\n"
        f"  - pii: {{actions: {{card: drop}}{extra}}}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    return recipe


def test_a_run_directory_keeps_no_redacted_value_anywhere(tmp_path: Path) -> None:
    from curate.engine.run import run_recipe
    from curate.recipe import load_recipe
    from curate.run.query import run_query

    values = planted()
    rows = []
    for kind, found in values.items():
        for value in found:
            row = {"instruction": f"Note the {kind}: {value}", "output": "Noted."}
            rows += [row, row]  # the copy is rejected by exact_dedup before pii runs
    recipe = write_recipe(tmp_path, rows)
    result = run_recipe(load_recipe(recipe), out=tmp_path / "out", workers=1)
    everything = b"".join(
        path.read_bytes() for path in sorted(result.out_dir.rglob("*")) if path.is_file()
    )
    for found in values.values():
        for value in found:
            assert value.encode() not in everything, value
    assert b"ann.lee@gmail.com" not in everything  # in an ingest reject's raw line
    spans = run_query(
        result.out_dir, "SELECT outcome, type, count(*) AS n FROM pii GROUP BY ALL ORDER BY ALL"
    )
    counts = {(r["outcome"], r["type"]): r["n"] for r in spans.to_pylist()}
    assert counts[("rejected", "card")] == 3
    assert counts[("kept", "email")] == 6
    assert {kind for _, kind in counts} == set(values)


def test_the_report_counts_findings_without_values(tmp_path: Path) -> None:
    from curate.engine.run import run_recipe
    from curate.recipe import load_recipe

    rows = [
        {"instruction": f"Mail ann.lee{i}@gmail.com the invoice", "output": "Done."}
        for i in range(3)
    ]
    result = run_recipe(load_recipe(write_recipe(tmp_path, rows)), out=tmp_path / "out", workers=1)
    report = (result.out_dir / "report.html").read_text()
    assert 'id="privacy"' in report and "email (redact)" in report
    assert "ann.lee0@gmail.com" not in report
