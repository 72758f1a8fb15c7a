"""The shared battery every registered stage must pass (like scikit-learn's estimator checks)."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from testutils import REPO, SAMPLES

from curate.ingest import read_file
from curate.records import RECORD_SCHEMA, REJECT_SCHEMA
from curate.stages import get_stage, registry, stage_index
from curate.stages.base import GlobalStage, StageParams

STAGES = sorted(registry())


def sample_table() -> pa.Table:
    tables = [
        read_file(SAMPLES / name, source=name.split(".")[0]).records
        for name in ("alpaca.json", "dolly.jsonl", "sharegpt.json", "cot_gsm8k_train.tsv")
    ]
    return pa.concat_tables(tables)


@pytest.mark.parametrize("name", STAGES)
def test_defaults_construct_and_params_round_trip(name: str) -> None:
    cls = registry()[name]
    assert issubclass(cls.Params, StageParams)
    assert cls.Params.model_config.get("extra") == "forbid"
    stage = cls()
    again = cls(stage.params.model_dump())
    assert again.params == stage.params
    assert name in repr(stage) or cls.__name__ in repr(stage)
    assert get_stage(cls.key()) is cls or get_stage(name) is cls


@pytest.mark.parametrize("name", STAGES)
def test_unknown_param_is_rejected(name: str) -> None:
    from curate.errors import StageError

    with pytest.raises(StageError, match="no_such_param"):
        registry()[name](no_such_param=1)


@pytest.mark.parametrize("name", STAGES)
def test_empty_input(name: str) -> None:
    result = registry()[name]().run(RECORD_SCHEMA.empty_table())
    assert result.kept.num_rows == 0
    assert result.rejected.num_rows == 0


@pytest.mark.parametrize("name", STAGES)
def test_deterministic_and_every_drop_has_a_reason(name: str) -> None:
    cls = registry()[name]
    table = sample_table()
    first = cls().run(table)
    second = cls().run(table)
    assert first.kept.equals(second.kept)
    assert first.rejected.equals(second.rejected)
    rejected = first.rejected
    assert rejected.schema == REJECT_SCHEMA
    if rejected.num_rows:
        assert rejected.column("stage").null_count == 0
        assert rejected.column("reason").null_count == 0
        assert set(rejected.column("stage").to_pylist()) == {cls.name}
    if cls.kind != "map" and not cls.multiplies_rows:
        assert first.kept.num_rows + rejected.num_rows == table.num_rows


def _no_file_access(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original``, refused to the test's own thread: a background thread left by another test
    (Ray's, say) that logs a traceback meanwhile still reads its source lines."""

    def guarded(*args: object, **kwargs: object) -> Any:
        if threading.current_thread() is threading.main_thread():
            raise AssertionError(f"construction touched the file system: {args[:1]}")
        return original(*args, **kwargs)

    return guarded


@pytest.mark.parametrize("name", STAGES)
def test_construction_touches_no_file(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constructors only store parameters; files and models are read in prepare()."""
    cls = registry()[name]
    with monkeypatch.context() as patched:
        for module, attribute in (
            (builtins, "open"),
            (io, "open"),
            (os, "stat"),
            (os, "scandir"),
            (os, "listdir"),
        ):
            patched.setattr(module, attribute, _no_file_access(getattr(module, attribute)))
        stage = cls()
    stage.prepare()  # and prepare() works afterwards


@pytest.mark.parametrize("name", STAGES)
def test_pickle_round_trip_runs_the_same(name: str) -> None:
    """Engines ship stages to worker processes by pickling them."""
    stage = registry()[name]()
    stage.prepare()
    copy = pickle.loads(pickle.dumps(stage))
    assert copy.params == stage.params
    table = sample_table()
    first, second = stage.run(table), copy.run(table)
    assert first.kept.equals(second.kept) and first.rejected.equals(second.rejected)


@pytest.mark.parametrize("name", STAGES)
def test_batch_invariance(name: str) -> None:
    """``run(table)`` equals the same rows split into shards: fit over every shard, then apply
    shard by shard (global stages), or each shard on its own (map and filter stages)."""
    cls = registry()[name]
    table = sample_table()
    whole = cls().run(table)
    shards = [table.slice(start, 7) for start in range(0, table.num_rows, 7)]
    stage = cls()
    if isinstance(stage, GlobalStage):
        stage.fit(shards)
        parts = [stage.apply(shard) for shard in shards]
    else:
        parts = [stage.run(shard) for shard in shards]
    kept = pa.concat_tables([p.kept for p in parts], promote_options="default")
    rejected = pa.concat_tables([p.rejected for p in parts])
    assert kept.to_pylist() == whole.kept.to_pylist()
    assert rejected.to_pylist() == whole.rejected.to_pylist()


def test_registry_resolves_versions_and_lists_names_on_typos() -> None:
    from curate.errors import StageError

    assert get_stage("exact_dedup").name == "exact_dedup_v1"
    assert get_stage("normalize_v1").name == "normalize_v1"
    with pytest.raises(StageError, match=r"available stages: .*exact_dedup"):
        get_stage("exact_dedupe")


def test_the_stage_index_read_from_the_source_names_every_stage_and_its_module() -> None:
    index = stage_index()
    stages = registry()
    assert set(index) == set(stages)
    for name, module in index.items():
        assert stages[name].__module__ == module


def test_resolving_a_stage_imports_only_its_own_module() -> None:
    # A fresh interpreter: a recipe of normalize + minhash_dedup never imports the language,
    # quality or template stages (nor the libraries behind them).
    code = (
        "import sys\n"
        "from curate.stages import get_stage\n"
        "print(get_stage('minhash_dedup').name, get_stage('normalize').name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('curate.stages.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    names, modules = result.stdout.splitlines()
    assert names == f"{get_stage('minhash_dedup').name} {get_stage('normalize').name}"
    assert "curate.stages.dedup.minhash" in modules
    for absent in ("filters.language", "filters.quality", "expand", "filters.pii"):
        assert f"curate.stages.{absent}'" not in modules
