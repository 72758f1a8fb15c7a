"""Template families: YAML files of jinja2 templates, loaded, validated and compiled before any run.

A family file::

    id: dolly_closed_qa
    description: Answer a question from a reference passage.
    applies_to: {category: [closed_qa]}          # which records the family is for
    few_shot: {k: 2, separator: "\\n\\n", max_chars: 6000}   # defaults for its fs_* templates
    examples:                                     # rendered by `curate templates render`
      - {instruction: ..., input: ..., output: ...}
    templates:
      - id: passage_first
        type: zs_noopt                            # zs_opt / zs_noopt / fs_opt / fs_noopt / cot
        inverted: false
        applies_to: {has_input: true}             # optional, narrows the family's filter
        prompt: "{{ input }}\\n\\n{{ instruction }}"
        completion: "{{ output }}"

Every string is a jinja2 template rendered in a ``SandboxedEnvironment`` with ``StrictUndefined``:
a reference to a variable that does not exist, a syntax error, or a reach for Python internals
(``__class__``) fails at load time with the file and line.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
import jinja2.nodes
import yaml
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curate.errors import TemplateError

TemplateType = Literal["zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "cot"]
FEW_SHOT_TYPES = ("fs_opt", "fs_noopt")

# What a template can use. Text fields are "" when missing (never None), lists are [] .
CONTEXT_VARIABLES: dict[str, str] = {
    "id": "the record id",
    "instruction": "the instruction (NIv2: the task definition)",
    "input": "Alpaca input / Dolly context / NIv2 instance input ('' when none)",
    "output": "the reference response",
    "rationale": "chain-of-thought rationale ('' when none)",
    "question": "the text the options were written in, without them (else the instruction)",
    "options": "answer options as a list ([] when none)",
    "options_block": "the options rendered in this template's style ('' when none)",
    "answer": "the target: the marker ('(B)', '2') or text of the right option, else the output",
    "answer_text": "the text of the right option, else the output",
    "task": "task name ('' when none)",
    "category": "Dolly category ('' when none)",
    "task_source": "flan_cot, niv2, ... ('' when none)",
    "source": "source name from the recipe",
    "lang": "language code ('' when unknown)",
}
_ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")


# Record fields a template may use (and a family's ``examples`` may set).
EXAMPLE_FIELDS = (
    "instruction",
    "input",
    "output",
    "rationale",
    "options",
    "task",
    "category",
    "task_source",
    "source",
    "lang",
)


def _snake_case_id(value: str) -> str:
    """Template and family ids: lower_snake_case, so ``<family>/<template>`` is a safe key."""
    if not _ID.match(value):
        raise ValueError("must be lower_snake_case (letters, digits, underscores)")
    return value


class AppliesTo(BaseModel):
    """Which records a family (or one of its templates) is for. Every given key must hold.

    Text keys take a list of values or globs (``cot_*``); ``null`` in the list matches a
    missing value.
    """

    model_config = ConfigDict(extra="forbid")

    task: list[str | None] | None = None
    category: list[str | None] | None = None
    task_source: list[str | None] | None = None
    source: list[str | None] | None = None
    lang: list[str | None] | None = None
    has_input: bool | None = None
    has_options: bool | None = None
    has_rationale: bool | None = None
    output_in: list[str] | None = Field(
        None, description="The output is one of these (case-insensitive)."
    )
    min_output_chars: int | None = Field(None, ge=0)
    max_output_chars: int | None = Field(None, ge=0)
    not_: AppliesTo | None = Field(
        None, alias="not", description="Records matching this are excluded."
    )

    def describe(self) -> str:
        parts = []
        for key, value in self.model_dump(exclude_none=True, by_alias=True).items():
            if key == "not":
                parts.append(f"not({AppliesTo.model_validate(value).describe()})")
            else:
                parts.append(f"{key}={value}")
        return ", ".join(parts) or "all records"


class FewShot(BaseModel):
    """Few-shot assembly: ``k`` exemplars of the same task before the record's own prompt."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(2, ge=1, le=32)
    separator: str = Field(
        "\n\n", description="Between the prefix, the shots and the final prompt."
    )
    shot_separator: str = Field("\n", description="Between a shot's prompt and its completion.")
    prefix: str = Field(
        "", description="Template rendered once before the shots (e.g. the task definition)."
    )
    max_chars: int | None = Field(
        6000, ge=1, description="Budget for prompt + completion; shots are dropped from the end."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Same, in approximate tokens (words and punctuation)."
    )


class TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    type: TemplateType
    inverted: bool = False
    prompt: str = Field(min_length=1)
    completion: str = Field(min_length=1)
    answer_choices: str | None = Field(
        None, description="Template rendering to choices separated by '|||'."
    )
    options_style: Literal["fixed", "random"] = "fixed"
    applies_to: AppliesTo | None = None
    few_shot: FewShot | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _snake_case_id(value)

    @model_validator(mode="after")
    def _shots(self) -> TemplateSpec:
        if self.few_shot is not None and self.type not in (*FEW_SHOT_TYPES, "cot"):
            raise ValueError(
                f"few_shot is only for fs_opt, fs_noopt or cot templates, not {self.type}"
            )
        return self


class FamilySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str = ""
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    few_shot: FewShot = Field(default_factory=FewShot)
    examples: list[dict[str, Any]] = Field(min_length=1)
    templates: list[TemplateSpec] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _snake_case_id(value)

    @field_validator("templates")
    @classmethod
    def _unique(cls, value: list[TemplateSpec]) -> list[TemplateSpec]:
        ids = [t.id for t in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"template ids must be unique in a family; repeated: {dupes}")
        return value

    @field_validator("examples")
    @classmethod
    def _examples(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        allowed = set(EXAMPLE_FIELDS)
        for index, example in enumerate(value):
            unknown = sorted(set(example) - allowed)
            if unknown:
                raise ValueError(
                    f"example {index}: unknown keys {unknown}; allowed: {sorted(allowed)}"
                )
        return value


def make_environment() -> SandboxedEnvironment:
    """The one jinja2 environment: sandboxed, strict about undefined names, no loader (no include)."""
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


ENV = make_environment()
_ALLOWED_NAMES = set(CONTEXT_VARIABLES) | set(ENV.globals)


@dataclass
class Template:
    """One compiled template of a family."""

    family: str
    spec: TemplateSpec
    prompt: jinja2.Template
    completion: jinja2.Template
    answer_choices: jinja2.Template | None
    prefix: jinja2.Template | None
    few_shot: FewShot | None  # resolved (template's, else the family's) for few-shot templates
    where: dict[str, str] = field(default_factory=dict)  # field -> "file:line"

    @property
    def id(self) -> str:
        """``<family>/<template>``: a query can group by family with ``split_part``."""
        return f"{self.family}/{self.spec.id}"

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def inverted(self) -> bool:
        return self.spec.inverted


@dataclass
class Family:
    spec: FamilySpec
    path: Path
    templates: list[Template]

    @property
    def id(self) -> str:
        return self.spec.id


# --- loading ---------------------------------------------------------------------------------


def _node_lines(node: yaml.Node) -> dict[tuple[Any, ...], tuple[int, str | None]]:
    """Path in the YAML document -> (0-based line of the value, scalar style)."""
    lines: dict[tuple[Any, ...], tuple[int, str | None]] = {}

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


def _line_for(lines: dict[tuple[Any, ...], tuple[int, str | None]], path: tuple[Any, ...]) -> int:
    """1-based line of the deepest known prefix of ``path``."""
    for end in range(len(path), -1, -1):
        found = lines.get(tuple(path[:end]))
        if found is not None:
            return found[0] + 1
    return 1


def _source_line(
    lines: dict[tuple[Any, ...], tuple[int, str | None]], path: tuple[Any, ...], template_line: int
) -> int:
    """File line of line ``template_line`` (1-based) of the jinja string at ``path``."""
    line, style = lines.get(path, (0, None))
    if style in ("|", ">"):
        return line + 1 + template_line  # block scalars start on the line after the indicator
    return line + template_line


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
    lines = _node_lines(node)
    try:
        spec = FamilySpec.model_validate(data)
    except ValidationError as error:
        item = error.errors()[0]
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc)
        line = _line_for(lines, loc)
        raise TemplateError(f"{path}:{line}: {key}: {item['msg']}") from None
    templates = [
        _compile(spec, index, tspec, path, lines) for index, tspec in enumerate(spec.templates)
    ]
    family = Family(spec, path, templates)
    from curate.templates.render import check_family  # late: render imports this module

    check_family(family)
    return family


def _compile(
    family: FamilySpec,
    index: int,
    spec: TemplateSpec,
    path: Path,
    lines: dict[tuple[Any, ...], tuple[int, str | None]],
) -> Template:
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
        except jinja2.TemplateSyntaxError as exc:
            line = _source_line(lines, yaml_path, exc.lineno or 1)
            raise TemplateError(
                f"{path}:{line}: {label}: jinja2 syntax error: {exc.message}"
            ) from None
        _check_ast(ast, source, label, path, lines, yaml_path)
        compiled[name] = ENV.from_string(source)
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
    lines: dict[tuple[Any, ...], tuple[int, str | None]],
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


# --- the library -----------------------------------------------------------------------------


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
