"""``curate inspect RUN`` and ``curate diff RUN_A RUN_B``: look at rows, compare two runs.

The logic lives in :mod:`curate.run.inspect` and :mod:`curate.run.diff`; this module only renders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from curate.util.terminal import console

if TYPE_CHECKING:  # the logic (and duckdb) is imported when a command runs
    from curate.run.diff import RunDiff, RunTotals, Status
    from curate.run.inspect import Keeper, Sample

MaxChars = Annotated[
    int,
    typer.Option("--max-chars", min=20, help="Truncate each text field to this many characters."),
]
Width = Annotated[
    int | None,
    typer.Option("--width", min=40, help="Output width in columns (default: the terminal's)."),
]
# Fields shown on one "about" line when present, in this order.
ABOUT = ("task", "category", "task_source", "lang", "template_id", "template_type", "parent_id")
TEXT_FIELDS = ("instruction", "input", "output", "rationale")
MAX_TURNS = 8


def inspect_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    reason: Annotated[
        list[str] | None,
        typer.Option("--reason", help="Only rejects with this reason (repeatable)."),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only this source (repeatable).")
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage", help="Only rejects from this stage: quality or quality_v1 (repeatable)."
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=0, help="Rows to show.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the (deterministic) sample.")] = 0,
    rejects: Annotated[
        bool, typer.Option("--rejects", help="Sample the rejects (implied by --reason/--stage).")
    ] = False,
    max_chars: MaxChars = 600,
    width: Width = None,
) -> None:
    """Show a deterministic sample of a run's records or rejects, one panel per row."""
    from curate.run.inspect import sample_run

    sample = sample_run(
        run_dir,
        rejects=rejects,
        reasons=reason or (),
        sources=source or (),
        stages=stage or (),
        n=n,
        seed=seed,
    )
    screen = console(highlight=False, width=width)
    screen.print(Text(_header(sample), style="bold"))
    for row in sample.rows:
        screen.print(_panel(row, sample, max_chars))


def _header(sample: Sample) -> str:
    filters = ", ".join(f"{k}={'|'.join(v)}" for k, v in sample.filters.items())
    what = f"{sample.table} with {filters}" if filters else sample.table
    return (
        f"{sample.matched} {what} matched in {sample.run_dir}; "
        f"showing {len(sample.rows)} (seed {sample.seed})"
    )


def _panel(row: dict[str, Any], sample: Sample, max_chars: int) -> Panel:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    about = [f"{k}={_value(row[k])}" for k in ABOUT if row.get(k) not in (None, "")]
    if row.get("lang_score") is not None and row.get("lang"):
        about[about.index(f"lang={row['lang']}")] += f" ({row['lang_score']:.2f})"
    if row.get("inverted"):
        about.append("inverted")
    if about:
        grid.add_row("about", Text(" · ".join(about), style="dim"))
    if sample.table == "rejects":
        grid.add_row("rejected", Text(f"{row.get('stage')} / {row.get('reason')}", style="red"))
        if row.get("detail"):
            grid.add_row("detail", Text(clip(str(row["detail"]), max_chars)))
    _add_text(grid, row, max_chars)
    if row.get("duplicate_of"):
        keeper = sample.keepers.get(row["duplicate_of"])
        grid.add_row("duplicate of", _keeper(row["duplicate_of"], keeper, row))
        if keeper is not None and keeper.row is not None:
            _add_text(grid, keeper.row, max_chars, prefix="  ")
    place = f"{row.get('source_file')} row {row.get('source_row')}"
    title = Text(f"{row.get('id') or '(no id)'} · {row.get('source')} · {place}")
    return Panel(grid, title=title, title_align="left")


def _add_text(grid: Table, row: dict[str, Any], max_chars: int, prefix: str = "") -> None:
    for name in TEXT_FIELDS:
        if row.get(name) not in (None, ""):
            grid.add_row(prefix + name, Text(clip(str(row[name]), max_chars)))
    if row.get("options"):
        grid.add_row(prefix + "options", Text(clip(" | ".join(row["options"]), max_chars)))
    messages = row.get("messages") or []
    roles = [m.get("role") for m in messages]
    if roles and roles != ["user", "assistant"]:  # one plain exchange is instruction/output
        turns = [
            Text.assemble((f"{m.get('role')}: ", "italic"), clip(str(m.get("content")), max_chars))
            for m in messages[:MAX_TURNS]
        ]
        if len(messages) > MAX_TURNS:
            turns.append(Text(f"… {len(messages) - MAX_TURNS} more turns", style="dim"))
        grid.add_row(prefix + "messages", Group(*turns))


