"""Token counts of conversations under a chat template.

``prompt``: the tokens of the template rendered on every turn before the last assistant turn,
with ``add_generation_prompt=True`` (what the model reads before it answers); ``total``: the tokens
of the template rendered on the whole conversation; ``completion = total - prompt``. A
conversation without an assistant turn is all prompt (rendered with the generation prompt).

Each count equals ``len(tokenizer.encode(rendered text))``. When the full rendering starts with
the prompt rendering and the tokenizer is certain to split there
(:meth:`~curate.lib.tokens.tokenizer.Tokenizer.splits_cleanly`), the total is counted as the prompt
plus the rest, so no text is encoded twice; otherwise the full rendering is encoded on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curate.lib.tokens.chat import ChatTemplate, Conversation, TemplateFailure, last_assistant
from curate.lib.tokens.tokenizer import Tokenizer


@dataclass
class Counts:
    prompt: np.ndarray  # int64 per conversation (0 where error is set)
    total: np.ndarray  # int64
    error: list[str | None]  # what the template raised, None where it rendered

    @property
    def completion(self) -> np.ndarray:
        return self.total - self.prompt


def rendered_texts(
    conversations: Sequence[Conversation], template: ChatTemplate
) -> list[tuple[str, str] | TemplateFailure]:
    """(prompt rendering, full rendering) of each conversation, or what the template raised."""
    items: list[tuple[Conversation, bool]] = []
    answered: list[bool] = []
    for turns in conversations:
        last = last_assistant(turns)
        answered.append(last is not None)
        items.append((turns if last is None else turns[:last], True))
        items.append((turns, False))
    rendered = template.render_batch(items)
    out: list[tuple[str, str] | TemplateFailure] = []
    for index, has_answer in enumerate(answered):
        prompt, full = rendered[2 * index], rendered[2 * index + 1]
        if isinstance(prompt, TemplateFailure):
            out.append(prompt)
        elif not has_answer:
            out.append((prompt, prompt))
        elif isinstance(full, TemplateFailure):
            out.append(full)
        else:
            out.append((prompt, full))
    return out


def count_conversations(
    conversations: Sequence[Conversation],
    template: ChatTemplate,
    tokenizer: Tokenizer,
    threads: int = 1,
) -> Counts:
    """Prompt and total tokens of every conversation (see the module docstring)."""
    n = len(conversations)
    texts: list[str] = []
    additive = np.zeros(n, dtype=bool)
    errors: list[str | None] = [None] * n
    for index, pair in enumerate(rendered_texts(conversations, template)):
        if isinstance(pair, TemplateFailure):
            errors[index] = str(pair)
            texts += ("", "")
            continue
        prompt, full = pair
        rest = full[len(prompt) :]
        if full.startswith(prompt) and tokenizer.splits_cleanly(prompt, rest):
            texts += (prompt, rest)
            additive[index] = True
        else:
            texts += (prompt, full)
    counts = np.asarray(tokenizer.count_batch(texts, threads), dtype=np.int64).reshape(n, 2)
    total = np.where(additive, counts[:, 0] + counts[:, 1], counts[:, 1])
    return Counts(counts[:, 0].copy(), total.astype(np.int64), errors)


__all__ = ["Counts", "count_conversations", "rendered_texts"]
