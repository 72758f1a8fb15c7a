"""Template families (``templates/*.yaml``) and the engine that renders records with them.

- :func:`load_families` loads, validates and compiles families (sandboxed jinja2, strict names).
- :class:`Expander` assigns templates to records (balanced, seeded), assembles few-shot prompts
  and renders them; the ``expand_v1`` stage wraps it.
- :mod:`curate.templates.options` finds and renders answer options.
"""

from curate.templates.expander import Expanded, Expander
from curate.templates.library import DEFAULT_TEMPLATE_DIR, load_families, load_family
from curate.templates.options import OptionsStyle, parse_options, random_style
from curate.templates.render import RecordContext, RenderError, record_context, render
from curate.templates.spec import (
    CONTEXT_VARIABLES,
    AppliesTo,
    Family,
    FamilySpec,
    FewShot,
    Template,
    TemplateSpec,
)

__all__ = [
    "CONTEXT_VARIABLES",
    "DEFAULT_TEMPLATE_DIR",
    "AppliesTo",
    "Expanded",
    "Expander",
    "Family",
    "FamilySpec",
    "FewShot",
    "OptionsStyle",
    "RecordContext",
    "RenderError",
    "Template",
    "TemplateSpec",
    "load_families",
    "load_family",
    "parse_options",
    "random_style",
    "record_context",
    "render",
]