def _keeper(key: str, keeper: Keeper | None, row: dict[str, Any]) -> Text:
    if keeper is None or keeper.found_in is None:
        if str(row.get("stage", "")).startswith("decontaminate") or str(
            row.get("reason", "")
        ).startswith("benchmark"):
            return Text(
                f"{key}: a benchmark item, not part of this run (the detail names its file and row)",
                style="yellow",
            )
        return Text(f"{key}: not found in this run's records or rejects", style="yellow")
    kept = keeper.row or {}
    where: str = keeper.found_in
    if keeper.found_in == "rejects":
        where += f", itself dropped by {kept.get('stage')} / {kept.get('reason')}"
    if keeper.expanded:
        where += f"; expanded, one expansion shown: {kept.get('id')} ({kept.get('template_id')})"
    return Text(
        f"{keeper.id} ({where}) · {kept.get('source')} · {kept.get('source_file')} row {kept.get('source_row')}"
    )


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, saying how much was cut."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars].rstrip()}… [+{len(text) - max_chars} chars]"


def _value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def diff_command(
    run_a: Annotated[Path, typer.Argument(help="The baseline run directory.")],
    run_b: Annotated[Path, typer.Argument(help="The run to compare with it.")],
    n: Annotated[int, typer.Option("--n", "-n", min=0, help="Examples shown per transition.")] = 5,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the per-input-row diff to a .parquet, .csv or .jsonl file."
        ),
    ] = None,
    width: Width = None,
) -> None:
    """Compare two runs per input row (source, file, row): what changed status, and why."""
    from curate.run.diff import diff_runs

    result = diff_runs(run_a, run_b, n=n, out=out)
    screen = console(highlight=False, width=width)
    errors = console(stderr=True, highlight=False, width=width)
    for warning in result.warnings:
        errors.print(Text.assemble(("warning: ", "bold yellow"), warning))
    screen.print(_totals(result))
    changed = [t for t in result.transitions if not t.only_one_side]
    if changed:
        table = Table(title="input rows that changed status (A → B)", title_justify="left")
        for name in ("A", "B", "rows"):
            table.add_column(name, justify="right" if name == "rows" else "left")
        for t in changed:
            table.add_row(_status(t.before), _status(t.after), str(t.count))
        screen.print(table)
    else:
        screen.print(Text("no input row changed status", style="green"))
    if result.content_changed:
        screen.print(
            f"{result.content_changed} input rows have a different id (their content changed)"
        )
    for side, by_source in (("A", result.only_a_by_source), ("B", result.only_b_by_source)):
        if by_source:
            listed = ", ".join(f"{s} ({c})" for s, c in by_source.items())
            screen.print(
                Text(
                    f"{sum(by_source.values())} input rows only in run {side} "
                    f"(different sources or inputs): {listed}",
                    style="yellow",
                )
            )
    for t in result.transitions:
        if not t.examples:
            continue
        screen.print(Text(f"\n{_status(t.before)} → {_status(t.after)} ({t.count})", style="bold"))
        for e in t.examples:
            ids = f"{_short(e.id_a)} → {_short(e.id_b)}"
            screen.print(
                Text.assemble(
                    f"  {e.source} {e.source_file} row {e.source_row}  ",
                    (ids, "dim"),
                    f"  {e.instruction!r}" if e.instruction is not None else "",
                )
            )
    if result.out is not None:
        screen.print(f"\nwrote {result.out_rows} rows to {result.out}")


def _totals(result: RunDiff) -> Table:
    table = Table(title="input rows per run", title_justify="left")
    for name in ("run", "input rows", "kept", "rejected", "records", "reject rows", "top reasons"):
        table.add_column(name, justify="left" if name in ("run", "top reasons") else "right")
    for label, totals in (("A", result.a), ("B", result.b)):
        table.add_row(
            f"{label}: {totals.run_dir}",
            str(totals.input_rows),
            str(totals.kept),
            str(totals.rejected),
            str(totals.records),
            str(totals.reject_rows),
            _reasons(totals),
        )
    return table


def _reasons(totals: RunTotals, top: int = 4) -> str:
    items = list(totals.by_reason.items())
    shown = ", ".join(f"{r}={c}" for r, c in items[:top])
    return shown + (f", +{len(items) - top} more" if len(items) > top else "")


def _status(status: Status) -> str:
    return status.label


def _short(value: str | None) -> str:
    return value[:12] if value else "-"


__all__ = ["clip", "diff_command", "inspect_command"]
