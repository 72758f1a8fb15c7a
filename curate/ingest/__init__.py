"""Ingest: input formats (one discovered class each), parsing, detection and the file driver.

``read_file(path, ...)`` reads one file into records + rejects; :mod:`curate.ingest.sources` reads
a recipe's sources. Adding a format is one module in ``curate/ingest/formats/``.
"""

from curate.ingest.read import (
    FAMILIES,
    FORMAT_NAMES,
    FileResult,
    SkippedFile,
    detect_family,
    read_dataset,
    read_file,
)

__all__ = [
    "FAMILIES",
    "FORMAT_NAMES",
    "FileResult",
    "SkippedFile",
    "detect_family",
    "read_dataset",
    "read_file",
]
