"""Start-up time of the CLI: ``curate --help`` and ``curate run`` on a recipe whose run directory is
already up to date (everything ``curate run`` does before its first row: imports, recipe and stage
checks, input fingerprints, the manifest check), each the median of several fresh processes,
beside the interpreter alone and the libraries every run imports (the floor no curate code can go
under).

    .venv/bin/python bench/startup.py [--repeat 7]

The recipe is ``[normalize, minhash_dedup]`` over ``data_samples/dolly.jsonl`` (written to a
temporary folder and run once first). ``python -c pass`` is the interpreter's own floor.

Both are timed as an installed curate starts: with its modules' bytecode cached. An environment
with ``PYTHONDONTWRITEBYTECODE`` set (some CI images, this project's sandboxes) compiles every
curate module from source on every start, about 0.1 s more here; the bench compiles them once
first (``compileall``) and runs without that variable.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CURATE = [sys.executable, "-m", "curate.cli"]
# What any `curate run` imports before its first row, whatever curate itself does: the floor.
LIBRARY_FLOOR = (
    "import typer, rich.table, rich.text, yaml, numpy, pyarrow, pyarrow.compute, pyarrow.parquet\n"
    "import pydantic\n"
    "class Model(pydantic.BaseModel):\n"
    "    x: int = 1\n"
    "Model()\n"
)


def seconds(command: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=REPO, env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        recipe = Path(scratch) / "recipe.yaml"
        recipe.write_text(
            "name: startup\n"
            f"sources: [{{name: dolly, path: {REPO / 'data_samples/dolly.jsonl'}}}]\n"
            "stages: [normalize, minhash_dedup]\n"
            f"output: {Path(scratch) / 'run'}\n"
        )
        run = [*CURATE, "run", str(recipe), "-q"]
        subprocess.run(run, check=True, capture_output=True, cwd=REPO)
        compileall.compile_dir(REPO / "curate", quiet=1)
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        rows = [
            (
                "python -c pass (interpreter floor)",
                seconds([sys.executable, "-c", "pass"], args.repeat, cached),
            ),
            (
                "libraries a run needs, imported (typer, rich, pydantic + one model, yaml, pyarrow "
                "+ compute + parquet, numpy)",
                seconds([sys.executable, "-c", LIBRARY_FLOOR], args.repeat, cached),
            ),
            ("curate --help", seconds([*CURATE, "--help"], args.repeat, cached)),
            ("curate run (up to date: all checks, no rows)", seconds(run, args.repeat, cached)),
        ]
    print(f"\nmedian of {args.repeat} fresh processes\n")
    print("| command | seconds |")
    print("|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")


if __name__ == "__main__":
    main()
