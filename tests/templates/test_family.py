"""Template families: the project's set, and validation before any run (file and line)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from curate.errors import TemplateError
from curate.templates import load_families, load_family

DOLLY = [
    "closed_qa",
    "open_qa",
    "classification",
    "summarization",
    "information_extraction",
    "brainstorming",
    "creative_writing",
    "general_qa",
]


def test_project_families_cover_the_promised_kinds() -> None:
    families = {f.id: f for f in load_families()}
    generic = families["generic"]
    with_input = [t for t in generic.templates if t.spec.applies_to and t.spec.applies_to.has_input]
    without = [
        t for t in generic.templates if t.spec.applies_to and t.spec.applies_to.has_input is False
    ]
    assert len(generic.templates) >= 10 and with_input and without
    for category in DOLLY:
        family = families[f"dolly_{category}"]
        assert family.spec.applies_to.category == [category]
    assert {t.type for t in families["cot"].templates} == {"cot"}
    assert {t.type for t in families["multiple_choice"].templates} >= {"zs_opt", "fs_opt"}
    assert {t.type for t in families["niv2"].templates} >= {"zs_noopt", "fs_noopt"}
    inversion = [
        f for f in families.values() if f.templates and all(t.inverted for t in f.templates)
    ]
    assert len(inversion) >= 2
    for family in families.values():
        for template in family.templates:
            assert template.id == f"{family.id}/{template.spec.id}"


def test_only_selects_in_order_and_names_unknown_families() -> None:
    assert [f.id for f in load_families(only=["cot", "generic"])] == ["cot", "generic"]
    with pytest.raises(
        TemplateError, match=r"unknown template families \['nope'\]; available: .*generic"
    ):
        load_families(only=["nope"])


FAMILY = """\
id: demo
applies_to: {{has_input: false}}
examples:
  - instruction: Say hi.
    output: Hi!
templates:
  - id: first
    type: zs_noopt
    prompt: |-
      Line one.
      {body}
    completion: "{{{{ output }}}}"
"""


def write(tmp_path: Path, body: str, text: str = FAMILY) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(text.format(body=body))
    return path


def test_a_valid_family_loads(tmp_path: Path) -> None:
    family = load_family(write(tmp_path, "{{ instruction }}"))
    assert [t.id for t in family.templates] == ["demo/first"]


def test_unknown_variable_fails_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "{{ instrucion }}")
    # The prompt is a block scalar starting on line 10; its second line is line 11.
    with pytest.raises(
        TemplateError,
        match=rf"^{path}:11: template demo/first prompt: unknown variable 'instrucion'",
    ):
        load_family(path)


def test_syntax_error_fails_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "{% if input %}unclosed")
    with pytest.raises(TemplateError, match=rf"^{path}:1[01]: .*jinja2 syntax error"):
        load_family(path)


def test_reaching_for_python_internals_is_refused_before_rendering(tmp_path: Path) -> None:
    path = write(tmp_path, "{{ instruction.__class__.__mro__ }}")
    with pytest.raises(
        TemplateError, match=rf"^{path}:11: .*access to '__(class|mro)__' is refused"
    ):
        load_family(path)
    path = write(tmp_path, "{{ instruction['__class__'] }}")
    with pytest.raises(TemplateError, match="refused"):
        load_family(path)


def test_the_sandbox_refuses_what_static_checks_cannot_see(tmp_path: Path) -> None:
    # The attribute name is computed at render time; the sandbox refuses it.
    path = write(tmp_path, "{{ instruction | attr('__cla' ~ 'ss__') }}")
    with pytest.raises(TemplateError, match=r"refused by the sandbox"):
        load_family(path)


def test_include_is_not_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "{% include '/etc/passwd' %}")
    with pytest.raises(TemplateError, match="include is not allowed"):
        load_family(path)


def test_schema_errors_name_the_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "x", FAMILY.replace("type: zs_noopt", "type: zero_shot"))
    with pytest.raises(TemplateError, match=rf"^{path}:8: templates.0.type: "):
        load_family(path)


def test_a_template_no_example_matches_is_an_error(tmp_path: Path) -> None:
    text = FAMILY.replace("applies_to: {{has_input: false}}", "applies_to: {{}}").replace(
        "    type: zs_noopt\n", "    type: zs_noopt\n    applies_to: {{has_input: true}}\n"
    )
    path = write(tmp_path, "{{ input }}", text)
    with pytest.raises(TemplateError, match=r"no example of the family matches its applies_to"):
        load_family(path)


def test_duplicate_family_ids_across_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a", "{{ instruction }}")
    write(tmp_path / "b", "{{ instruction }}")
    with pytest.raises(TemplateError, match="already defined"):
        load_families([tmp_path / "a", tmp_path / "b"])


def test_template_types_of_the_project() -> None:
    types = Counter(t.type for f in load_families() for t in f.templates)
    assert set(types) == {"zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "cot"}
