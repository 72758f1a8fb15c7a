"""Where shards begin and end never changes what a per-batch stage decides, nor what its manifest
says: a per-batch stage runs on each shard with a fresh copy, and the shards depend on the recipe's
``batch_size``, the number of input files and the engine. Over consecutive row ranges of a batch,
joined in order, every map and filter stage gives the rows it gives over the whole batch, and the
ranges' ``manifest_info`` merged by ``merge_manifest_info`` is the whole batch's."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from testutils import SAMPLES, SHARED_DATA, normalized_samples

from curate.ingest import read_file
from curate.stages import registry
from curate.stages.base import Stage
from curate.stages.normalize import Normalize

PER_BATCH = sorted(name for name, cls in registry().items() if cls.kind in ("map", "filter"))
# Parameters a stage needs to do anything on the samples (the demo recipe's).
PARAMS: dict[str, dict[str, Any]] = {
    "decontaminate": {"benchmarks": [str(SAMPLES / "eval" / "*.jsonl")], "ngram": 13},
}


def _sample_records() -> pa.Table:
    names = [
        "alpaca.json",
        "alpaca_more.jsonl",
        "dolly.jsonl",
        "flan.jsonl",
        "sharegpt.json",
        "messages.jsonl",
        "cot_gsm8k_train.tsv",
        "niv2_task001_sample_antonyms.json",
    ]
    return normalized_samples(names)


def _real_records(rows: int) -> pa.Table | None:
    """The first ``rows`` rows of Alpaca and of Dolly, when ../shared is beside the repo."""
    files = {
        "alpaca": SHARED_DATA / "alpaca" / "alpaca_data.json.gz",
        "dolly": SHARED_DATA / "dolly" / "databricks-dolly-15k.jsonl.gz",
    }
    if not all(path.is_file() for path in files.values()):
        return None
    tables = [read_file(path, source=name).records.slice(0, rows) for name, path in files.items()]
    return Normalize().run(pa.concat_tables(tables)).kept


def _ranges(n: int) -> list[tuple[int, int]]:
    """Three consecutive ranges of unequal size (one of them short)."""
    first = n // 3
    return [(0, first), (first, 7), (first + 7, n - first - 7)]


def _check(name: str, table: pa.Table) -> None:
    cls = registry()[name]
    params = PARAMS.get(cls.key(), {})

    def fresh() -> Stage:
        stage = cls(params)
        stage.prepare()
        return stage

    whole_stage = fresh()
    whole = whole_stage.run(table)
    kept, rejected, infos = [], [], []
    for first, count in _ranges(table.num_rows):
        stage = fresh()
        part = stage.run(table.slice(first, count))
        kept.append(part.kept)
        rejected.append(part.rejected)
        infos.append(stage.manifest_info())

    assert pa.concat_tables(kept).equals(whole.kept)
    assert pa.concat_tables(rejected).equals(whole.rejected)
    assert whole_stage.merge_manifest_info(infos) == whole_stage.manifest_info()


def test_every_per_batch_stage_is_checked() -> None:
    assert {"normalize_v2", "quality_v4", "language_v4", "decontaminate_v2", "pii_v1"} <= set(
        PER_BATCH
    )


@pytest.mark.parametrize("name", PER_BATCH)
def test_shard_boundaries_change_no_decision(name: str) -> None:
    table = _sample_records()
    assert table.num_rows > 30
    _check(name, table)


@pytest.mark.parametrize("name", PER_BATCH)
def test_shard_boundaries_change_no_decision_on_real_data(name: str) -> None:
    table = _real_records(1500)
    if table is None:
        pytest.skip("../shared/data is not beside the repository")
    _check(name, table)
