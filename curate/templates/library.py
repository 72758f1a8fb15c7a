"""The family library: finding family files in template directories and loading them.

:func:`load_family` parses, validates, compiles (:mod:`curate.templates.compile`) and checks
(:func:`curate.templates.render.check_family`) one file; :func:`load_families` loads directories
(the project's ``templates/`` by default), cached until a file changes.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from curate.errors import TemplateError
from curate.templates.compile import compile_family, line_for, yaml_lines
from curate.templates.render import check_family
from curate.templates.spec import Family, FamilySpec


def load_family(path: Path) -> Family:
    """Parse, validate and compile one family file. Every problem names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read template family ({exc.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise TemplateError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or node is None:
        raise TemplateError(
            f"{path}:1: a template family is a mapping with id, applies_to, examples, templates"
        )
    lines = yaml_lines(node)
    try:
        spec = FamilySpec.model_validate(data)
    except ValidationError as error:
        item = error.errors()[0]
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc)
        line = line_for(lines, loc)
        raise TemplateError(f"{path}:{line}: {key}: {item['msg']}") from None
    family = compile_family(spec, path, lines)
    check_family(family)
    return family


def _default_template_dir() -> Path:
    """The project's ``templates/``: beside the package in a checkout or editable install, else
    where a wheel installs it (``<prefix>/share/curate/templates``, see pyproject data-files)."""
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "curate" / "templates"


DEFAULT_TEMPLATE_DIR = _default_template_dir()


def family_files(directories: list[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            raise TemplateError(f"template directory {directory} does not exist")
        files.extend(sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml")))
    return files


@functools.lru_cache(maxsize=16)
def _load_cached(paths: tuple[Path, ...], stamps: tuple[float, ...]) -> tuple[Family, ...]:
    del stamps  # part of the cache key only: an edited file is reloaded
    return tuple(load_family(p) for p in paths)


def load_families(
    directories: list[Path] | None = None, only: list[str] | None = None
) -> list[Family]:
    """Every family in ``directories`` (default: the project's ``templates/``), optionally a subset.

    Family ids must be unique across the directories; ``only`` names must all exist.
    """
    dirs = directories if directories is not None else [DEFAULT_TEMPLATE_DIR]
    files = tuple(family_files(dirs))
    families = list(_load_cached(files, tuple(p.stat().st_mtime for p in files)))
    seen: dict[str, Path] = {}
    for family in families:
        if family.id in seen:
            raise TemplateError(
                f"{family.path}: family id {family.id!r} is already defined in {seen[family.id]}"
            )
        seen[family.id] = family.path
    if only is not None:
        missing = [name for name in only if name not in seen]
        if missing:
            raise TemplateError(
                f"unknown template families {missing}; available: {', '.join(sorted(seen))}"
            )
        order = {name: i for i, name in enumerate(only)}
        families = sorted((f for f in families if f.id in order), key=lambda f: order[f.id])
    return families
