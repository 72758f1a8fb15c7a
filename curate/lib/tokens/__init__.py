"""Exact token counts under a chat template, with a tokenizer that never downloads.

- :func:`load_tokenizer`: ``cl100k_base`` (tiktoken's offline copy) or a local ``tokenizer.json``
  (:mod:`curate.lib.tokens.tokenizer`); extra ``curate[tokens]``.
- :func:`load_chat_template`: a shipped template (``chatml``, ``llama3``, ``mistral``, ``gemma``,
  ``alpaca``) or one of your own, rendered as ``apply_chat_template`` does
  (:mod:`curate.lib.tokens.chat`).
- :func:`conversation`: a record's turns; :func:`count_conversations`: prompt and total tokens
  (:mod:`curate.lib.tokens.count`).
"""

from __future__ import annotations

from curate.lib.tokens.chat import (
    SHIPPED_TEMPLATES,
    ChatTemplate,
    Conversation,
    TemplateFailure,
    conversation,
    last_assistant,
    load_chat_template,
    table_conversations,
)
from curate.lib.tokens.count import Counts, count_conversations, rendered_texts
from curate.lib.tokens.tokenizer import INSTALL_HINT, Tokenizer, load_tokenizer

__all__ = [
    "INSTALL_HINT",
    "SHIPPED_TEMPLATES",
    "ChatTemplate",
    "Conversation",
    "Counts",
    "TemplateFailure",
    "Tokenizer",
    "conversation",
    "count_conversations",
    "last_assistant",
    "load_chat_template",
    "load_tokenizer",
    "rendered_texts",
    "table_conversations",
]
