"""The ``curate`` command line: run, validate, query, stats."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from curate.errors import CurateError
from curate.util.terminal import console

if TYPE_CHECKING:  # pyarrow loads with the commands that print tables: `curate --help` stays light
    import pyarrow as pa

app = typer.Typer(
    name="curate",
    help="Turn raw instruction-tuning data into a clean, deduplicated, reproducible parquet mix.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = console(stderr=True, highlight=False, soft_wrap=True)
out = console(highlight=False, soft_wrap=True)


def _mount_subcommands() -> None:
    from curate.cli.export import export_command
    from curate.cli.inspect import diff_command, inspect_command
    from curate.cli.templates import templates_app

    app.add_typer(
        templates_app, name="templates", help="List template families and render samples."
    )
    app.command("inspect")(inspect_command)
    app.command("diff")(diff_command)
    app.command("export")(export_command)


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out", help="Run directory, a local path or s3://bucket/prefix (overrides `output`)."
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: a.b.0.c=value (YAML value)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Start over, replacing any finished or unfinished run.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Finish an interrupted run from its checkpoints (also the default)."
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Fail on the first bad input row instead of rejecting it."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Processes for per-batch stages (default: all cores)."
        ),
    ] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="local (default) or ray.")] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only print warnings and errors.")
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="Python logging level for the `curate` logger.")
    ] = "WARNING",
) -> None:
    """Run a recipe and write its run directory (resumes an interrupted run of the same recipe)."""
    import logging

    from curate.engine.progress import Reporter
    from curate.engine.run import run_recipe
    from curate.recipe import load_recipe

    if force and resume:
        raise CurateError("--force starts over and --resume continues: pass one of them")
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.WARNING),
        format="%(levelname)s %(name)s: %(message)s",
    )
    loaded = load_recipe(recipe, overrides or [])
    with Reporter(quiet=quiet) as reporter:
        result = run_recipe(
            loaded,
            out=out_dir,
            force=force,
            strict=strict or None,
            recipe_path=recipe,
            workers=workers,
            reporter=reporter,
            engine=engine,
        )
    if not quiet:
        rows = result.manifest["rows"]
        out.print(
            Text(
                f"{result.out_dir}: {rows['kept']} rows kept, {rows['rejected']} rejected (of {rows['read']} read); "
                f"{rows['output_records']} records written"
            )
        )


@app.command()
def validate(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe key.")
    ] = None,
) -> None:
    """Validate a recipe (keys, stage params) and print it resolved, without running anything."""
    from curate.recipe import load_recipe

    loaded = load_recipe(recipe, overrides or [])
    for stage in loaded.build_stages():
        stage.prepare()
    import yaml

    out.print(Text(yaml.safe_dump(loaded.to_dict(), sort_keys=False, allow_unicode=True).rstrip()))
    err.print(f"{recipe}: valid ({len(loaded.sources)} sources, {len(loaded.stages)} stages)")


@app.command()
def query(
    run_dir: Annotated[
        str, typer.Argument(help="A run directory: a local path or s3://bucket/prefix/name.")
    ],
    sql: Annotated[str, typer.Argument(help="SQL over the views records, rejects, stages.")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
    timeout: Annotated[
        float, typer.Option(help="Stop the query after this many seconds (0: no limit).")
    ] = 300.0,
    unsafe: Annotated[
        bool,
        typer.Option(
            "--unsafe",
            help="Plain DuckDB: any statement, any file, extensions (it can write and change the run).",
        ),
    ] = False,
) -> None:
    """Query a run directory with DuckDB (views: records, rejects, stages). Read-only: one SELECT
    that reads only the run's files, with a time limit; --unsafe lifts that."""
    from curate.run.query import run_query

    if fmt not in ("table", "csv", "json"):
        raise CurateError(f"--format must be table, csv or json, not {fmt!r}")
    if timeout < 0:
        raise CurateError(f"--timeout must be 0 or more seconds, not {timeout}")
    from curate.util.storage import as_run_path

    result = run_query(as_run_path(run_dir), sql, unsafe=unsafe, timeout=timeout or None)
    print_table(result, fmt, limit)


def print_table(result: pa.Table, fmt: str, limit: int = 50) -> None:
    import pyarrow.csv as pacsv

    if fmt == "csv":
        buffer = io.BytesIO()
        pacsv.write_csv(_plain(result), buffer)
        sys.stdout.write(buffer.getvalue().decode())
        return
    if fmt == "json":
        for row in result.to_pylist():
            sys.stdout.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return
    table = Table(show_lines=False)
    for name in result.column_names:
        table.add_column(name, overflow="fold")
    for row in result.slice(0, limit).to_pylist():
        table.add_row(*[Text(_cell(v)) for v in row.values()])
    out.print(table)
    if result.num_rows > limit:
        out.print(f"({result.num_rows} rows, {limit} shown; use --limit or --format csv)")


def _plain(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    # CSV cannot hold nested values: write them as JSON text.
    columns = []
    for column in table.columns:
        if pa.types.is_nested(column.type):
            columns.append(
                pa.array(
                    [
                        None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                        for v in column.to_pylist()
                    ],
                    pa.string(),
                )
            )
        else:
            columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


@app.command()
def stats(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Summarize a run: rows per source, the stage funnel and rejects by reason."""
    from curate.run.query import load_manifest

    manifest = load_manifest(run_dir)
    sources = Table(title=f"{manifest.name}: sources")
    for name in ("source", "files", "read", "kept", "rejected"):
        sources.add_column(name, justify="right" if name != "source" else "left")
    for s in manifest.sources:
        sources.add_row(
            s.name, str(len(s.files)), str(s.rows_read), str(s.rows_kept), str(s.rows_rejected)
        )
    out.print(sources)
    funnel = Table(title="stages")
    for name in ("#", "stage", "in", "out", "dropped by reason", "seconds"):
        funnel.add_column(name)
    for stage in manifest.stages:
        dropped = ", ".join(f"{k}={v}" for k, v in stage.dropped.items())
        funnel.add_row(
            str(stage.index),
            stage.name,
            str(stage.rows_in),
            str(stage.rows_out),
            dropped,
            f"{stage.seconds:.2f}",
        )
    out.print(funnel)
    rows, seconds = manifest.rows, manifest.timings.get("total_seconds", 0.0)
    out.print(f"read {rows.read}  kept {rows.kept}  rejected {rows.rejected}  ({seconds:.1f}s)")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of RUN_DIR/report.html.")
    ] = None,
) -> None:
    """(Re)build a run's report.html: funnel, sources, languages, tasks, lengths, duplicates, rejects."""
    from curate.run.report import write_report

    path = write_report(run_dir, out_file)
    out.print(f"wrote {path}")


# After the commands above, so `curate --help` lists run/validate/query/stats/report first.
_mount_subcommands()


def main() -> None:
    """Entry point: user-facing errors print one clear message, never a traceback."""
    try:
        app(standalone_mode=False)
    except CurateError as error:
        err.print(Text("error: ", style="bold red") + Text(str(error)), soft_wrap=True)
        sys.exit(error.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as error:
        # Usage errors from the CLI framework (bad option, missing argument) know how to show themselves.
        show = getattr(error, "show", None)
        if callable(show) and hasattr(error, "exit_code"):
            show()
            sys.exit(int(error.exit_code))
        raise


if __name__ == "__main__":
    main()
