"""Export a run's ``data/`` as a Hugging Face dataset folder with a generated dataset card.

Three layouts, each with a ``README.md`` card (YAML front matter the Hub and ``load_dataset`` read)::

    parquet  DIR/data/train-00000-of-0000N.parquet   the Hub's convention, one shard per run file
    jsonl    DIR/data/train-00000-of-0000N.jsonl     one JSON object per line
    hf       DIR/data-00000-of-0000N.arrow, dataset_info.json, state.json
                                                     ``Dataset.save_to_disk``: ``load_from_disk(DIR)``

``chat=True`` writes three columns instead of the whole record: ``id``, ``source`` and ``messages``
(see :func:`chat_messages`). The same run exported twice gives byte-identical files: the card has no
timestamps and every writer runs with fixed options. The folder is built in ``.DIR.partial`` beside
``DIR`` and renamed when complete; an existing non-empty ``DIR`` is replaced only with
``overwrite=True``.

    from curate.run.export import export_run
    export_run("runs/demo", "exports/demo", format="parquet")
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from curate.errors import ExportError, RunDirError
from curate.run.export.card import (
    Licenses,
    card_metadata,
    compile_licenses,
    funnel_rows,
    hub_license,
    ingest_reasons,
    render_card,
    size_category,
)
from curate.run.export.hub import push_to_hub
from curate.run.export.trainers import TRAINERS, extra_files, how_to_load, target, write_openai
from curate.run.export.writers import (
    CHAT_SCHEMA,
    DataStats,
    chat_messages,
    quiet_datasets,
    write_hf,
    write_shards,
)
from curate.run.layout import RunDir, partial_path, publish, refuse_foreign_partial
from curate.run.manifest import Manifest
from curate.util.storage import is_object_uri

ExportFormat = Literal["parquet", "jsonl", "hf"]
FORMATS: tuple[str, ...] = ("parquet", "jsonl", "hf")

CARD = "README.md"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote."""

    path: Path
    format: str
    chat: bool
    rows: int
    files: tuple[str, ...]
    """Data files, relative to ``path``."""
    license: str | list[str]
    """The card's ``license:`` (one Hub id, or a list when the sources differ)."""
    up_to_date: bool = False
    """True when the folder already held this export (nothing was written)."""
    trainer: str | None = None
    """The trainer the folder targets (``--for``), if any."""
    left_out: dict[str, int] | None = None
    """Records the trainer's format cannot hold, by why (``--for openai``)."""

    @property
    def card(self) -> Path:
        return self.path / CARD


def export_run(
    run_dir: str | Path,
    to: str | Path,
    format: str = "parquet",
    chat: bool = False,
    overwrite: bool = False,
    trainer: str | None = None,
) -> ExportResult:
    """Write the run's records to ``to`` as a dataset folder (``format``: parquet | jsonl | hf),
    or laid out for a trainer (``trainer``: trl | llama-factory | axolotl | openai, which sets the
    format and the chat layout; see :mod:`curate.run.export.trainers`)."""
    if trainer is not None:
        layout = target(trainer)
        format, chat = layout.format, layout.chat
    if format not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    run_dir, to = Path(run_dir), Path(to)
    manifest, data_files = open_run(run_dir)
    if sum(pq.ParquetFile(f).metadata.num_rows for f in data_files) == 0:
        # `datasets` cannot load a split without rows ("corresponds to no data"): say so up front.
        raise ExportError(
            f"{run_dir} has no records (every row was rejected; `curate stats {run_dir}` shows "
            "where): nothing to export"
        )
    previous = _check_target(run_dir, to, overwrite)
    if previous is not None and not overwrite:
        same = (
            previous.get("run_key"),
            previous.get("format"),
            previous.get("chat"),
            previous.get("trainer"),
        ) == (manifest.run_key, format, chat, trainer)
        if not same or not all((to / name).is_file() for name in previous.get("files", [])):
            raise RunDirError(
                f"{to} holds another curate export (another run, format or layout, or files are "
                "missing); pass --force to replace it"
            )
        return ExportResult(
            path=to,
            format=format,
            chat=chat,
            rows=int(previous.get("rows", 0)),
            files=tuple(previous["files"]),
            license=previous.get("license", "unknown"),
            up_to_date=True,
            trainer=trainer,
            left_out=previous.get("left_out"),
        )
    partial = partial_path(to)
    ours = partial.is_dir() and not partial.is_symlink() and (partial / PARTIAL_MARKER).is_file()
    refuse_foreign_partial(
        partial,
        ours,
        "an unfinished curate export; remove it yourself or export elsewhere",
        ExportError,
    )
    if ours:
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True)
        (partial / PARTIAL_MARKER).write_text("an unfinished curate export\n")
    except OSError as exc:
        raise ExportError(f"cannot create {partial}: {exc.strerror or exc}") from None
    try:
        left_out: dict[str, int] = {}
        with quiet_datasets():
            if trainer == "openai":
                files, stats, skipped = write_openai(data_files, partial)
                left_out = dict(sorted(skipped.items()))
            elif format == "hf":
                files, stats = write_hf(data_files, partial, chat)
            else:
                files, stats = write_shards(data_files, partial, format, chat)
        if trainer is not None:
            for name, text in extra_files(trainer, manifest.name).items():
                (partial / name).write_text(text, encoding="utf-8")
        licenses = compile_licenses(manifest, stats.by_source)
        card = render_card(
            manifest,
            stats,
            format=format,
            chat=chat,
            licenses=licenses,
            ingest_reasons=ingest_reasons(run_dir, manifest),
        )
        provenance: dict[str, Any] = {
            "run_key": manifest.run_key,
            "format": format,
            "chat": chat,
            "files": list(files),
            "rows": stats.rows,
            "license": licenses.card_value,
        }
        if trainer is not None:
            card += "\n" + how_to_load(trainer, manifest.name)
            provenance["trainer"] = trainer
            if left_out:
                card += (
                    "\nLeft out of this export (the format cannot hold them as they are): "
                    + ", ".join(f"{n} with {why}" for why, n in left_out.items())
                    + ".\n"
                )
                provenance["left_out"] = left_out
        card += export_marker(provenance)
        (partial / CARD).write_text(card, encoding="utf-8")
        (partial / PARTIAL_MARKER).unlink()
        publish(partial, to)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        # A full disk, a read-only folder, a vanished run file: say what and where.
        raise ExportError(
            f"cannot write the export to {to}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if getattr(exc, "filename", None) else "")
            + "; nothing was published"
        ) from None
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return ExportResult(
        path=to,
        format=format,
        chat=chat,
        rows=stats.rows,
        files=tuple(files),
        license=licenses.card_value,
        trainer=trainer,
        left_out=left_out or None,
    )


