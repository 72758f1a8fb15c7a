"""Untrusted text (run names, licenses, categories, record text) made safe for where it lands:
Markdown/HTML in dataset cards and run READMEs, and terminals."""

from __future__ import annotations

import re

# Characters that start Markdown inline markup, or HTML, or end a table cell.
_MARKDOWN = {
    "\\": "\\\\",
    "`": "\\`",
    "*": "\\*",
    "[": "\\[",
    "]": "\\]",
    "|": "\\|",
    "~": "\\~",
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
}
_MARKDOWN_RE = re.compile("|".join(re.escape(c) for c in _MARKDOWN))
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
# C0 and C1 control characters except tab and newline: ESC starts terminal escape sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def md_text(value: object) -> str:
    """Plain text inside a Markdown line or table cell: no markup, no HTML, one line."""
    text = _LINE_BREAKS.sub(" ", terminal_safe(str(value)))
    return _MARKDOWN_RE.sub(lambda m: _MARKDOWN[m.group(0)], text)


def md_code(value: object) -> str:
    """A Markdown code span that ``value`` cannot end early (and that keeps a table intact)."""
    text = _LINE_BREAKS.sub(" ", terminal_safe(str(value))).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def terminal_safe(text: str) -> str:
    """Control characters shown as ``\\x1b``-style escapes, so text cannot drive a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


__all__ = ["md_code", "md_text", "terminal_safe"]
