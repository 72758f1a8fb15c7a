"""Benchmark ``minhash_dedup`` on the engines: local vs Ray as one task vs Ray band repartition.

    .venv/bin/python bench/ray_dedup.py                       # 200k and 1M rows, 2 workers
    .venv/bin/python bench/ray_dedup.py --sizes 50000 --workers 2

Rows come from ``bench/scale.py``'s generator (~5% exact and ~5% near duplicates, gzipped JSONL
shards of 100k rows). Each size is generated once; each mode runs the recipe ``[minhash_dedup]``
(``batch_size`` rows per shard) in a fresh process: ``local-fit`` (LocalExecutor, the whole
fit in memory in one process: the engine before the band grouping through files), ``local``
(LocalExecutor as it runs now: band rows and candidate pairs through files on the worker pool,
then ``fit_pairs``), ``ray-task``
(RayExecutor(band_grouping=False): fit + apply as one Ray task) and ``ray-band`` (band rows
per shard with map_batches, keyed repartition, pairs per block, fit_pairs + apply as one task).

The table gives the dedup stage's seconds (from the manifest: Ray startup and ingest excluded),
rows/s, the run's wall seconds, the peak RSS of the largest process and the peak PSS summed over
the whole process tree (Ray workers and object store included; PSS splits shared pages), and
the stage time relative to the first mode (local-fit). Every mode's data and rejects must be byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MODES = ("local-fit", "local", "ray-task", "ray-band")


# ------------------------------------------------------------------------------ memory


def _children(pid: int) -> list[int]:
    """``pid`` and every descendant, from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def _name(pid: int) -> str:
    """A short name for a process: Ray workers name their task or actor in the title."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return "driver" if "--child" in text else text.split(" ")[0].rsplit("/", 1)[-1][:40]


def _kib(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory:
    """Samples the process tree under ``pid``: peak RSS of one process, peak total PSS (MiB)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.max_rss = 0
        self.max_pss = 0
        self.max_rss_name = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _children(self.pid)
            rss = [_kib(Path(f"/proc/{p}/status"), "VmRSS:") for p in pids]
            pss = sum(_kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:") for p in pids)
            if rss and max(rss) > self.max_rss:
                self.max_rss = max(rss)
                self.max_rss_name = _name(pids[rss.index(self.max_rss)])
            self.max_pss = max(self.max_pss, pss)
            self._stop.wait(self.interval)

    def stop(self) -> tuple[float, float, str]:
        self._stop.set()
        self._thread.join()
        return self.max_rss / 1024, self.max_pss / 1024, self.max_rss_name


# ------------------------------------------------------------------------------ runs


def child(mode: str, recipe_path: str, out: str, workers: int) -> None:
    """One run in this process; prints the manifest's dedup stage as JSON."""
    sys.path.insert(0, str(REPO))
    from curate.engine.local import LocalExecutor
    from curate.recipe import load_recipe

    recipe = load_recipe(Path(recipe_path))
    executor: LocalExecutor
    if mode in ("local", "local-fit"):
        executor = LocalExecutor(workers=workers)
        if mode == "local-fit":
            # the whole fit in one process, in memory
            executor.split_fit_min_rows = executor.parallel_fit_min_rows = 1 << 62
    else:
        import ray

        from curate.engine.ray_engine import RayExecutor

        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
        executor = RayExecutor(workers=workers, band_grouping=mode == "ray-band")
    started = time.perf_counter()
    manifest = executor.run(recipe, out=Path(out)).manifest
    wall = time.perf_counter() - started
    stage = manifest["stages"][-1]
    print(json.dumps({"stage": stage, "wall": wall, "rows": manifest["rows"]}))


def digests(run_dir: Path) -> dict[str, str]:
    return {
        f"{sub}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for sub in ("data", "rejects")
        for p in sorted((run_dir / sub).glob("*.parquet"))
    }


def run_mode(mode: str, recipe: Path, out: Path, workers: int) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, str(recipe), str(out), str(workers)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    memory = TreeMemory(proc.pid)
    stdout, stderr = proc.communicate()
    max_rss, max_pss, max_rss_name = memory.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{stderr[-3000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result.update(max_rss=max_rss, max_pss=max_pss, max_rss_name=max_rss_name)
    result["digests"] = digests(out)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--child", nargs=4, metavar=("MODE", "RECIPE", "OUT", "WORKERS"))
    args = parser.parse_args()
    if args.child:
        mode, recipe, out, workers = args.child
        child(mode, recipe, out, int(workers))
        return 0

    sys.path.insert(0, str(BENCH))
    from scale import generate

    print(f"minhash_dedup, workers={args.workers}, batch_size={args.batch_size}")
    print(
        f"{'rows':>9} {'mode':>9} {'stage s':>8} {'rows/s':>8} {'wall s':>7} "
        f"{'max RSS MiB':>11} {'tree PSS MiB':>12} {'vs first':>8}  {'removed':>7}  detail"
    )
    for size in args.sizes:
        work = Path(tempfile.mkdtemp(prefix=f"curate-ray-dedup-{size}-"))
        try:
            (work / "in").mkdir()
            generate(work / "in", size)
            recipe = {
                "name": f"raydedup{size}",
                "batch_size": args.batch_size,
                "sources": [{"name": "synthetic", "path": str(work / "in"), "format": "alpaca"}],
                "stages": [{"minhash_dedup": {}}],
                "output": str(work / "run"),
            }
            (work / "recipe.yaml").write_text(json.dumps(recipe))
            baseline: float | None = None
            reference: dict[str, str] | None = None
            for mode in args.modes:
                r = run_mode(mode, work / "recipe.yaml", work / mode, args.workers)
                stage = r["stage"]
                seconds = float(stage["seconds"])
                baseline = seconds if baseline is None else baseline
                ratio = f"{seconds / baseline:8.2f}" if baseline else f"{'-':>8}"
                info = stage.get("info", {})
                detail = info.get("engine_path", mode)
                if "band_seconds" in info:
                    bands = info["band_seconds"]
                    detail += (
                        f" (band rows {bands['band_rows']:.1f}s, pairs {bands['band_pairs']:.1f}s,"
                        f" {info['band_partitions']} partitions, {info['band_shuffle']})"
                    )
                print(
                    f"{size:>9} {mode:>9} {seconds:8.1f} {size / seconds:8.0f} {r['wall']:7.1f} "
                    f"{r['max_rss']:11.0f} {r['max_pss']:12.0f} {ratio}  "
                    f"{info.get('removed', 0):>7}  {detail}; largest process: {r['max_rss_name']}",
                    flush=True,
                )
                if reference is None:
                    reference = r["digests"]
                elif r["digests"] != reference:
                    raise SystemExit(f"{mode}: output differs from {args.modes[0]}")
                shutil.rmtree(work / mode, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print("stage s: the dedup stage in the manifest; every mode's output was byte-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
