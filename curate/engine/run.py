"""``run_recipe``: a validated recipe handed to an engine (local process pool or Ray)."""

from __future__ import annotations

from pathlib import Path

from curate.engine.executor import Executor, RunResult
from curate.engine.local import LocalExecutor
from curate.engine.progress import Reporter
from curate.errors import CurateError
from curate.recipe import Recipe
from curate.util.storage import ObjectPath


def run_recipe(
    recipe: Recipe,
    *,
    out: str | Path | ObjectPath | None = None,
    force: bool = False,
    strict: bool | None = None,
    recipe_path: Path | None = None,
    workers: int | None = None,
    reporter: Reporter | None = None,
    engine: str | None = None,
) -> RunResult:
    """Run a validated recipe end to end (local engine, or Ray) and publish its run directory.

    Re-running after a crash resumes from the checkpoints; a finished run with the same recipe and
    inputs is left as is; ``force`` starts over.
    """
    engine = engine or recipe.engine
    workers = workers if workers is not None else recipe.workers
    executor: Executor
    if engine == "ray":
        # Ray is imported only when asked for.
        from curate.engine.ray_engine import RayExecutor

        executor = RayExecutor(address=recipe.ray_address, workers=workers, reporter=reporter)
    elif engine == "local":
        executor = LocalExecutor(workers=workers, reporter=reporter)
    else:
        raise CurateError(f"unknown engine {engine!r}; expected local or ray")
    return executor.run(recipe, out=out, force=force, strict=strict, recipe_path=recipe_path)


__all__ = ["RunResult", "run_recipe"]
