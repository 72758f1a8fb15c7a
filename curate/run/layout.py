"""The run directory: its layout, its unfinished twin, opening it and publishing it.

``runs/<name>/`` holds ``data/part-*.parquet``, ``rejects/part-*.parquet``, ``stages/``,
``manifest.json``, ``report.html`` and ``README.md``. A reader never sees a half-written run:
until :func:`publish` renames it, the work lives in ``runs/.<name>.partial``. Every module that
reads or writes a run directory goes through :class:`RunDir`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from curate.errors import CurateError, RunDirError
from curate.run.manifest import Manifest
from curate.util.markup import md_text
from curate.util.storage import ObjectPath, RunPath, as_run_path, copy_tree

MANIFEST = "manifest.json"
RUN_CARD = "README.md"
REPORT = "report.html"
RUN_STATE = "run.json"


AnyRunPath = TypeVar("AnyRunPath", Path, ObjectPath)


def partial_path(path: AnyRunPath) -> AnyRunPath:
    """Where ``path`` is built until it is complete: ``.<name>.partial`` beside it."""
    return path.parent / f".{path.name}.partial"


class RunDir:
    """One run directory (finished or not) and the paths inside it."""

    def __init__(self, path: str | Path | ObjectPath) -> None:
        self.path: RunPath = as_run_path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def partial(self) -> RunPath:
        return self.path.parent / f".{self.path.name}.partial"

    @property
    def manifest_path(self) -> RunPath:
        return self.path / MANIFEST

    @property
    def data_dir(self) -> RunPath:
        return self.path / "data"

    @property
    def rejects_dir(self) -> RunPath:
        return self.path / "rejects"

    @property
    def stages_dir(self) -> RunPath:
        return self.path / "stages"

    @property
    def report_path(self) -> RunPath:
        return self.path / REPORT

    @property
    def card_path(self) -> RunPath:
        return self.path / RUN_CARD

    def is_complete(self) -> bool:
        return self.manifest_path.is_file() and self.data_dir.is_dir()

    def is_unfinished(self) -> bool:
        """An interrupted run's work folder (stages and the run key, no manifest yet)."""
        return self.stages_dir.is_dir() or (self.path / RUN_STATE).is_file()

    def is_curate_run(self) -> bool:
        """A finished run curate wrote: its manifest names a run key."""
        if not self.is_complete():
            return False
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(manifest, dict) and "run_key" in manifest

    def is_curate_partial(self) -> bool:
        """An unfinished run's work folder that curate made (it holds the run key)."""
        state = self.path / RUN_STATE
        if not state.is_file():
            return False
        try:
            return "run_key" in json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            return False

    def check_replaceable(self) -> None:
        """Refuse to replace anything but a run curate wrote (or an empty directory).

        ``--force`` replaces a previous run; it never deletes a user's folder, a file, the working
        directory or one of its parents.
        """
        path = self.path
        if isinstance(path, ObjectPath):
            if "/" not in path.key:
                raise RunDirError(
                    f"{path} is a whole bucket; a run directory is a prefix inside one "
                    f"(for example {path}/runs/NAME)"
                )
            if self.is_curate_run() or not path.files():
                return
            raise RunDirError(
                f"{path} holds objects and is not a curate run directory (no {MANIFEST} with a "
                "run key); --force replaces only runs curate wrote: choose another --out or "
                "remove them yourself"
            )
        if not path.exists() and not path.is_symlink():
            return
        resolved, cwd = path.resolve(), Path.cwd().resolve()
        if resolved == cwd or cwd.is_relative_to(resolved):
            raise RunDirError(
                f"{path} is the working directory or one of its parents; "
                "choose a run directory of its own (--out runs/NAME)"
            )
        if path.is_symlink() or not path.is_dir():
            raise RunDirError(
                f"{path} exists and is not a directory; curate replaces only run directories it "
                "wrote: choose another --out or remove it yourself"
            )
        if self.is_curate_run() or not any(path.iterdir()):
            return
        raise RunDirError(
            f"{path} exists and is not a curate run directory (no {MANIFEST} with a run key); "
            "--force replaces only runs curate wrote: choose another --out or remove it yourself"
        )

    @property
    def lock_path(self) -> Path:
        """``.<name>.lock`` beside a local run directory."""
        assert isinstance(self.path, Path)
        return self.path.parent / f".{self.path.name}.lock"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory's writer lock: a second run of the same output refuses at once.

        An advisory ``flock`` on ``.<name>.lock`` beside the run: the kernel releases it when the
        process ends, however it ends, so a killed run never leaves it stuck. The lock file is
        removed when the run finishes.

        Object storage has no such lock: one writer per run directory there is the user's to
        ensure (as with any prefix two jobs write).
        """
        if isinstance(self.path, ObjectPath):
            yield
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            yield
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.lock_path, "a+")  # noqa: SIM115 - held for the whole run
        except OSError as exc:
            raise RunDirError(f"cannot create {self.lock_path}: {exc.strerror or exc}") from None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RunDirError(
                    f"another curate process is writing {self.path} (it holds {self.lock_path}); "
                    "wait for it to finish, or write elsewhere with --out"
                ) from None
            try:
                yield
            finally:
                # Unlinked while still held: a process that opens the path later locks a new
                # file, and only after this run has published or failed.
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()

    def check_not_over_inputs(self, inputs: list[Path], input_dirs: list[Path]) -> None:
        """The run directory may not contain an input (``--force`` would delete it), nor lie
        inside a source directory (the next run would read its own output)."""
        if isinstance(self.path, ObjectPath):
            return  # inputs are local files: none lies under a bucket's prefix
        target = self.path.resolve()
        for path in inputs:
            if path.resolve().is_relative_to(target):
                raise RunDirError(
                    f"{self.path} contains the input {path}; a run directory is replaced as a "
                    "whole, so choose an output outside the inputs (--out runs/NAME)"
                )
        for directory in input_dirs:
            if target.is_relative_to(directory.resolve()):
                raise RunDirError(
                    f"{self.path} is inside the source directory {directory}; its files would be "
                    "read as input by the next run: choose an output elsewhere (--out runs/NAME)"
                )

    def load_manifest(self) -> dict[str, Any]:
        """``manifest.json`` as written (a dict); :meth:`manifest` is the typed view."""
        if not self.is_complete():
            raise RunDirError(
                f"{self.path} is not a complete curate run directory (no {MANIFEST} or data/)"
            )
        try:
            result: dict[str, Any] = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"cannot read {self.manifest_path}: {exc}") from None
        return result

    def manifest(self) -> Manifest:
        """The typed manifest of a complete run."""
        return parse_manifest(self.load_manifest(), self.manifest_path)

    def open(self, error: type[CurateError] = RunDirError) -> tuple[Manifest, list[RunPath]]:
        """The manifest and data files of a complete run, or ``error`` saying what is wrong."""
        run_dir, partial = self.path, self.partial
        if isinstance(run_dir, Path) and run_dir.as_posix().startswith("s3:/"):
            # A command-line path that was an s3:// URI (a local path type drops one slash).
            raise error(
                f"{run_dir.as_posix().replace('s3:/', 's3://', 1)} is on object storage; this "
                "command reads a local run directory: copy the run down first (for example "
                "`aws s3 sync s3://BUCKET/runs/NAME runs/NAME`)"
            )
        if run_dir.name.startswith(".") and run_dir.name.endswith(".partial"):
            raise error(
                f"{run_dir} is an unfinished run; run its recipe again to finish it, then use "
                f"the finished run directory"
            )
        if not run_dir.exists():
            if partial.exists():
                raise error(
                    f"{run_dir} is not finished yet ({partial} holds an interrupted run); run the "
                    "same recipe again to finish it"
                )
            raise error(f"{run_dir} does not exist; pass a run directory written by `curate run`")
        if not run_dir.is_dir():
            raise error(f"{run_dir} is a file; pass a run directory written by `curate run`")
        if not self.manifest_path.is_file():
            if self.is_unfinished():
                raise error(
                    f"{run_dir} is an incomplete run (no {MANIFEST}); run its recipe again to finish it"
                )
            raise error(
                f"{run_dir} is not a curate run directory (no {MANIFEST}); pass the directory "
                "`curate run` wrote (the recipe's `output`, e.g. runs/demo)"
            )
        try:
            raw = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            manifest = parse_manifest(raw, self.manifest_path)
        except (OSError, ValueError, CurateError) as exc:
            raise error(f"cannot read {self.manifest_path}: {exc}") from None
        files = [run_dir / name for name in manifest.outputs.data_files]
        missing = [str(f) for f in files if not f.is_file()]
        if missing or not files:
            raise error(
                f"{run_dir} is incomplete: data files missing ({', '.join(missing) or 'data/*.parquet'}); "
                "run its recipe again with --force to rebuild it"
            )
        return manifest, files


def parse_manifest(raw: Any, where: RunPath) -> Manifest:
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise RunDirError(
            f"{where} is not a curate manifest ({at}: {first['msg']}); was the run written by "
            "curate? Run its recipe again to rebuild it"
        ) from None


def refuse_foreign_partial(
    partial: RunPath, ours: bool, what: str, error: type[CurateError] = RunDirError
) -> None:
    """A ``.partial`` folder curate did not make is never deleted: an empty one is removed, anything
    else (a folder with content, a file, a link) is an error saying it is not ``what``."""
    if ours or (not partial.exists() and not partial.is_symlink()):
        return
    if isinstance(partial, ObjectPath):
        if not partial.files():
            return
        raise error(f"{partial} exists and is not {what}")
    if partial.is_dir() and not partial.is_symlink() and not any(partial.iterdir()):
        partial.rmdir()
        return
    raise error(f"{partial} exists and is not {what}")


def publish(partial: RunPath, final: RunPath) -> None:
    """Replace ``final`` with the finished ``partial``: two renames, the old folder is removed
    only once the new one is in place.

    On object storage there is no rename of a prefix: the old run's ``manifest.json`` is deleted
    first (from then on readers see no complete run there), then its other objects; the new run's
    objects are copied in, ``manifest.json`` last (the run is complete once it exists), and the
    partial prefix is removed. A publish cut off midway leaves no manifest, so readers refuse the
    half-copied run, and the partial prefix is still whole: running the recipe again publishes it.
    """
    if isinstance(final, ObjectPath):
        if not isinstance(partial, ObjectPath):
            raise RunDirError(f"cannot publish the local {partial} as {final}")
        (final / MANIFEST).unlink(missing_ok=True)
        final.remove_tree()
        copy_tree(partial, final, last=MANIFEST)
        partial.remove_tree()
        return
    assert isinstance(partial, Path)
    trash = None
    try:
        if final.exists():
            trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
        os.rename(partial, final)
    except OSError as exc:
        raise RunDirError(f"cannot publish {final}: {exc.strerror or exc}") from None
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def run_card(manifest: Manifest) -> str:
    """A run directory's README.md: its YAML ``configs`` make ``datasets.load_dataset(RUN_DIR)``
    load the records (and ``load_dataset(RUN_DIR, "rejects")`` the rejects) instead of globbing
    every parquet file below it into one split."""
    import yaml

    configs = [
        {
            "config_name": name,
            **({"default": True} if name == "default" else {}),
            "data_files": [{"split": "train", "path": f"{folder}/*.parquet"}],
        }
        for name, folder in (("default", "data"), ("rejects", "rejects"))
    ]
    front = yaml.safe_dump({"configs": configs, "tags": ["curate"]}, sort_keys=False)
    rows = manifest.rows
    return (
        f"---\n{front}---\n\n# {md_text(manifest.name)}\n\n"
        f"A curate run: {rows.output_records} records in `data/`, "
        f"{rows.reject_rows} rejects (with stage and reason) in `rejects/`, from "
        f"{rows.read} input rows. `report.html` shows the funnel, sources, languages, tasks, "
        "lengths, duplicates and reject samples; `manifest.json` has the resolved recipe and every count.\n\n"
        "```python\nimport datasets\n\n"
        'records = datasets.load_dataset("RUN_DIR", split="train")\n'
        'rejects = datasets.load_dataset("RUN_DIR", "rejects", split="train")\n```\n'
    )
