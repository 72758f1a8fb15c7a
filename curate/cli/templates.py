"""``curate templates list`` and ``curate templates render FAMILY``: see what a family produces."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from curate.errors import CurateError
from curate.util.terminal import console

if TYPE_CHECKING:  # loaded by the commands that use them: `curate --help` stays light
    import pyarrow as pa

    from curate.templates import Expander, Family

templates_app = typer.Typer(
    name="templates",
    help="List template families and render records with them.",
    no_args_is_help=True,
    add_completion=False,
)

DirOption = Annotated[
    list[Path] | None,
    typer.Option("--dir", help="Also load families from this directory (repeatable)."),
]
NoBuiltin = Annotated[
    bool, typer.Option("--no-builtin", help="Do not load the project's templates/.")
]


def _families(
    dirs: list[Path] | None, no_builtin: bool, only: list[str] | None = None
) -> list[Family]:
    from curate.templates import DEFAULT_TEMPLATE_DIR, load_families

    directories = ([] if no_builtin else [DEFAULT_TEMPLATE_DIR]) + list(dirs or [])
    return load_families(directories, only)


@templates_app.command("list")
def list_families(dirs: DirOption = None, no_builtin: NoBuiltin = False) -> None:
    """Every template family: its templates, their types, inversions and what it applies to."""
    families = _families(dirs, no_builtin)
    table = Table(show_lines=False)
    for column in ("family", "templates", "types", "inverted", "applies to", "file"):
        table.add_column(column)
    for family in families:
        types = Counter(t.type for t in family.templates)
        table.add_row(
            family.id,
            str(len(family.templates)),
            ", ".join(f"{k}×{v}" for k, v in sorted(types.items())),
            str(sum(t.inverted for t in family.templates)),
            family.spec.applies_to.describe(),
            _short(family.path),
        )
    console(highlight=False, soft_wrap=True, width=200).print(table)
    typer.echo(f"{len(families)} families, {sum(len(f.templates) for f in families)} templates")


@templates_app.command("render")
def render_family(
    family: Annotated[str, typer.Argument(help="Family id (see `curate templates list`).")],
    sample: Annotated[int, typer.Option("--sample", "-n", min=1, help="Records to show.")] = 3,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Read records from this file (default: the family's examples)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed for the sample, the assignment and option styles.")
    ] = 0,
    all_templates: Annotated[
        bool,
        typer.Option(
            "--all-templates", help="Render every template that applies, not just the assigned one."
        ),
    ] = False,
    per_record: Annotated[
        int, typer.Option(min=1, help="Templates per record (as in the expand stage).")
    ] = 1,
    dirs: DirOption = None,
    no_builtin: NoBuiltin = False,
) -> None:
    """Render N records with a family: from its built-in examples, or sampled from --data."""
    import numpy as np
    import pyarrow as pa

    from curate.templates import Expander
    from curate.templates.render import example_table
    from curate.util.hashing import splitmix64, stable_seed

    (chosen,) = _families(dirs, no_builtin, [family])
    if data is None:
        records = example_table(chosen)
        all_templates = True
    else:
        records = _read(data)
    expander = Expander([chosen], seed=seed, per_record=per_record)
    if all_templates:
        _render_all(expander, chosen, records, sample, seed)
        return
    expander.fit([records])
    expanded = expander.expand(records).table
    rows = expanded.filter(pa.compute.is_valid(expanded.column("template_id")))
    if rows.num_rows == 0:
        raise CurateError(
            f"family {family} applies to none of the {records.num_rows} records in {data}"
        )
    parents = np.array(rows.column("parent_id").to_pylist(), dtype=object)
    unique = list(dict.fromkeys(parents.tolist()))
    keys = splitmix64(np.arange(len(unique), dtype=np.uint64) ^ stable_seed(seed, "render"))
    picked = {unique[i] for i in np.argsort(keys, kind="stable")[:sample].tolist()}
    shown = 0
    for row in rows.to_pylist():
        if row["parent_id"] in picked:
            _show(
                row["template_id"],
                row["template_type"],
                row["parent_id"],
                row["instruction"],
                row["output"],
                row["exemplar_ids"],
            )
            shown += 1
    typer.echo(f"{len(picked)} of {len(unique)} records the family applies to, {shown} rows")


def _render_all(
    expander: Expander, family: Family, records: pa.Table, sample: int, seed: int
) -> None:
    import numpy as np
    import pyarrow as pa

    from curate.templates.render import RenderError, record_context, render
    from curate.util.hashing import splitmix64, stable_seed

    prep = expander.prepare(records)
    applies = np.flatnonzero(prep.matrix.any(axis=1))
    if len(applies) == 0:
        raise CurateError(f"family {family.id} applies to none of the {records.num_rows} records")
    keys = splitmix64(np.arange(len(applies), dtype=np.uint64) ^ stable_seed(seed, "render"))
    picked = np.sort(applies[np.argsort(keys, kind="stable")[:sample]])
    has_options = np.zeros(records.num_rows, dtype=bool)
    contexts = {}
    for row in picked.tolist():
        contexts[row] = record_context(records.slice(row, 1).to_pylist()[0])
        has_options[row] = bool(contexts[row].options)
    for row in picked.tolist():
        ctx = contexts[row]
        same_task = applies[prep.task_codes[applies] == prep.task_codes[row]]
        exemplars = [record_context(r) for r in records.take(pa.array(same_task[:8])).to_pylist()]
        for index, template in enumerate(expander.templates):
            if not prep.matrix[row, index]:
                continue
            shots = [e for e in exemplars if e.id != ctx.id] if template.few_shot else None
            try:
                result = render(template, ctx, seed, shots, template.few_shot)
            except RenderError as exc:
                typer.echo(
                    f"== {template.id} · record {ctx.id[:12]}: not rendered: {exc.reason}: {exc.detail}\n"
                )
                continue
            _show(
                template.id,
                template.type,
                ctx.id,
                result.prompt,
                result.completion,
                result.exemplar_ids,
            )
    typer.echo(f"{len(picked)} of {len(applies)} records the family applies to")


def _show(
    template_id: str,
    kind: str,
    record: str,
    prompt: str,
    completion: str,
    exemplars: list[str] | None,
) -> None:
    shots = f" · {len(exemplars)} shots" if exemplars else ""
    typer.echo(f"== {template_id} ({kind}{shots}) · record {record[:12]}")
    typer.echo("--- prompt")
    typer.echo(prompt)
    typer.echo("--- completion")
    typer.echo(completion)
    typer.echo("")


def _read(path: Path) -> pa.Table:
    import pyarrow as pa

    from curate.ingest import read_file
    from curate.ingest.files import expand_paths

    files, _ = expand_paths(str(path))
    tables = [read_file(f, source=f.name.split(".")[0]).records for f in files]
    if not tables:
        raise CurateError(f"no data files under {path}")
    return pa.concat_tables(tables)


def _short(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


__all__ = ["templates_app"]
