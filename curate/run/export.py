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

import hashlib
import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import ExportError, RunDirError
from curate.records import RECORD_SCHEMA
from curate.run.funnel import funnel_steps
from curate.run.layout import RunDir, partial_path, publish
from curate.run.writer import ROW_GROUP_ROWS, dataset_writer

ExportFormat = Literal["parquet", "jsonl", "hf"]
FORMATS: tuple[str, ...] = ("parquet", "jsonl", "hf")
CARD = "README.md"
CARD_TEMPLATE = "dataset_card.md.j2"
TAGS = ["curate", "instruction-tuning"]
MIX_UNITS_SHOWN = 50
TOP_REASONS = 3

CHAT_SCHEMA = pa.schema(
    [
        RECORD_SCHEMA.field("id"),
        RECORD_SCHEMA.field("source"),
        RECORD_SCHEMA.field("messages").with_nullable(False),
    ]
)
# What chat_messages reads from a record (the ones the run has).
CHAT_INPUT_COLUMNS = (
    "id",
    "source",
    "messages",
    "instruction",
    "input",
    "output",
    "rationale",
    "options",
    "template_id",
)

# License identifiers the Hub accepts in a card (https://huggingface.co/docs/hub/repositories-licenses).
_HUB_LICENSE_IDS = """
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause
    bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0
    cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
    cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
    cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1
    eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research
    intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openrail++ osl-3.0
    postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 llama3
    llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
"""
HUB_LICENSES = frozenset(_HUB_LICENSE_IDS.split())
_LICENSE_ALIASES = {
    "apache": "apache-2.0",
    "apache2": "apache-2.0",
    "cc0": "cc0-1.0",
    "public-domain": "cc0-1.0",
    "gpl2": "gpl-2.0",
    "gpl3": "gpl-3.0",
    "agpl": "agpl-3.0",
    "odc-by-1.0": "odc-by",
    "odbl-1.0": "odbl",
    "pddl-1.0": "pddl",
    "mpl2": "mpl-2.0",
}
_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)


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

    @property
    def card(self) -> Path:
        return self.path / CARD


# ---------------------------------------------------------------------------------------- public
def export_run(
    run_dir: str | Path,
    to: str | Path,
    format: str = "parquet",
    chat: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Write the run's records to ``to`` as a dataset folder (``format``: parquet | jsonl | hf)."""
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
    _check_target(run_dir, to, overwrite)
    partial = partial_path(to)
    if partial.exists():
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as exc:
        raise RunDirError(f"cannot create {partial}: {exc.strerror or exc}") from None
    try:
        with _quiet_datasets():
            if format == "hf":
                files, stats = _write_hf(data_files, partial, chat)
            else:
                files, stats = _write_shards(data_files, partial, format, chat)
        licenses = compile_licenses(manifest, stats.by_source)
        card = render_card(
            manifest,
            stats,
            format=format,
            chat=chat,
            licenses=licenses,
            ingest_reasons=ingest_reasons(run_dir, manifest),
        )
        (partial / CARD).write_text(card, encoding="utf-8")
        if to.is_dir() and not any(to.iterdir()):
            to.rmdir()
        publish(partial, to)
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
    )


def push_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload dataset exported by curate",
) -> str:
    """Create the Hub dataset repo ``repo_id`` if needed and upload ``folder``; returns its URL.

    Data files the folder does not have any more (a re-export with fewer shards) are deleted from
    the repo in the same commit; other files there (a LICENSE added by hand) are left alone.
    """
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ExportError(
            "--push needs huggingface_hub: pip install huggingface_hub (it comes with datasets)"
        ) from None
    api = HfApi(token=token)
    try:
        repo = api.create_repo(
            repo_id, repo_type="dataset", private=True if private else None, exist_ok=True
        )
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="dataset",
            commit_message=commit_message,
            delete_patterns=["data/*", "*.arrow"],
        )
    except Exception as exc:  # network, auth, offline mode: all end in the same advice
        raise ExportError(
            f"pushing {folder} to the Hub dataset {repo_id!r} failed: {type(exc).__name__}: {exc}. "
            "Check the network, that you are logged in (`hf auth login` or HF_TOKEN) with write "
            "access to the repo, and that HF_HUB_OFFLINE is not set; the exported folder is "
            "complete, so you can retry the push or upload it yourself"
        ) from None
    return str(getattr(repo, "url", f"https://huggingface.co/datasets/{repo_id}"))


