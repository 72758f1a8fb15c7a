"""A record's conversation: the turns a chat export writes and a chat template renders.

One definition for both, so that the tokens the ``length`` stage counts are those of the text a
trainer is given (``curate export --chat`` / ``--for``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The record columns chat_messages reads.
CHAT_MESSAGE_COLUMNS = (
    "messages",
    "instruction",
    "input",
    "output",
    "rationale",
    "options",
    "template_id",
)


def chat_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The conversation of one record, as ``[{role, content}, ...]``.

    ``messages`` when the record has them (multi-turn sources, and every record a run rendered to
    messages; roles as curate stores them: system, user, assistant, tool_call, tool). Otherwise one
    user turn (``instruction``, then a blank line and ``input`` when there is one; answer choices
    as an ``OPTIONS:`` list when no template rendered them) and one assistant turn (``output``,
    preceded by the ``rationale`` and a blank line when the output does not already contain it:
    reasoning first, then the answer).
    """
    messages = record.get("messages")
    if messages:
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    user = record.get("instruction") or ""
    extra = record.get("input") or ""
    if extra.strip():
        user = f"{user}\n\n{extra}" if user else extra
    options = record.get("options") or []
    if options and not record.get("template_id") and not all(o in user for o in options):
        user += "\n\nOPTIONS:\n" + "\n".join(f"- {o}" for o in options)
    answer = record.get("output") or ""
    rationale = (record.get("rationale") or "").strip()
    if rationale and rationale not in answer:
        answer = f"{rationale}\n\n{answer}" if answer else rationale
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
