"""``datasets`` datasets: saved with ``save_to_disk`` (a directory) or passed in Python.

Rows are mapped by the family their columns match (alpaca, dolly, sharegpt, ...), so a dataset
on disk is read exactly like the same rows in a JSON file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.errors import InputFileError
from curate.ingest.format import Format


def load_rows(path: Path) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """(split name, rows) for a Dataset or DatasetDict saved on disk, splits in sorted order."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise InputFileError("reading a saved dataset needs `pip install datasets`") from exc
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputFileError(f"{path}: not a dataset saved with `save_to_disk` ({exc})") from exc
    return dataset_rows(loaded)


def dataset_rows(dataset: Any) -> list[tuple[str | None, list[dict[str, Any]]]]:
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        return [(split, dataset[split].to_list()) for split in sorted(dataset)]
    if isinstance(dataset, datasets.Dataset):
        return [(None, dataset.to_list())]
    raise InputFileError(
        f"expected a datasets.Dataset or DatasetDict, got {type(dataset).__name__}"
    )


class HFDisk(Format):
    name = "hf_disk"
    kind = "hf"
    detect_order = 92

    def load_rows(self, path: Path) -> list[tuple[str | None, list[dict[str, Any]]]]:
        return load_rows(path)
