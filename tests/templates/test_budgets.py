"""Template budgets: hostile templates fail fast with a clear error, never a hang or a traceback.

The risky cases run in a subprocess limited to 2 GiB of address space and 60 s, so that a budget
that does not hold fails the test instead of the machine. Templates are written at test time.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from curate.templates import budget
from curate.templates.budget import BudgetExceeded
from curate.templates.compile import ENV
from curate.templates.render import RecordContext, RenderError, record_context, render

ROOT = Path(__file__).resolve().parents[2]
MEMORY = 2 << 30  # bytes of address space for a hostile case

FAMILY = """\
id: hostile
examples:
  - instruction: Say hi.
    output: Hi!
templates:
  - id: t
    type: zs_noopt
    prompt: |-
      Line one.
      {body}
    completion: "{{{{ output }}}}"
"""
BODY_LINE = 10  # the line of {body} in FAMILY


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run_limited(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        cwd=ROOT,
    )


# --- at load: a family's own examples exceed a budget ---------------------------------------------

HOSTILE = {
    "huge_repeat": ("{{ 'a' * 10**10 }}", r"size budget: str \* 10,000,000,000"),
    "doubling": (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        r"size budget: '~' would make 131,072",
    ),
    "doubling_plus": (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
        r"size budget: str \+ str",
    ),
    "recursive_macro": (
        "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
        r"depth budget: calls .* nested over 50 deep",
    ),
    "big_range": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        r"range budget: range\(\) of 99,999 items \(at most 10,000\)",
    ),
    "nested_loops": (
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        r"steps budget: more than 1,000,000 steps",
    ),
    "huge_render": (
        "{% for i in range(3000) %}{{ 'x' * 100000 }}{% endfor %}",
        r"memory budget: .*more than 1,000,000 characters",
    ),
    "copies_by_macro": (
        "{% macro m(s) %}{{ s }}{% endmacro %}{% set big = 'x' * 90000 %}"
        "{% for i in range(10000) %}{{ m(big) }}{% endfor %}",
        r"memory budget: a macro or block's output: more than 1,000,000 characters",
    ),
    "copies_by_slice": (
        "{% set big = 'x' * 90000 %}{% for i in range(10000) %}{{ big[i:] }}{% endfor %}",
        r"memory budget: a slice",
    ),
    "huge_integer": ("{{ 10 ** 100000000 }}", r"integer budget: '\*\*'"),
    "padding": ("{{ '%0999999999d' % 1 }}", r"size budget: '%' formatting"),
    "list_growth": (
        "{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) or '' }}{% endfor %}",
        r"size budget: list.extend",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_template_fails_at_load_with_file_and_line(tmp_path: Path, case: str) -> None:
    body, expected = HOSTILE[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(FAMILY.format(body=body))
    proc = run_limited(
        "-m", "curate.cli", "templates", "list", "--no-builtin", "--dir", str(tmp_path)
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"{path}:{BODY_LINE}: template hostile/t: example 0 exceeds a template budget" in message
    assert "hostile/t prompt line 2:" in message
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ lipsum(n=1000000) }}", "unknown variable 'lipsum'"),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "too deeply nested or too large"),
    ],
)
def test_removed_globals_and_deep_nesting_fail_at_load(
    tmp_path: Path, body: str, expected: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(FAMILY.format(body=body))
    proc = run_limited(
        "-m", "curate.cli", "templates", "list", "--no-builtin", "--dir", str(tmp_path)
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert str(path) in message and expected in message, message


def test_a_budget_in_the_completion_names_its_line(tmp_path: Path) -> None:
    from curate.errors import TemplateError
    from curate.templates import load_family

    path = tmp_path / "late.yaml"
    path.write_text(
        FAMILY.format(body="{{ instruction }}").replace(
            'completion: "{{ output }}"',
            "completion: |-\n      {{ output }}\n      {{ range(50000)|list }}",
        )
    )
    with pytest.raises(TemplateError, match=rf"{path}:13: .*completion line 2: range budget"):
        load_family(path)


# --- at run time: one record's data exceeds a budget --------------------------------------------

RUNTIME_FAMILY = """\
id: bomb
examples:
  - instruction: Say hi.
    output: Hi!
