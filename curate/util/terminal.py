"""A rich Console that cannot be driven by the text it prints.

Record text, categories, file names and error messages reach the terminal; an ESC or OSC sequence
in them (``\\x1b]0;title\\x07``, ``\\x1b[2J``) would retitle, clear or recolour the user's terminal.
Rich passes such characters through, so every console curate prints with shows them as visible
escapes instead; rich's own styling and cursor control are unaffected.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.segment import Segment

from curate.util.markup import terminal_safe


class SafeConsole(Console):
    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        safe = (
            segment if segment.control else Segment(terminal_safe(segment.text), segment.style)
            for segment in buffer
        )
        return super()._render_buffer(safe)


def console(**options: Any) -> Console:
    """A console for curate's terminal output (``rich.console.Console`` options)."""
    return SafeConsole(**options)


__all__ = ["SafeConsole", "console"]