def open_run(run_dir: Path) -> tuple[Manifest, list[Path]]:
    """The manifest and data files of a complete run, or an ExportError that says what is wrong."""
    if is_object_uri(run_dir):
        raise ExportError(
            f"{run_dir} is on object storage; export reads a local run directory: copy the run "
            "down first (for example `aws s3 sync`), then export the local copy"
        )
    manifest, files = RunDir(run_dir).open(error=ExportError)
    return manifest, [f for f in files if isinstance(f, Path)]


# Written into an export folder while it is being built; a `.partial` without it is not ours.
PARTIAL_MARKER = ".curate-export-partial"
_MARKER = re.compile(r"<!-- curate-export (\{.*\}) -->\s*\Z", re.S)


def export_marker(provenance: dict[str, Any]) -> str:
    """The card's last line: which run, format and files this folder holds (an HTML comment, so
    Markdown renders nothing). A re-export of the same run is a no-op; --force replaces only a
    folder that carries it."""
    return f"\n<!-- curate-export {json.dumps(provenance, sort_keys=True)} -->\n"


def read_export_marker(folder: Path) -> dict[str, Any] | None:
    try:
        match = _MARKER.search((folder / CARD).read_text(encoding="utf-8"))
        found = json.loads(match.group(1)) if match else None
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _check_target(run_dir: Path, to: Path, overwrite: bool) -> dict[str, Any] | None:
    """Refuse targets curate must not write; the previous export's provenance when ``to`` holds one."""
    run, target = run_dir.resolve(), to.resolve()
    if target == run or run.is_relative_to(target) or target.is_relative_to(run):
        raise ExportError(
            f"--to {to} overlaps the run directory {run_dir}; export to a directory outside the run"
        )
    if to.exists() and not to.is_dir():
        raise RunDirError(f"{to} exists and is a file; pass a directory for --to")
    if not to.is_dir() or not any(to.iterdir()):
        return None
    previous = read_export_marker(to)
    if previous is None:
        raise RunDirError(
            f"{to} exists, is not empty and is not a curate export; --force replaces only "
            "exports curate wrote: choose another --to or remove it yourself"
        )
    return previous


__all__ = [
    "CHAT_SCHEMA",
    "FORMATS",
    "TRAINERS",
    "DataStats",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "Licenses",
    "card_metadata",
    "chat_messages",
    "compile_licenses",
    "export_run",
    "funnel_rows",
    "hub_license",
    "ingest_reasons",
    "open_run",
    "push_to_hub",
    "render_card",
    "size_category",
]
