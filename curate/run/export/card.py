"""The dataset card: YAML front matter for the Hub and ``load_dataset``, then the run's story (sources and licenses, funnel, mix)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curate.run.export.writers import DataStats, record_batches
from curate.run.funnel import funnel_steps
from curate.run.manifest import Manifest
from curate.util.markup import md_code, md_text

CARD_TEMPLATE = "dataset_card.md.j2"

TAGS = ["curate", "instruction-tuning"]

MIX_UNITS_SHOWN = 50

TOP_REASONS = 3

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


def compile_licenses(manifest: Manifest, rows_by_source: Mapping[str, int]) -> Licenses:
    """Hub license ids of the sources that have rows in the export (all sources if none do)."""
    sources = manifest.sources
    present = [s for s in sources if rows_by_source.get(s.name, 0) > 0] or sources
    by_source = {s.name: hub_license(s.license) for s in sources}
    ids = sorted({by_source[s.name] for s in present}, key=lambda i: (i in ("unknown", "other"), i))
    missing = [s.name for s in present if by_source[s.name] == "unknown"]
    return Licenses(ids=ids or ["unknown"], by_source=by_source, missing=missing)


def size_category(rows: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if rows < bound:
            return label
    return "n>1T"


def render_card(
    manifest: Manifest,
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
    env.filters["cell"] = md_text
    env.filters["md"] = md_text
    env.filters["code"] = md_code
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
            "name": s.name,
            "license": _license_cell(s.license, licenses.by_source[s.name]),
            "rows_read": s.rows_read,
            "rows_kept": s.rows_kept,
            "rows_exported": stats.by_source.get(s.name, 0),
        }
        for s in manifest.sources
    ]
    load, duck, duck_lang = _snippets(format, chat)
    return template.render(
        front_matter=front,
        name=manifest.name,
        rows=stats.rows,
        chat=chat,
        format=format,
        columns=stats.schema.names,
        sources=sources,
        licenses=licenses.ids,
        missing_license=licenses.missing,
        recipe_name=manifest.recipe.get("name", manifest.name),
        recipe_sha256=manifest.recipe_sha256,
        seed=manifest.seed,
        curate_version=manifest.curate_version,
        run_key=manifest.run_key,
        funnel=funnel_rows(manifest, ingest_reasons),
        mix=_mix_summary(manifest),
        load_snippet=load,
        duckdb_snippet=duck,
        duckdb_lang=duck_lang,
    )


def card_metadata(
    manifest: Manifest, stats: DataStats, *, format: str, licenses: Licenses
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
    meta["pretty_name"] = manifest.name
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
    manifest: Manifest, ingest_reasons: Mapping[str, int] | None = None
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


def ingest_reasons(run_dir: Path, manifest: Manifest) -> dict[str, int] | None:
    """Reasons rows were rejected at ingest, counted from the run's rejects (None: no rejects)."""
    files = [run_dir / name for name in manifest.outputs.reject_files]
    files = [f for f in files if f.is_file()]
    if not files:
        return None
    counts: Counter[str] = Counter()
    for path in files:
        if not {"stage", "reason"} <= set(pq.read_schema(path).names):
            return None
        for batch in record_batches(path, ["stage", "reason"]):
            stages = batch.column(0).to_pylist()
            reasons = batch.column(1).to_pylist()
            counts.update(r for s, r in zip(stages, reasons, strict=True) if s == "ingest")
    return dict(counts)


def _mix_summary(manifest: Manifest) -> dict[str, Any] | None:
    mix = next(
        (s for s in manifest.stages if s.key == "mix" and "units" in (s.info or {})),
        None,
    )
    if mix is None:
        return None
    info: dict[str, Any] = mix.info
    units = sorted(info["units"], key=lambda u: (-u.get("realized", 0), str(u.get("unit"))))
    realized = info.get("realized", mix.rows_out)
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
            f"largest unit {md_code(diversity['largest_task'])}"
            + (f" ({share:.1%} of the rows)" if isinstance(share, (int, float)) else "")
        )
    return "Diversity: " + "; ".join(parts) + "." if parts else ""


def _license_cell(raw: str | None, hub_id: str) -> str:
    if raw is None or not raw.strip():
        return "unknown (not given)"
    if hub_id == "other":
        return f"other ({raw.strip()})"
    return hub_id


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