templates:
  - id: size
    type: zs_noopt
    prompt: "Q: {{ instruction }}{% if 'SIZE' in input %}{{ input * 100000000 }}{% endif %}"
    completion: "{{ output }}"
  - id: depth
    type: zs_noopt
    prompt: |-
      {% macro r(n) %}{% if n < (input|length) %}{{ r(n + 1) }}{% endif %}{% endmacro %}
      Q: {{ instruction }}{% if 'DEPTH' in input %}{{ r(0) }}{% endif %}
    completion: "{{ output }}"
  - id: loops
    type: zs_noopt
    prompt: "Q: {{ instruction }}{% if 'LOOPS' in input %}{% for a in input %}{% for b in input %}{% for c in input %}.{% endfor %}{% endfor %}{% endfor %}{% endif %}"
    completion: "{{ output }}"
  - id: output
    type: zs_noopt
    prompt: "Q: {{ instruction }}"
    completion: "{{ output }}{% if 'BIG' in input %}{% for i in range(5000) %}{{ input }}{% endfor %}{% endif %}"
"""

RUN_STAGE = """
import json, sys
from pathlib import Path
import pyarrow as pa
from curate.ingest import read_file
from curate.stages.expand import ExpandTemplates

table = read_file(Path(sys.argv[2]), source="s").records
stage = ExpandTemplates(builtin=False, template_dirs=[sys.argv[1]], per_record=4)
kept, rejected = stage.run(table)
ids = dict(zip(table.column("id").to_pylist(), table.column("instruction").to_pylist()))
print(json.dumps({
    "kept": sorted([ids[p], t] for p, t in zip(kept.column("parent_id").to_pylist(), kept.column("template_id").to_pylist())),
    "rejected": sorted([ids[r["parent_id"]], r["template_id"], r["reason"], r["detail"]] for r in rejected.to_pylist()),
    "lengths": max(len(p) for p in kept.column("instruction").to_pylist()),
}))
"""


def test_a_record_that_exceeds_a_budget_is_rejected_with_its_template(tmp_path: Path) -> None:
    families = tmp_path / "families"
    families.mkdir()
    (families / "bomb.yaml").write_text(RUNTIME_FAMILY)
    records = [
        {"instruction": "plain", "input": "nothing to see", "output": "fine"},
        {"instruction": "size", "input": "SIZE", "output": "fine"},
        {"instruction": "depth", "input": "DEPTH" + "d" * 200, "output": "fine"},
        {"instruction": "loops", "input": "LOOPS" + "l" * 1000, "output": "fine"},
        {"instruction": "big", "input": "BIG " * 1000, "output": "fine"},
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = run_limited("-c", RUN_STAGE, str(families), str(data))
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    rejected = {
        (name, template): (reason, detail) for name, template, reason, detail in result["rejected"]
    }
    assert set(rejected) == {
        ("size", "bomb/size"),
        ("depth", "bomb/depth"),
        ("loops", "bomb/loops"),
        ("big", "bomb/output"),
    }
    assert {reason for reason, _ in rejected.values()} == {"template_budget"}
    assert rejected[("size", "bomb/size")][1].startswith(
        "bomb/size prompt line 1: size budget: str * 100,000,000"
    )
    assert "depth budget" in rejected[("depth", "bomb/depth")][1]
    assert "steps budget" in rejected[("loops", "bomb/loops")][1]
    assert "output budget: 20,000,004 characters" in rejected[("big", "bomb/output")][1]
    kept = {tuple(pair) for pair in result["kept"]}
    assert {t for name, t in kept if name == "plain"} == {
        "bomb/size",
        "bomb/depth",
        "bomb/loops",
        "bomb/output",
    }
    assert len(kept) == 5 * 4 - len(rejected)
    assert result["lengths"] < 10_000


def _context(**values: Any) -> RecordContext:
    row = {"id": "r1", "instruction": "Do it.", "input": "", "output": "done", **values}
    return record_context(row)


def _template(tmp_path: Path, prompt: str, completion: str = "{{ output }}") -> Any:
    from curate.templates import load_family

    path = tmp_path / "one.yaml"
    path.write_text(
        "id: one\nexamples:\n  - {instruction: a, output: b}\ntemplates:\n"
        f"  - id: t\n    type: zs_noopt\n    prompt: {json.dumps(prompt)}\n"
        f"    completion: {json.dumps(completion)}\n"
    )
    return load_family(path).templates[0]


def test_the_time_budget_rejects_a_slow_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = _template(
        tmp_path,
        "{{ instruction }}{% if input %}{% for i in range(10000) %}{% for j in range(90) %}"
        "{{ input.count('ab') }}{% endfor %}{% endfor %}{% endif %}",
    )
    monkeypatch.setattr(budget, "MAX_SECONDS", 0.05)
    with pytest.raises(RenderError) as caught:
        render(template, _context(input="ab" * 20_000), 0)
    assert caught.value.reason == "template_budget"
    assert "time budget: rendering took more than 0.05 s" in caught.value.detail


def test_a_long_record_gets_a_larger_size_budget(tmp_path: Path) -> None:
    long = "word " * 30_000  # 150,000 characters: more than MAX_CHARS
    once = _template(tmp_path, "{{ instruction }} {{ input }}")
    assert len(render(once, _context(input=long), 0).prompt) > budget.MAX_CHARS
    thrice = _template(tmp_path, "{{ instruction }}{{ input }}{{ input }}{{ input }}")
    with pytest.raises(RenderError, match=r"output budget: 450,0\d\d characters of output"):
        render(thrice, _context(input=long), 0)


def test_budgets_outside_a_render_still_apply() -> None:
    # compile-time constant folding must not build a huge value either
    template = ENV.from_string("{{ 'x'|center(1000000000) }}")
    with pytest.raises(BudgetExceeded, match="size budget: the center filter"):
        template.render()
    assert ENV.from_string("{{ range(3)|join(',') }}").render() == "0,1,2"
    assert "lipsum" not in ENV.globals


ORDINARY = [
    "{{ instruction ~ ' / ' ~ input }}",
    "{% for o in options %}{{ loop.index }}. {{ o }}{% if not loop.last %}\n{% endif %}{% endfor %}",
    "{% for o in options %}{{ loop.revindex }}/{{ loop.length }} {{ loop.cycle('a', 'b') }}{% else %}none{% endfor %}",
    "{% for o in [] %}x{% else %}empty{% endfor %}",
    "{% for o in options if o != 'B' %}{{ o|lower }}{% endfor %}",
    "{% for x in [[1, [2]], [3]] recursive %}[{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}]{% endfor %}",
    "{% macro item(o, n) %}({{ n }}) {{ o }}{% endmacro %}{% for o in options %}{{ item(o, loop.index) }} {% endfor %}",
    "{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}{{ instruction|upper }}{% endcall %}",
    "{% set captured %}{{ input }}!{% endset %}{{ captured * 2 }}",
    "{% filter upper %}{{ instruction }} {{ input }}{% endfilter %}",
    "{{ options|join(', ') }} | {{ options|map('upper')|join }} | {{ options|select('ne', 'A')|list }}",
    "{{ '%s: %d%%' % (instruction, 42) }} {{ '{}-{x}'.format(input, x=output) }} {{ '%s'|format(options) }}",
    "{{ input|replace('i', 'I') }} {{ input|center(30) }} {{ input|indent(2, true) }} {{ input|wordwrap(5) }}",
    "{{ options|batch(2)|list }} {{ options|slice(2)|list }} {{ [[1], [2]]|sum(start=[]) }} {{ options|tojson }}",
    "{{ 2 ** 10 }} {{ 3 * 4 }} {{ [1] * 3 }} {{ (1, 2) + (3,) }} {{ 'ab' * 3 }} {{ 7 % 3 }} {{ 10 // 3 }}",
    "{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
    "{{ input.split()|length }} {{ ', '.join(options) }} {{ input.upper().replace('S', '$') }} {{ options[1:] }}",
    "{{ dict(a=1)|dictsort }} {{ options|first }} {{ options|last }} {{ input|truncate(12) }} {{ input|title }}",
]


@pytest.mark.parametrize("source", ORDINARY)
def test_ordinary_templates_render_as_without_budgets(source: str) -> None:
    plain = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )
    values = {
        "instruction": "Pick one.",
        "input": "this is some input text",
        "output": "B",
        "options": ["A", "B", "C"],
    }
    assert ENV.from_string(source).render(values) == plain.from_string(source).render(values)
