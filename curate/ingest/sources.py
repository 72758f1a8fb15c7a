"""Recipe sources: their configuration (``SourceConfig``), their files, and reading them.

``read_source`` reads every file of one source into Arrow batches plus ingest rejects; it knows
nothing of stages, engines or the run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from curate.errors import InputFileError
from curate.ingest import FORMAT_NAMES, FileResult, SkippedFile, read_dataset
from curate.ingest.files import expand_paths, file_fingerprint
from curate.ingest.parse import MAX_RECORD_BYTES, Limits
from curate.ingest.read import FileReader
from curate.util.storage import input_name

Log = Callable[[str], None]
Sink = Callable[[pa.Table], None]


def _quiet(_: str) -> None:
    return None


class SourceConfig(BaseModel):
    """One input: a file, glob, directory or saved ``datasets`` dataset."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, description="Source name, written to each record's source column; unique."
    )
    path: str | list[str] = Field(
        description="File, glob, directory or saved datasets dataset, or a list of them; "
        "relative paths try the working directory, then the recipe's folder."
    )
    format: str = Field(
        "auto",
        description="Reader format family (alpaca, dolly, sharegpt, ...); auto detects it per file.",
    )
    license: str | None = Field(
        None, description="License written to every record's license column; none leaves it null."
    )
    fields: dict[str, str] = Field(
        default_factory=dict, description="schema field <- source column"
    )
    lenient: bool = Field(
        False,
        description="Keep what damaged input still holds, reject the rest: the records of a "
        "broken JSON array (read whole, up to 512 MiB), the rows before the cut of a truncated "
        ".gz / .zst (plus a truncated_input reject).",
    )
    max_record_bytes: int = Field(
        MAX_RECORD_BYTES,
        gt=0,
        description="A row (line, or JSON array element) longer than this is rejected as "
        "record_too_large without being parsed.",
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMAT_NAMES:
            raise ValueError(f"unknown format {value!r}; expected one of {', '.join(FORMAT_NAMES)}")
        return value

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {
            "instruction",
            "input",
            "output",
            "messages",
            "category",
            "task",
            "task_source",
            "rationale",
        }
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"cannot map {unknown}: mappable schema fields are {sorted(allowed)}")
        return value

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)


@dataclass
class SourceData:
    """What one recipe source produced at ingest."""

    config: SourceConfig
    batches: list[pa.Table] = field(default_factory=list)
    rejects: list[pa.Table] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(int(f["rows_read"]) for f in self.files)

    def add(self, outcome: FileOutcome) -> None:
        """One file's entry (or why it was skipped) and its warnings."""
        if outcome.skipped is not None:
            self.skipped.append(outcome.skipped)
            return
        if outcome.entry is not None:
            self.files.append(outcome.entry)
        self.warnings.extend(outcome.warnings)


def _display_path(path: Path) -> str:
    remote = input_name(path)
    if remote is not None:
        return remote
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def source_files(
    config: SourceConfig, base_dir: Path | None = None
) -> tuple[list[Path], list[Path]]:
    """A source's (data files, skipped files). Relative paths resolve against the working
    directory first, then the recipe's folder (``base_dir``)."""
    files: list[Path] = []
    skipped: list[Path] = []
    for spec in config.paths:
        try:
            found, ignored = expand_paths(spec)
        except InputFileError:
            if base_dir is None:
                raise
            found, ignored = expand_paths(spec, base=base_dir)
        files.extend(found)
        skipped.extend(ignored)
    return files, skipped


def source_plan(
    config: SourceConfig, base_dir: Path | None = None
) -> tuple[list[tuple[Path, str]], list[dict[str, str]]]:
    """A source's data files with the names records and manifests give them, and the files it
    skips (by extension). No data file at all raises."""
    files, skipped = source_files(config, base_dir)
    if not files:
        raise InputFileError(
            f"source {config.name!r}: no data files under {', '.join(config.paths)}"
        )
    skips = [
        {"path": _display_path(path), "reason": "not a data file (by extension)"}
        for path in skipped
    ]
    return [(path, _display_path(path)) for path in files], skips


@dataclass
class FileOutcome:
    """One file of a source, read (its tables went to the sinks): its manifest entry, or why it
    was skipped, its warnings and the line to log."""

    entry: dict[str, Any] | None
    skipped: dict[str, str] | None
    warnings: list[str]
    message: str