def open_run(run_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    """The manifest and data files of a complete run, or an ExportError that says what is wrong."""
    return RunDir(run_dir).open(error=ExportError)


def chat_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The conversation of one record, as ``[{role, content}, ...]``.

    ``messages`` when the record has them (multi-turn sources, and every record a run rendered to
    messages; roles as curate stores them: system, user, assistant, tool_call, tool). Otherwise one
    user turn (``instruction``, then a blank line and ``input`` when there is one; answer choices
    as an ``OPTIONS:`` list when no template rendered them) and one assistant turn (``output``,
    preceded by the ``rationale`` and a blank line when the output does not already contain it:
    reasoning first, then the answer).
    """
    messages = record.get("messages")
    if messages:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    user = record.get("instruction") or ""
    extra = record.get("input") or ""
    if extra.strip():
        user = f"{user}\n\n{extra}" if user else extra
    options = record.get("options") or []
    if options and not record.get("template_id") and not all(o in user for o in options):
        user += "\n\nOPTIONS:\n" + "\n".join(f"- {o}" for o in options)
    answer = record.get("output") or ""
    rationale = (record.get("rationale") or "").strip()
    if rationale and rationale not in answer:
        answer = f"{rationale}\n\n{answer}" if answer else rationale
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def hub_license(raw: str | None) -> str:
    """A recipe's license string as a Hub license id: ``CC-BY-NC-4.0`` -> ``cc-by-nc-4.0``.

    Missing -> ``unknown``; a license the Hub has no id for -> ``other``.
    """
    if raw is None or not raw.strip():
        return "unknown"
    key = re.sub(r"[\s_/]+", "-", raw.strip().lower())
    key = re.sub(r"^(the-)?(.*?)(-license)?$", r"\2", key)
    key = re.sub(r"^(apache|gpl|lgpl|agpl|mpl|epl)-license-", r"\1-", key)
    key = re.sub(r"^(a?l?gpl-\d\.\d)(-only|-or-later|\+)$", r"\1", key)
    key = re.sub(r"^creative-commons-", "cc-", key)
    cc = re.fullmatch(r"cc-(by(?:-(?:nc|nd|sa))*)-?v?(\d)(?:\.(\d))?", key)
    if cc:
        key = f"cc-{cc.group(1)}-{cc.group(2)}.{cc.group(3) or 0}"
    numbered = re.fullmatch(r"(apache|gpl|lgpl|agpl|mpl|epl|afl|osl|eupl)-?v?(\d)(?:\.(\d))?", key)
    if numbered:
        key = f"{numbered.group(1)}-{numbered.group(2)}.{numbered.group(3) or 0}"
    key = _LICENSE_ALIASES.get(key, key)
    return key if key in HUB_LICENSES else "other"


@dataclass(frozen=True)
class Licenses:
    """The sources' licenses compiled for a card."""

    ids: list[str]
    """Distinct Hub ids of the sources with rows in the export (unknown/other last)."""
    by_source: dict[str, str]
    missing: list[str]
    """Sources with rows in the export and no license in the recipe."""

    @property
    def card_value(self) -> str | list[str]:
        return self.ids[0] if len(self.ids) == 1 else list(self.ids)


def compile_licenses(manifest: Mapping[str, Any], rows_by_source: Mapping[str, int]) -> Licenses:
    """Hub license ids of the sources that have rows in the export (all sources if none do)."""
    sources = manifest.get("sources", [])
    present = [s for s in sources if rows_by_source.get(s["name"], 0) > 0] or sources
    by_source = {s["name"]: hub_license(s.get("license")) for s in sources}
    ids = sorted(
        {by_source[s["name"]] for s in present}, key=lambda i: (i in ("unknown", "other"), i)
    )
    missing = [s["name"] for s in present if by_source[s["name"]] == "unknown"]
    return Licenses(ids=ids or ["unknown"], by_source=by_source, missing=missing)


def size_category(rows: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>1T"


# ------------------------------------------------------------------------------------ data writing
@dataclass
class DataStats:
    """What the card needs to know about the exported rows."""

    rows: int
    by_source: Counter[str]
    langs: Counter[str]
    schema: pa.Schema

    def add(self, table: pa.Table | pa.RecordBatch) -> None:
        self.rows += table.num_rows
        for column, counter in (("source", self.by_source), ("lang", self.langs)):
            if column in table.schema.names:
                counter.update(v for v in table.column(column).to_pylist() if v is not None)


def _shard_name(index: int, count: int, suffix: str) -> str:
    return f"train-{index:05d}-of-{count:05d}.{suffix}"


def _batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_ROWS, columns=columns)


def _chat_columns(path: Path) -> list[str]:
    names = pq.read_schema(path).names
    return [c for c in (*CHAT_INPUT_COLUMNS, "lang") if c in names]


def _chat_table(batch: pa.RecordBatch) -> pa.Table:
    rows = batch.to_pylist()
    return pa.table(
        {
            "id": pa.array([r["id"] for r in rows], pa.string()),
            "source": pa.array([r.get("source") or "" for r in rows], pa.string()),
            "messages": pa.array(
                [chat_messages(r) for r in rows], CHAT_SCHEMA.field("messages").type
            ),
        },
        schema=CHAT_SCHEMA,
    )


def _write_parquet(source: Path, target: Path, chat: bool, stats: DataStats) -> None:
    """Rewrite one run data file (as records or chat), with the run writer's options.

    Row groups are exactly ``ROW_GROUP_ROWS`` (the run's files keep one row group per shard, and
    ``datasets`` reads in batches of the first row group's size), and an empty file has no row
    group at all (``datasets`` fails on a zero-row row group).
    """
    schema = CHAT_SCHEMA if chat else pq.read_schema(source)
    with dataset_writer(target, schema) as writer:
        for batch in _batches(source, _chat_columns(source) if chat else None):
            stats.add(batch)
            table = _chat_table(batch) if chat else pa.Table.from_batches([batch])
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def _json_value(value: Any) -> Any:
    # JSON has no NaN/Infinity: non-finite floats are written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _write_jsonl(source: Path, target: Path, chat: bool, stats: DataStats) -> None:
    with target.open("w", encoding="utf-8", newline="\n") as out:
        for batch in _batches(source, _chat_columns(source) if chat else None):
            stats.add(batch)
            table = _chat_table(batch) if chat else batch
            for row in table.to_pylist():
                out.write(json.dumps(_json_value(row), ensure_ascii=False, separators=(",", ":")))
                out.write("\n")


def _write_shards(
    data_files: list[Path], partial: Path, format: str, chat: bool
) -> tuple[list[str], DataStats]:
    """parquet/jsonl: one shard per run data file, named the Hub way under ``data/``."""
    (partial / "data").mkdir()
    schema = CHAT_SCHEMA if chat else pq.read_schema(data_files[0])
    stats = DataStats(0, Counter(), Counter(), schema)
    names = []
    for index, source in enumerate(data_files):
        name = f"data/{_shard_name(index, len(data_files), format)}"
        target = partial / name
        if format == "jsonl":
            _write_jsonl(source, target, chat, stats)
        else:
            _write_parquet(source, target, chat, stats)
        names.append(name)
    return names, stats


def _write_hf(data_files: list[Path], partial: Path, chat: bool) -> tuple[list[str], DataStats]:
    """hf: ``Dataset.save_to_disk`` into the folder (loadable with ``datasets.load_from_disk``)."""
    import datasets

    work = partial / ".work"
    work.mkdir()
    # Staged through our parquet writer: datasets' reader needs sane row groups (see _write_parquet).
    stats = DataStats(
        0, Counter(), Counter(), CHAT_SCHEMA if chat else pq.read_schema(data_files[0])
    )
    sources = []
    for index, data_file in enumerate(data_files):
        staged = work / f"part-{index:05d}.parquet"
        _write_parquet(data_file, staged, chat, stats)
        sources.append(staged)
    loaded = datasets.Dataset.from_parquet(
        [str(s) for s in sources], cache_dir=str(work / "cache"), split="train"
    )
    assert isinstance(loaded, datasets.Dataset)
    # A fingerprint and info of our own: the defaults carry cache paths and would differ per export.
    digest = hashlib.sha256(b"curate-export-hf-v1" + (b"chat" if chat else b"records"))
    for source in sources:
        with source.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    dataset = datasets.Dataset(
        loaded.data,
        info=datasets.DatasetInfo(
            description="Exported by curate; see README.md.", features=loaded.features
        ),
        split=datasets.Split.TRAIN,
        fingerprint=digest.hexdigest()[:16],
    )
    dataset.save_to_disk(str(partial))
    state = json.loads((partial / "state.json").read_text(encoding="utf-8"))
    names = [entry["filename"] for entry in state["_data_files"]]
    del dataset, loaded
    shutil.rmtree(work)
    return names, stats


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars while exporting (restored afterwards)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        yield
        return
    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def _check_target(run_dir: Path, to: Path, overwrite: bool) -> None:
    run, target = run_dir.resolve(), to.resolve()
    if target == run or run.is_relative_to(target) or target.is_relative_to(run):
        raise ExportError(
            f"--to {to} overlaps the run directory {run_dir}; export to a directory outside the run"
        )
    if to.exists() and not to.is_dir():
        raise RunDirError(f"{to} exists and is a file; pass a directory for --to")
    if to.is_dir() and any(to.iterdir()) and not overwrite:
        raise RunDirError(f"{to} exists and is not empty; pass --force to replace it")


# ---------------------------------------------------------------------------------------- the card
def render_card(
    manifest: Mapping[str, Any],
    stats: DataStats,
    *,
    format: str,
    chat: bool,
    licenses: Licenses | None = None,
    ingest_reasons: Mapping[str, int] | None = None,
) -> str:
    """The dataset card: YAML front matter for the Hub and ``load_dataset``, then the run's story."""
    import jinja2
    import yaml

    licenses = licenses or compile_licenses(manifest, stats.by_source)
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["cell"] = _cell
    env.filters["code"] = lambda text: f"`{text}`"
    template = env.from_string(
        resources.files("curate").joinpath("data", CARD_TEMPLATE).read_text(encoding="utf-8")
    )
    front = yaml.safe_dump(
        card_metadata(manifest, stats, format=format, licenses=licenses),
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )
    sources = [
        {
            "name": s["name"],
            "license": _license_cell(s.get("license"), licenses.by_source[s["name"]]),
            "rows_read": s.get("rows_read", 0),
            "rows_kept": s.get("rows_kept", 0),
            "rows_exported": stats.by_source.get(s["name"], 0),
        }
        for s in manifest.get("sources", [])
    ]
    load, duck, duck_lang = _snippets(format, chat)
    return template.render(
        front_matter=front,
        name=manifest.get("name", "curate export"),
        rows=stats.rows,
        chat=chat,
        format=format,
        columns=stats.schema.names,
        sources=sources,
        licenses=licenses.ids,
        missing_license=licenses.missing,
        recipe_name=manifest.get("recipe", {}).get("name", manifest.get("name", "")),
        recipe_sha256=manifest.get("recipe_sha256", ""),
        seed=manifest.get("seed"),
        curate_version=manifest.get("curate_version", ""),
        run_key=manifest.get("run_key", ""),
        funnel=funnel_rows(manifest, ingest_reasons),
        mix=_mix_summary(manifest),
        load_snippet=load,
        duckdb_snippet=duck,
        duckdb_lang=duck_lang,
    )


def card_metadata(
    manifest: Mapping[str, Any], stats: DataStats, *, format: str, licenses: Licenses
) -> dict[str, Any]:
    """The card's YAML front matter (Hub metadata; ``configs`` and features for ``load_dataset``)."""
    import datasets
    from huggingface_hub import DatasetCardData

    meta: dict[str, Any] = {"license": licenses.card_value}
    languages = sorted(
        {
            re.split(r"[-_]", lang.lower())[0]
            for lang in stats.langs
            if lang and lang.lower() not in ("und", "unknown")
        }
    )
    if languages:
        meta["language"] = languages
    meta["task_categories"] = ["text-generation"]
    meta["tags"] = list(TAGS)
    meta["size_categories"] = [size_category(stats.rows)]
    meta["pretty_name"] = str(manifest.get("name", "curate export"))
    pattern = {"parquet": "data/train-*", "jsonl": "data/train-*", "hf": "data-*.arrow"}[format]
    meta["configs"] = [
        {"config_name": "default", "data_files": [{"split": "train", "path": pattern}]}
    ]
    card_data = DatasetCardData()
    info = datasets.DatasetInfo(features=datasets.Features.from_arrow_schema(stats.schema))
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    features = card_data.to_dict()["dataset_info"]["features"]
    # Features only: `splits` would need num_bytes (the Arrow size), which the card can do without.
    meta["dataset_info"] = {"features": features}
    return meta


def funnel_rows(
    manifest: Mapping[str, Any], ingest_reasons: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """The funnel for the dataset card: rows in/out, dropped and the top drop reasons."""
    return [
        {
            "index": step["index"],
            "name": step["step"],
            "rows_in": step["rows_in"],
            "rows_out": step["rows_out"],
            "dropped": sum(step["dropped"].values()),
            "reasons": _top_reasons(step["dropped"]),
        }
        for step in funnel_steps(manifest, ingest_reasons)
    ]


def _top_reasons(counts: Mapping[str, int]) -> str:
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} {v}" for k, v in top[:TOP_REASONS])
    if len(top) > TOP_REASONS:
        text += f" (+{len(top) - TOP_REASONS} more)"
    return text


def ingest_reasons(run_dir: Path, manifest: Mapping[str, Any]) -> dict[str, int] | None:
    """Reasons rows were rejected at ingest, counted from the run's rejects (None: no rejects)."""
    listed = manifest.get("outputs", {}).get("reject_files")
    files = (
        [run_dir / name for name in listed]
        if listed is not None
        else sorted((run_dir / "rejects").glob("*.parquet"))
    )
    files = [f for f in files if f.is_file()]
    if not files:
        return None
    counts: Counter[str] = Counter()
    for path in files:
        if not {"stage", "reason"} <= set(pq.read_schema(path).names):
            return None
        for batch in _batches(path, ["stage", "reason"]):
            stages = batch.column(0).to_pylist()
            reasons = batch.column(1).to_pylist()
            counts.update(r for s, r in zip(stages, reasons, strict=True) if s == "ingest")
    return dict(counts)


def _mix_summary(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    mix = next(
        (
            s
            for s in manifest.get("stages", [])
            if s.get("key") == "mix" and "units" in (s.get("info") or {})
        ),
        None,
    )
    if mix is None:
        return None
    info: dict[str, Any] = mix["info"]
    units = sorted(info["units"], key=lambda u: (-u.get("realized", 0), str(u.get("unit"))))
    realized = info.get("realized", mix.get("rows_out", 0))
    shown = [
        {**u, "share": f"{u.get('realized', 0) / realized:.1%}" if realized else "-"}
        for u in units[:MIX_UNITS_SHOWN]
    ]
    hidden = units[MIX_UNITS_SHOWN:]
    return {
        "by": info.get("by", ""),
        "target": info.get("target", "all"),
        "cap": "none" if info.get("cap") is None else info["cap"],
        "temperature": info.get("temperature", 1.0),
        "realized": realized,
        "diversity": _diversity_line(info.get("diversity") or {}),
        "units": shown,
        "more_units": len(hidden),
        "more_rows": sum(u.get("realized", 0) for u in hidden),
    }


def _diversity_line(diversity: Mapping[str, Any]) -> str:
    parts = []
    if "tasks" in diversity:
        parts.append(f"{diversity['tasks']} tasks")
    if "templates" in diversity:
        parts.append(f"{diversity['templates']} templates")
    if "task_entropy_normalized" in diversity:
        parts.append(f"normalized task entropy {diversity['task_entropy_normalized']}")
    if diversity.get("largest_task") is not None:
        share = diversity.get("largest_task_share")
        parts.append(
            f"largest unit `{diversity['largest_task']}`"
            + (f" ({share:.1%} of the rows)" if isinstance(share, (int, float)) else "")
        )
    return "Diversity: " + "; ".join(parts) + "." if parts else ""


def _license_cell(raw: str | None, hub_id: str) -> str:
    if raw is None or not raw.strip():
        return "unknown (not given)"
    if hub_id == "other":
        return f"other ({raw.strip()})"
    return hub_id


def _cell(value: object) -> str:
    # A markdown table cell: one line, no column separators.
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _snippets(format: str, chat: bool) -> tuple[str, str, str]:
    """How to load and query the folder: (python, duckdb, duckdb block language)."""
    group = (
        "SELECT source, count(*) AS rows, avg(len(messages)) AS turns"
        if chat
        else "SELECT source, task, count(*) AS rows"
    )
    group_by = "GROUP BY ALL ORDER BY rows DESC"
    if format == "hf":
        load = (
            "from datasets import load_dataset, load_from_disk\n\n"
            'ds = load_from_disk("path/to/this/folder")  # a Dataset, split train\n'
            'ds = load_dataset("arrow", data_files="path/to/this/folder/data-*.arrow", split="train")\n'
            'ds = load_dataset("<user>/<repo>", split="train")  # once pushed to the Hub'
        )
        duck = (
            "import duckdb\nfrom datasets import load_from_disk\n\n"
            'records = load_from_disk("path/to/this/folder").data.table  # a pyarrow Table\n'
            f'duckdb.sql("{group} FROM records {group_by}").show()'
        )
        return load, duck, "python"
    reader = "read_parquet" if format == "parquet" else "read_json_auto"
    load = (
        "from datasets import load_dataset\n\n"
        'ds = load_dataset("path/to/this/folder", split="train")  # or the Hub repo id\n'
        f'ds = load_dataset("{"parquet" if format == "parquet" else "json"}", '
        f'data_files="path/to/this/folder/data/*.{format}", split="train")'
    )
    duck = (
        "-- in this folder\n"
        f"{group} FROM {reader}('data/*.{format}') {group_by};\n"
        "-- on the Hub\n"
        f"SELECT count(*) FROM {reader}('hf://datasets/<user>/<repo>/data/*.{format}');"
    )
    return load, duck, "sql"
