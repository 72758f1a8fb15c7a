"""Run directories on object storage: a small pathlib-like path over pyarrow's S3 filesystem.

A run directory (and its unfinished twin) may be ``s3://bucket/prefix/name``. The run loop, the
checkpoints and both engines handle it through :class:`ObjectPath`, which answers the handful of
``pathlib.Path`` calls they make (``/``, ``name``, ``parent``, ``exists``, ``is_file``,
``read_text``, ``glob``, ...), and through the helpers below where a local path and an object
differ (atomic writes, parquet, removing and copying a tree).

What is atomic on object storage: a single object. A PUT (and a multipart upload, completed
only when the writer closes) makes the object appear whole or not at all, so a checkpoint part or
a stats file is as safe as a renamed local file. A folder is not: there is no rename of a prefix.
That is why a run is published by copying its objects and writing ``manifest.json`` last (see
:func:`curate.run.layout.publish`).

The S3 endpoint and credentials come from the usual AWS variables: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` for an S3-protocol server that is not AWS (MinIO, Ceph, moto).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import urlsplit

from curate.errors import RunDirError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

OBJECT_SCHEMES = ("s3",)


def is_object_uri(value: object) -> bool:
    """``s3://...``: a location on object storage rather than a local path."""
    return (
        isinstance(value, (str, ObjectPath))
        and str(value).split("://", 1)[0] in OBJECT_SCHEMES
        and "://" in str(value)
    )


@functools.lru_cache(maxsize=8)
def _s3_filesystem(
    endpoint: str | None, region: str | None, access_key_id: str | None
) -> pafs.S3FileSystem:
    # access_key_id only keys the cache: pyarrow reads the credentials from the environment.
    import pyarrow.fs as pafs

    kwargs: dict[str, Any] = {}
    if endpoint:
        parsed = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def s3_filesystem() -> pafs.S3FileSystem:
    """The S3 filesystem the environment describes (endpoint, region, credentials)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return _s3_filesystem(endpoint, region, os.environ.get("AWS_ACCESS_KEY_ID"))


class ObjectPath:
    """``s3://bucket/key``: the part of ``pathlib.Path`` a run directory needs, on object storage.

    Object stores have no folders: a "directory" exists while an object lies under its prefix,
    ``mkdir`` does nothing, and listing skips the empty markers some clients leave behind.
    """

    def __init__(self, uri: str | ObjectPath, fs: pafs.FileSystem | None = None) -> None:
        text = str(uri)
        scheme, _, rest = text.partition("://")
        if scheme not in OBJECT_SCHEMES or not rest.strip("/"):
            raise RunDirError(f"{text!r} is not an object-storage location (s3://bucket/prefix)")
        self.scheme = scheme
        self.key = posixpath.normpath(rest.strip("/"))
        self._fs = fs if fs is not None else getattr(uri, "_fs", None)

    # ------------------------------------------------------------------ path algebra
    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            self._fs = s3_filesystem()
        return self._fs

    def __str__(self) -> str:
        return f"{self.scheme}://{self.key}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: ObjectPath) -> bool:
        return str(self) < str(other)

    def __truediv__(self, other: str) -> ObjectPath:
        return ObjectPath(f"{self}/{other}", self._fs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ObjectPath, (str(self), self._fs))

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def bucket(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def parent(self) -> ObjectPath:
        parent = posixpath.dirname(self.key)
        return ObjectPath(f"{self.scheme}://{parent or self.key}", self._fs)

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def as_posix(self) -> str:
        return str(self)

    def relative_to(self, other: ObjectPath) -> str:
        prefix = other.key + "/"
        if not self.key.startswith(prefix):
            raise ValueError(f"{self} is not under {other}")
        return self.key[len(prefix) :]

    # ------------------------------------------------------------------ queries
    def _type(self) -> Any:
        try:
            return self.fs.get_file_info(self.key).type
        except OSError as exc:
            raise storage_error(self, exc, "reach") from None

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self._type() != pafs.FileType.NotFound)

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self._type() == pafs.FileType.File)

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self._type() == pafs.FileType.Directory)

    def is_symlink(self) -> bool:
        return False

    def files(self) -> list[ObjectPath]:
        """Every object under this prefix, sorted (directory markers left out)."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.key, recursive=True, allow_not_found=True)
        try:
            infos = self.fs.get_file_info(selector)
        except OSError as exc:
            raise storage_error(self, exc, "list") from None
        return sorted(
            ObjectPath(f"{self.scheme}://{info.path}", self._fs)
            for info in infos
            if info.type == pafs.FileType.File
        )

    def iterdir(self) -> Iterator[ObjectPath]:
        children = {path.relative_to(self).split("/", 1)[0] for path in self.files()}
        for child in sorted(children):
            yield self / child

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Objects directly under this prefix whose name matches ``pattern``."""
        for path in self.files():
            if "/" not in path.relative_to(self) and fnmatch.fnmatchcase(path.name, pattern):
                yield path

    def rglob(self, pattern: str) -> Iterator[ObjectPath]:
        for path in self.files():
            if fnmatch.fnmatchcase(path.name, pattern):
                yield path

    # ------------------------------------------------------------------ reads and writes
    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object is written under it."""

    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.key) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise storage_error(self, exc, "read") from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, payload: bytes) -> None:
        """One PUT: the object appears whole when the stream closes, or not at all."""
        try:
            with self.fs.open_output_stream(self.key) as stream:
                stream.write(payload)
        except OSError as exc:
            raise storage_error(self, exc, "write") from None

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except OSError as exc:
            raise storage_error(self, exc, "delete") from None

    def remove_tree(self) -> None:
        """Delete every object under this prefix (never a bucket itself)."""
        if "/" not in self.key:
            raise RunDirError(f"refusing to empty the whole bucket {self}; name a prefix inside it")
        try:
            self.fs.delete_dir_contents(self.key, missing_dir_ok=True)
            if self.exists():
                self.fs.delete_dir(self.key)
        except OSError as exc:
            raise storage_error(self, exc, "delete") from None


