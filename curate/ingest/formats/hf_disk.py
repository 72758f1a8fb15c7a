"""``datasets`` datasets: saved with ``save_to_disk`` (a directory) or passed in Python.

Rows are mapped by the family their columns match (alpaca, dolly, sharegpt, ...), so a dataset
on disk is read exactly like the same rows in a JSON file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.errors import InputFileError
from curate.ingest.format import Format

RowGroups = list[tuple[str | None, Iterator[list[dict[str, Any]]]]]


def load_rows(path: Path, batch_rows: int = 100_000) -> RowGroups:
    """(split name, row batches) for a Dataset or DatasetDict saved on disk, splits in sorted
    order. The dataset stays memory-mapped: rows are materialized one batch at a time."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise InputFileError("reading a saved dataset needs `pip install datasets`") from exc
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputFileError(f"{path}: not a dataset saved with `save_to_disk` ({exc})") from exc
    return dataset_rows(loaded, batch_rows)


def dataset_rows(dataset: Any, batch_rows: int = 100_000) -> RowGroups:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        return [(split, _batches(dataset[split], batch_rows)) for split in sorted(dataset)]
    if isinstance(dataset, datasets.Dataset):
        return [(None, _batches(dataset, batch_rows))]
    raise InputFileError(
        f"expected a datasets.Dataset or DatasetDict, got {type(dataset).__name__}"
    )


def _batches(dataset: Any, batch_rows: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(dataset), batch_rows):
        yield dataset.select(range(start, min(start + batch_rows, len(dataset)))).to_list()


class HFDisk(Format):
    name = "hf_disk"
    kind = "hf"
    detect_order = 92

    def load_rows(self, path: Path, batch_rows: int = 100_000) -> RowGroups:
        return load_rows(path, batch_rows)
