"""The text language is detected on: prose only (code blocks, inline code, URLs, e-mails removed)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curate.util.text import collapse_whitespace

_FENCED = r"(?s)```.*?(?:```|$)"
_INLINE_CODE = r"`[^`\n]{1,200}`"
_URL = r"(?i)\b(?:https?://|www\.)\S+"
_EMAIL = r"[\w.+-]+@[\w-]+\.[\w.-]+"
_HTML_TAG = r"</?[A-Za-z][^<>]{0,200}>"


def prose(values: pa.Array, max_chars: int) -> pa.Array:
    """Remove code blocks, inline code, URLs, e-mails and HTML tags; collapse whitespace; cut to ``max_chars``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    out = pc.fill_null(values, "")
    for pattern in (_FENCED, _INLINE_CODE, _URL, _EMAIL, _HTML_TAG):
        out = pc.replace_substring_regex(out, pattern, " ")
    out = pc.utf8_trim_whitespace(collapse_whitespace(out))  # r"\s+" -> " ", by byte
    if max_chars > 0:
        out = pc.utf8_slice_codeunits(out, 0, max_chars)
    return out