def read_source_file(
    config: SourceConfig,
    path: Path,
    display: str,
    *,
    strict: bool,
    batch_size: int,
    with_ids: bool,
    on_records: Sink,
    on_rejects: Sink,
) -> FileOutcome:
    """Read one file of a source (from :func:`source_plan`) into ``batch_size``-row record
    tables (the last one shorter) and ingest rejects, handed to the sinks as they are read."""
    reader = FileReader(
        path,
        source=config.name,
        display=display,
        format=config.format,
        license=config.license,
        fields=config.fields,
        strict=strict,
        lenient_json=config.lenient,
        with_ids=with_ids,
        limits=Limits(batch_rows=batch_size, max_record_bytes=config.max_record_bytes),
    )
    pending = _Rebatcher(batch_size, on_records)
    kept = rejected = 0
    try:
        for records, rejects in reader.chunks():
            kept += records.num_rows
            rejected += rejects.num_rows
            pending.add(records)
            if rejects.num_rows:
                on_rejects(rejects)
    except SkippedFile as skip:
        return FileOutcome(
            None, {"path": display, "reason": str(skip)}, [], f"skip {display}: {skip}"
        )
    pending.flush()
    entry: dict[str, Any] = {
        "path": display,
        "format": reader.format,
        "format_detected": reader.detected,
    }
    if reader.confidence is not None:
        entry["format_confidence"] = reader.confidence
        entry["format_rows_sampled"] = reader.sampled
    entry.update(reader.fingerprint())
    entry["rows_read"] = reader.rows_read
    entry["rows_rejected_at_ingest"] = rejected
    how = "detected" if reader.detected else "given"
    message = f"read {display}: {reader.format} ({how}), {kept} rows, {rejected} rejected"
    return FileOutcome(entry, None, list(reader.warnings), message)


def read_source(
    config: SourceConfig,
    *,
    base_dir: Path | None = None,
    strict: bool = False,
    batch_size: int = 100_000,
    with_ids: bool = True,
    log: Log = _quiet,
    on_records: Sink | None = None,
    on_rejects: Sink | None = None,
) -> SourceData:
    """Read every file of a source. Unknown/missing files raise; bad rows become rejects.

    With ``on_records`` / ``on_rejects``, each table is handed over as soon as it is read and not
    kept: memory stays bounded by ``batch_size`` rows whatever the files' size. Without them the
    tables are collected in the returned ``SourceData``. Record tables hold exactly
    ``batch_size`` rows except the last of each file.
    """
    data = SourceData(config)
    files, data.skipped = source_plan(config, base_dir)
    for path, display in files:
        outcome = read_source_file(
            config,
            path,
            display,
            strict=strict,
            batch_size=batch_size,
            with_ids=with_ids,
            on_records=on_records or data.batches.append,
            on_rejects=on_rejects or data.rejects.append,
        )
        data.add(outcome)
        log(outcome.message)
    return data


class _Rebatcher:
    """Record tables cut into ``size``-row tables (the ingest shards), whatever the sizes read."""

    def __init__(self, size: int, emit: Sink) -> None:
        self.size = size
        self.emit = emit
        self.parts: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.parts.append(table)
        self.rows += table.num_rows
        if self.rows >= self.size:
            whole = pa.concat_tables(self.parts)
            cut = (whole.num_rows // self.size) * self.size
            for start in range(0, cut, self.size):
                self.emit(whole.slice(start, self.size))
            rest = whole.slice(cut)
            self.parts = [rest] if rest.num_rows else []
            self.rows = rest.num_rows

    def flush(self) -> None:
        if self.rows:
            self.emit(pa.concat_tables(self.parts))
        self.parts, self.rows = [], 0


def _collect(data: SourceData, result: FileResult, path: Path | None, batch_size: int) -> None:
    fingerprint = file_fingerprint(path) if path is not None else {}
    data.files.append(
        {
            "path": result.path,
            "format": result.format,
            "format_detected": result.detected,
            **fingerprint,
            "rows_read": result.rows_read,
            "rows_rejected_at_ingest": result.rejects.num_rows,
        }
    )
    data.warnings.extend(result.warnings)
    records = result.records
    for start in range(0, records.num_rows, batch_size):
        data.batches.append(records.slice(start, batch_size))
    if result.rejects.num_rows:
        data.rejects.append(result.rejects)


def read_python_dataset(
    dataset: Any, name: str, license: str | None = None, batch_size: int = 100_000
) -> SourceData:
    """A ``datasets.Dataset`` passed in Python, as a source."""
    data = SourceData(
        SourceConfig(name=name, path=f"<datasets:{name}>", format="hf_disk", license=license)
    )
    _collect(data, read_dataset(dataset, source=name, license=license), None, batch_size)
    return data


__all__ = ["SourceConfig", "SourceData", "read_python_dataset", "read_source", "source_files"]
