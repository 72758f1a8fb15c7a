"""Compiling template families: the one sandboxed jinja2 environment, and every template of a
validated family parsed and checked against it (unknown names, private attributes, imports)
before anything renders. Errors name the family file and line (see :func:`yaml_lines`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import yaml

from curate.errors import TemplateError
from curate.templates.budget import BudgetedEnvironment
from curate.templates.spec import (
    CONTEXT_VARIABLES,
    FEW_SHOT_TYPES,
    Family,
    FamilySpec,
    FewShot,
    Template,
    TemplateSpec,
)

# Path in a YAML document -> (0-based line of the value, scalar style).
YamlLines = dict[tuple[Any, ...], tuple[int, str | None]]


def make_environment() -> BudgetedEnvironment:
    """The one jinja2 environment: sandboxed and budgeted (:mod:`curate.templates.budget`), strict
    about undefined names, no loader (no include), no ``lipsum``."""
    return BudgetedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


ENV = make_environment()
_ALLOWED_NAMES = set(CONTEXT_VARIABLES) | set(ENV.globals)


def yaml_lines(node: yaml.Node) -> YamlLines:
    """Path in the YAML document -> (0-based line of the value, scalar style)."""
    lines: YamlLines = {}

    def walk(current: yaml.Node, path: tuple[Any, ...]) -> None:
        style = current.style if isinstance(current, yaml.ScalarNode) else None
        lines[path] = (current.start_mark.line, style)
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                walk(value, (*path, key.value))
                lines.setdefault((*path, key.value, "<key>"), (key.start_mark.line, None))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                walk(item, (*path, index))

    walk(node, ())
    return lines


def line_for(lines: YamlLines, path: tuple[Any, ...]) -> int:
    """1-based line of the deepest known prefix of ``path``."""
    for end in range(len(path), -1, -1):
        found = lines.get(tuple(path[:end]))
        if found is not None:
            return found[0] + 1
    return 1


def _source_line(lines: YamlLines, path: tuple[Any, ...], template_line: int) -> int:
    """File line of line ``template_line`` (1-based) of the jinja string at ``path``."""
    line, style = lines.get(path, (0, None))
    if style in ("|", ">"):
        return line + 1 + template_line  # block scalars start on the line after the indicator
    return line + template_line


def compile_family(spec: FamilySpec, path: Path, lines: YamlLines) -> Family:
    """Compile every template of a validated family (``lines``: of its file, for errors)."""
    templates = [
        compile_template(spec, index, tspec, path, lines)
        for index, tspec in enumerate(spec.templates)
    ]
    return Family(spec, path, templates)


def compile_template(
    family: FamilySpec,
    index: int,
    spec: TemplateSpec,
    path: Path,
    lines: YamlLines,
) -> Template:
    """Template ``index`` of a family, parsed and checked; its few-shot settings resolved."""
    few_shot: FewShot | None = None
    if spec.few_shot is not None:
        few_shot = spec.few_shot
    elif spec.type in FEW_SHOT_TYPES:
        few_shot = family.few_shot
    fields: dict[str, tuple[str, tuple[Any, ...]]] = {
        "prompt": (spec.prompt, ("templates", index, "prompt")),
        "completion": (spec.completion, ("templates", index, "completion")),
    }
    if spec.answer_choices is not None:
        fields["answer_choices"] = (spec.answer_choices, ("templates", index, "answer_choices"))
    if few_shot is not None and few_shot.prefix:
        prefix_path = (
            ("templates", index, "few_shot", "prefix") if spec.few_shot else ("few_shot", "prefix")
        )
        fields["prefix"] = (few_shot.prefix, prefix_path)
    compiled: dict[str, jinja2.Template] = {}
    where: dict[str, str] = {}
    for name, (source, yaml_path) in fields.items():
        label = f"template {family.id}/{spec.id} {name}"
        where[name] = f"{path}:{_source_line(lines, yaml_path, 1)}"
        try:
            ast = ENV.parse(source)
            _check_ast(ast, source, label, path, lines, yaml_path)
            compiled[name] = ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            line = _source_line(lines, yaml_path, exc.lineno or 1)
            raise TemplateError(
                f"{path}:{line}: {label}: jinja2 syntax error: {exc.message}"
            ) from None
        except (RecursionError, MemoryError):
            raise TemplateError(
                f"{where[name]}: {label}: too deeply nested or too large to compile"
            ) from None
    return Template(
        family=family.id,
        spec=spec,
        prompt=compiled["prompt"],
        completion=compiled["completion"],
        answer_choices=compiled.get("answer_choices"),
        prefix=compiled.get("prefix"),
        few_shot=few_shot,
        where=where,
    )


def _check_ast(
    ast: jinja2.nodes.Template,
    source: str,
    label: str,
    path: Path,
    lines: YamlLines,
    yaml_path: tuple[Any, ...],
) -> None:
    """Refuse unknown variables and any reach for private attributes, before anything renders."""
    for access in ast.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        name: Any
        if isinstance(access, jinja2.nodes.Getattr):
            name = access.attr
        else:
            name = _const(access.arg) if isinstance(access, jinja2.nodes.Getitem) else None
        if isinstance(name, str) and name.startswith("_"):
            line = _source_line(lines, yaml_path, access.lineno)
            raise TemplateError(
                f"{path}:{line}: {label}: access to {name!r} is refused (templates run in a sandbox)"
            )
    for node_type, what in (
        (jinja2.nodes.Import, "import"),
        (jinja2.nodes.FromImport, "import"),
        (jinja2.nodes.Include, "include"),
        (jinja2.nodes.Extends, "extends"),
    ):
        for statement in ast.find_all(node_type):
            line = _source_line(lines, yaml_path, statement.lineno)
            raise TemplateError(f"{path}:{line}: {label}: {what} is not allowed in a template")
    unknown = sorted(jinja2.meta.find_undeclared_variables(ast) - _ALLOWED_NAMES)
    if unknown:
        name = unknown[0]
        template_line = next(
            (
                i
                for i, text in enumerate(source.split("\n"), 1)
                if re.search(rf"\b{re.escape(name)}\b", text)
            ),
            1,
        )
        line = _source_line(lines, yaml_path, template_line)
        raise TemplateError(
            f"{path}:{line}: {label}: unknown variable {name!r}; available: {', '.join(sorted(CONTEXT_VARIABLES))}"
        )


def _const(node: jinja2.nodes.Node) -> Any:
    return node.value if isinstance(node, jinja2.nodes.Const) else None
