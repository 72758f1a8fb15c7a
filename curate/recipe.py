"""The recipe: one pydantic-validated YAML file. A bad recipe fails before any work, naming the key path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curate.errors import CurateError, RecipeError
from curate.ingest.sources import SourceConfig
from curate.stages import get_stage
from curate.stages.base import Stage, format_validation_error
from curate.util.storage import RunPath, as_run_path


class StageSpec(BaseModel):
    """One ``- key: {params}`` entry of ``stages:``."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(description="Stage key (normalize) or versioned name (normalize_v1).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The stage's parameters; omitted keys take their defaults.",
    )

    def build(self, seed: int | None = None, tokenizer: str | None = None) -> Stage:
        """Instantiate the stage; a stage with a ``seed`` param gets the recipe seed unless set,
        and one with an optional ``tokenizer`` param (``expand``'s few-shot budget) the
        recipe's tokenizer (its ``length`` stage's) unless set."""
        cls = get_stage(self.key)
        params = dict(self.params)
        fields = cls.Params.model_fields
        if seed is not None and "seed" in fields and "seed" not in params:
            params["seed"] = seed
        if (
            tokenizer is not None
            and "tokenizer" in fields
            and fields["tokenizer"].default is None
            and "tokenizer" not in params
        ):
            params["tokenizer"] = tokenizer
        return cls(params)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Run name; the default output is runs/<name>.")
    seed: int = Field(
        0,
        ge=0,
        lt=2**32,
        description="Seed given to every stage with a seed param (expand, mix, minhash_dedup) unless it sets one.",
    )
    sources: list[SourceConfig] = Field(
        min_length=1,
        description="Inputs, read in this order (dedup keeps the first); names must be unique.",
    )
    stages: list[StageSpec] = Field(
        default_factory=list,
        description="Stages run in order, each a key: {params} entry; a bare key uses defaults.",
    )
    output: str | None = Field(
        None,
        description="Run directory: a local path or s3://bucket/prefix; default runs/<name>.",
    )
    strict: bool = Field(False, description="Fail on the first bad row instead of rejecting it.")
    engine: Literal["local", "ray"] = Field(
        "local",
        description="Executor: local (process pool) or ray (extra [ray]); --engine overrides it.",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster address; default RAY_ADDRESS or a local instance."
    )
    batch_size: int = Field(
        100_000, ge=1, le=100_000_000, description="Rows per shard; fixed for a run and its resume."
    )
    workers: int | None = Field(
        None, ge=1, le=1024, description="Processes for per-batch stages; default: all cores."
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # The name is a folder under runs/: '.', '..' or a path would write (and, with --force,
        # replace) something that is not this run's own directory.
        if value in (".", "..") or value.startswith(".") or any(c in value for c in "/\\\0"):
            raise ValueError(
                f"run name {value!r} must be a plain folder name (no '/', '\\', leading '.'); "
                "use `output:` to choose where the run is written"
            )
        return value

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {dupes}")
        return value

    def output_dir(self) -> RunPath:
        """The run directory: a local path, or an object-storage location (``s3://...``)."""
        return as_run_path(self.output or f"runs/{self.name}")

    def tokenizer(self) -> str | None:
        """The tokenizer the recipe targets: its first ``length`` stage's (default included)."""
        for spec in self.stages:
            cls = get_stage(spec.key)
            if cls.name.rsplit("_v", 1)[0] == "length":
                return str(
                    spec.params.get("tokenizer", cls.Params.model_fields["tokenizer"].default)
                )
        return None

    def build_stages(self) -> list[Stage]:
        tokenizer = self.tokenizer()
        return [spec.build(self.seed, tokenizer) for spec in self.stages]

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["stages"] = [{spec.key: spec.params} for spec in self.stages]
        return data


def _stage_entries(raw: Any) -> list[dict[str, Any]]:
    """Accept ``- normalize``, ``- normalize: {}`` and ``- normalize: null``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RecipeError(
            f"stages: expected a list of `- stage_name: {{params}}` entries, got {type(raw).__name__}"
        )
    specs = []
    for index, entry in enumerate(raw):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RecipeError(
                f"stages.{index}: expected one `stage_name: {{params}}` mapping, got {entry!r}"
            )
        ((key, params),) = entry.items()
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RecipeError(
                f"stages.{index}.{key}: expected a mapping of parameters, got {params!r}"
            )
        specs.append({"key": str(key), "params": params})
    return specs


# A recipe is a few hundred values; YAML aliases (&a ... *a) can make a small file expand to
# billions ("billion laughs"), which every later step (validation, errors, the run key) would walk.
MAX_RECIPE_VALUES = 100_000


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (the second would silently win)."""


def _mapping_without_duplicates(loader: _RecipeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {str(key)[:80]!r}", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_RecipeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def expanded_size(data: Any, limit: int = MAX_RECIPE_VALUES) -> int:
    """How many values ``data`` holds once every shared (aliased) value is counted at each place
    it appears; stops counting past ``limit``. Linear in the distinct values."""
    sizes: dict[int, int] = {}

    def size(value: Any) -> int:
        known = sizes.get(id(value))
        if known is not None:
            return known
        total = 1
        children = (
            [*value.keys(), *value.values()]
            if isinstance(value, dict)
            else value
            if isinstance(value, list)
            else ()
        )
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(value)] = total
        return total

    return size(data)


def load_yaml(text: str, origin: str) -> Any:
    """Parse recipe YAML safely: no duplicate keys, a bounded expansion of aliases."""
    try:
        data = yaml.load(text, Loader=_RecipeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise RecipeError(
            f"{origin}{where}: invalid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    except RecursionError:
        raise RecipeError(f"{origin}: YAML nested too deeply") from None
    try:
        too_big = expanded_size(data) > MAX_RECIPE_VALUES
    except RecursionError:
        raise RecipeError(f"{origin}: YAML nested too deeply") from None
    if too_big:
        raise RecipeError(
            f"{origin}: expands to more than {MAX_RECIPE_VALUES:,} values (YAML aliases "
            "*name repeat an &name value everywhere they appear); a recipe is far smaller"
        )
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``--set a.b.0.c=value``: the value is parsed as YAML (``[a, b]``, ``0.7``, ``true``)."""
    data = copy.deepcopy(data)
    for override in overrides:
        if "=" not in override:
            raise RecipeError(f"--set {override!r}: expected KEY.PATH=VALUE")
        path, raw_value = override.split("=", 1)
        value = load_yaml(raw_value, f"--set {path}")
        parts = path.split(".")
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(
                        f"--set {path}: {where} is not an index of a list of {len(node)}"
                    )
                node = node[int(part)]
            elif isinstance(node, dict):
                if part not in node or node[part] is None:
                    node[part] = {}
                node = node[part]
            else:
                raise RecipeError(f"--set {path}: {where} is not a mapping or list")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise RecipeError(f"--set {path}: {last} is not an index of a list of {len(node)}")
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"--set {path}: cannot set a key on {type(node).__name__}")
    return data


def parse_recipe(data: Any, origin: str = "recipe") -> Recipe:
    """Validate a recipe mapping; every stage's params are validated here too."""
    if not isinstance(data, dict):
        raise RecipeError(
            f"{origin}: expected a mapping at the top level, got {type(data).__name__}"
        )
    data = dict(data)
    raw_stages = data.get("stages")
    data["stages"] = _stage_entries(raw_stages)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        raise RecipeError(f"{origin}: {format_validation_error(error, '')}") from None
    for index, spec in enumerate(recipe.stages):
        try:
            stage_cls = get_stage(spec.key)
        except CurateError as error:
            raise RecipeError(f"{origin}: stages.{index}: {error}") from None
        try:
            stage_cls.Params.model_validate(spec.params)
        except ValidationError as error:
            raise RecipeError(
                f"{origin}: {format_validation_error(error, f'stages.{index}.{spec.key}')}"
            ) from None
        try:
            spec.build(recipe.seed).check_recipe([s.name for s in recipe.sources])
        except CurateError as error:
            raise RecipeError(f"{origin}: stages.{index}.{spec.key}: {error}") from None
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe {path}: cannot read ({exc})") from None
    data = load_yaml(text, f"recipe {path}")
    if overrides:
        if not isinstance(data, dict):
            raise RecipeError(f"recipe {path}: expected a mapping at the top level")
        data = apply_overrides(data, overrides)
    return parse_recipe(data, origin=str(path))
