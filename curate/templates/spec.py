"""Template families as data: the specs a family file validates against, and compiled families.

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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
