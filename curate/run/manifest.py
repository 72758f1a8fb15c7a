"""``manifest.json``, typed: what a run read, did, kept and dropped.

The engine builds a :class:`Manifest` and writes it; report, export, query, inspect and diff read
it back through :meth:`curate.run.layout.RunDir.manifest`. Sub-models allow extra keys, so a
manifest written by a newer curate (more keys) still opens; the keys below are a promise.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class InputFile(_Part):
    path: str
    format: str
    format_detected: bool = False
    size: int | None = None
    sha256: str | None = None
    rows_read: int = 0
    rows_rejected_at_ingest: int = 0


class SourceSummary(_Part):
    name: str
    path: str | list[str]
    format: str = "auto"
    license: str | None = None
    files: list[InputFile] = Field(default_factory=list)
    skipped_files: list[dict[str, str]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    rows_read: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0


class StageSummary(_Part):
    """One stage's line of the funnel."""

    index: int
    name: str
    key: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    rows_in: int
    rows_out: int
    dropped: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
    info: Any = None


class EngineSummary(_Part):
    name: str
    workers: int
    batch_size: int
    batches: int


class Outputs(_Part):
    records: int
    rejects: int
    data_files: list[str]
    reject_files: list[str]
    columns: list[str]


class RowCounts(_Part):
    """Input rows read; of them, kept (reached the output) and rejected; rows written."""

    read: int
    kept: int
    rejected: int
    output_records: int
    reject_rows: int


class Manifest(_Part):
    curate_version: str
    name: str
    seed: int
    run_key: str
    recipe: dict[str, Any]
    recipe_sha256: str
    recipe_path: str | None = None
    engine: EngineSummary
    environment: dict[str, Any] = Field(default_factory=dict)
    sources: list[SourceSummary]
    ingest: dict[str, Any] = Field(default_factory=dict)
    stages: list[StageSummary]
    outputs: Outputs
    rows: RowCounts
    timings: dict[str, float] = Field(default_factory=dict)
    started_at: str
    finished_at: str

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form: only the keys that were set (a stage without info has no ``info``)."""
        return self.model_dump(mode="json", exclude_unset=True)


__all__ = [
    "EngineSummary",
    "InputFile",
    "Manifest",
    "Outputs",
    "RowCounts",
    "SourceSummary",
    "StageSummary",
]