RunPath = Union[Path, ObjectPath]  # noqa: UP007 - a runtime alias (isinstance, 3.10)


def as_run_path(value: str | os.PathLike[str] | ObjectPath) -> RunPath:
    """A local path, or an :class:`ObjectPath` for ``s3://...``."""
    if isinstance(value, ObjectPath):
        return value
    if is_object_uri(value):
        return ObjectPath(str(value))
    return Path(value)


def storage_error(path: object, exc: OSError, verb: str) -> RunDirError:
    return RunDirError(
        f"cannot {verb} {path}: {exc}; check the endpoint and credentials "
        "(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)"
    )


def arrow_target(path: RunPath) -> tuple[str, pafs.FileSystem | None]:
    """What pyarrow's readers and writers take: a path string and its filesystem."""
    if isinstance(path, ObjectPath):
        return path.key, path.fs
    return str(path), None


def read_parquet(path: RunPath) -> pa.Table:
    import pyarrow.parquet as pq

    where, fs = arrow_target(path)
    return pq.read_table(where, filesystem=fs)


def parquet_file(path: RunPath) -> Any:
    """A ``pyarrow.parquet.ParquetFile`` (schema, metadata, row groups) on either storage."""
    import pyarrow.parquet as pq

    if isinstance(path, ObjectPath):
        return pq.ParquetFile(path.fs.open_input_file(path.key))
    return pq.ParquetFile(path)


def remove_tree(path: RunPath) -> None:
    if isinstance(path, ObjectPath):
        path.remove_tree()
    else:
        shutil.rmtree(path)


def copy_tree(source: RunPath, target: ObjectPath, last: str | None = None) -> None:
    """Copy every file under ``source`` (a local folder or a prefix) to ``target``; the file named
    ``last`` at its top, if any, is copied after all the others (it is what readers wait for)."""
    if isinstance(source, ObjectPath):
        names = [path.relative_to(source) for path in source.files()]
    else:
        names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    ordered = [n for n in names if n != last] + [n for n in names if n == last]
    for name in ordered:
        destination = target / name
        try:
            if isinstance(source, ObjectPath):
                # Server side: the bytes do not come through this machine.
                target.fs.copy_file((source / name).key, destination.key)
            else:
                with (
                    open(source / name, "rb") as handle,
                    target.fs.open_output_stream(destination.key) as stream,
                ):
                    shutil.copyfileobj(handle, stream, 8 << 20)
        except OSError as exc:
            raise storage_error(destination, exc, "write") from None


def work_root() -> Path:
    """Local disk for runs and inputs on object storage: ``$CURATE_WORK_DIR``, default
    ``~/.cache/curate/work``."""
    return Path(os.environ.get("CURATE_WORK_DIR") or Path.home() / ".cache" / "curate" / "work")


def _inputs_root() -> Path:
    return work_root() / "inputs"


def object_inputs(spec: str) -> list[ObjectPath]:
    """The objects an input URI names: one object, every object under a prefix, or the objects
    whose key matches a glob (``s3://bucket/data/*.jsonl.gz``), in sorted order."""
    if any(ch in spec for ch in "*?["):
        cut = min(spec.index(ch) for ch in "*?[" if ch in spec)
        prefix = ObjectPath(spec[: spec.rfind("/", 0, cut)])
        pattern = ObjectPath(spec).key
        return [p for p in prefix.files() if fnmatch.fnmatchcase(p.key, pattern)]
    path = ObjectPath(spec)
    return [path] if path.is_file() else path.files()


def local_copy(path: ObjectPath) -> Path:
    """An input object mirrored on local disk (``<work>/inputs/<bucket>/<key>``), downloaded
    again only when its size or modification time changed. The copy carries the object's
    modification time, so a run's input fingerprint does not change with the download."""
    import pyarrow.fs as pafs

    try:
        info = path.fs.get_file_info(path.key)
    except OSError as exc:
        raise storage_error(path, exc, "reach") from None
    if info.type != pafs.FileType.File:
        raise RunDirError(f"{path} is not an object")
    target = _inputs_root() / path.key
    mtime_ns = int(info.mtime_ns or 0)
    if target.is_file():
        stat = target.stat()
        if stat.st_size == info.size and stat.st_mtime_ns == mtime_ns:
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.download")
    try:
        with path.fs.open_input_stream(path.key) as stream, open(partial, "wb") as handle:
            shutil.copyfileobj(stream, handle, 8 << 20)
        os.utime(partial, ns=(mtime_ns, mtime_ns))
        os.replace(partial, target)
    except OSError as exc:
        raise storage_error(path, exc, "download") from None
    return target


def input_name(path: Path) -> str | None:
    """``s3://bucket/key`` for a local copy made by :func:`local_copy`, else None: what records
    and manifests name, the same on every machine."""
    try:
        relative = path.resolve().relative_to(_inputs_root().resolve())
    except ValueError:
        return None
    return f"s3://{relative.as_posix()}"
