"""``curate export RUN_DIR --to DIR``: a run's records as a Hugging Face dataset folder with a card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `curate run`.")],
    to: Annotated[Path, typer.Option("--to", help="The dataset folder to write.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="parquet (data/train-*.parquet) | jsonl (data/train-*.jsonl) | hf (save_to_disk).",
        ),
    ] = "parquet",
    trainer: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="TRAINER",
            help="Lay the folder out for a trainer: trl | llama-factory | axolotl | openai "
            "(sets the format and the chat layout; writes dataset_info.json / axolotl.yaml).",
        ),
    ] = None,
    chat: Annotated[
        bool,
        typer.Option("--chat", help="Only id, source and a `messages` column of {role, content}."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace DIR if it exists and is not empty.")
    ] = False,
    push: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="REPO",
            help="Then upload the folder to this Hub dataset repo (user/name); needs network and a token.",
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="With --push: create the repo private.")
    ] = False,
) -> None:
    """Export a run's records as a dataset folder with a dataset card (README.md), optionally pushed."""
    from curate.run.export import export_run, push_to_hub

    result = export_run(run_dir, to, format=fmt, chat=chat, overwrite=force, trainer=trainer)
    if result.up_to_date:
        typer.echo(f"{result.path} is up to date (same run, format and layout); nothing to do")
    license_text = result.license if isinstance(result.license, str) else ", ".join(result.license)
    typer.echo(
        f"{result.path}: {result.rows} rows as {result.format}"
        f"{' (chat)' if result.chat else ''}{f' for {trainer}' if trainer else ''} in "
        f"{len(result.files)} file(s) + {result.card.name}; license {license_text}"
    )
    if result.left_out:
        typer.echo(
            "left out (the format cannot hold them): "
            + ", ".join(f"{n} with {why}" for why, n in result.left_out.items())
        )
    if push:
        url = push_to_hub(result.path, push, private=private)
        typer.echo(f"pushed to {url}")
