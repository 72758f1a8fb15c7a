"""The ``length`` stage: exact token counts under a chat template; overlong examples dropped.

Recipe::

    - length: {}                                                # cl100k_base, chatml, 4096 total
    - length: {tokenizer: models/llama3/tokenizer.json, chat_template: llama3,
               max_total_tokens: 8192, max_completion_tokens: 2048}
    - length: {chat_template: path/to/tokenizer_config.json, on_overflow: truncate}

A trainer that meets an example longer than its context silently cuts it (often the answer's
end). This stage measures what the trainer will see, the record's conversation (as ``curate export
--chat`` writes it) rendered by the chat template and encoded by the tokenizer, and drops what does
not fit, or (``on_overflow: truncate``) drops trailing whole exchanges of a multi-turn conversation
until it fits. See :mod:`curate.lib.tokens`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.errors import StageError
from curate.lib.tokens import (
    SHIPPED_TEMPLATES,
    ChatTemplate,
    Conversation,
    Tokenizer,
    count_conversations,
    load_chat_template,
    load_tokenizer,
    table_conversations,
)
from curate.lib.tokens.chat import FROM_TOKENIZER
from curate.lib.tokens.tokenizer import TIKTOKEN_NAMES
from curate.stages.base import Decision, FilterStage, StageParams, merge_infos

COUNT_COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens")
TRUNCATED_COLUMN = "truncated_turns"
OUTCOMES = ("kept", "truncated", "too_long", "no_text", "template_error")
PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
# Histogram of total tokens: exact below 64, then 16 buckets per power of two (a bucket spans
# 1/16 of its lower bound), ~200 buckets for a dataset from 30 to 100,000 tokens.
_EXACT_BELOW = 64
_SIGNIFICANT_BITS = 5


class Length(FilterStage):
    """Count each example's tokens under a chat template with a real tokenizer; drop those over
    the limits (or drop trailing whole exchanges of a conversation until it fits).

    Writes ``prompt_tokens``, ``completion_tokens`` and ``total_tokens`` (and, with
    ``on_overflow: truncate``, ``truncated_turns``: turns removed, 0 when none) on kept rows.
    ``prompt``: every turn before the last assistant turn, rendered with the generation prompt;
    ``total``: the whole conversation rendered; ``completion = total - prompt``. Reasons:
    ``too_long`` (the detail names the counts and the limit exceeded), ``no_text`` (every turn is
    empty), ``template_error`` (the chat template refused the conversation, e.g. roles that do
    not alternate).
    """

    name: ClassVar[str] = "length_v1"

    class Params(StageParams):
        tokenizer: str = Field(
            "cl100k_base",
            description="cl100k_base (tiktoken's offline copy), or a path to a tokenizer.json or a "
            "folder holding one; extra [tokens]. Nothing is downloaded.",
        )
        chat_template: str = Field(
            "chatml",
            description="chatml, llama3, mistral, gemma, alpaca; 'tokenizer' (the tokenizer "
            "folder's own); or a path to a .jinja file or a tokenizer_config.json.",
        )
        max_total_tokens: int | None = Field(
            4096, ge=1, description="Longest conversation kept, in tokens; null: no limit."
        )
        max_prompt_tokens: int | None = Field(
            None, ge=1, description="Longest prompt (everything before the last answer) kept."
        )
        max_completion_tokens: int | None = Field(
            None, ge=1, description="Longest last answer kept, in tokens (its end marker included)."
        )
        on_overflow: Literal["drop", "truncate"] = Field(
            "drop",
            description="drop: reject as too_long; truncate: drop trailing whole exchanges of a "
            "multi-turn conversation until it fits (never cuts an answer; a single exchange "
            "that does not fit is still dropped).",
        )
        threads: int = Field(
            1,
            ge=1,
            le=256,
            description="Threads encoding with tiktoken within one process (the engine already "
            "runs one process per core).",
        )

    params: Params

    def __init__(self, params: StageParams | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._tokenizer: Tokenizer | None = None
        self._template: ChatTemplate | None = None
        self._outcomes: Counter[str] = Counter()
        self._tokens_kept: Counter[str] = Counter()
        self._measured: Counter[int] = Counter()  # histogram of total_tokens (see _bucket)
        self._kept: Counter[int] = Counter()
        self._max = {"measured": -1, "kept": -1}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_tokenizer"] = state["_template"] = None  # loaded again where it is unpickled
        return state

    def check_recipe(self, sources: Sequence[str]) -> None:
        p = self.params
        if p.chat_template == FROM_TOKENIZER and p.tokenizer in TIKTOKEN_NAMES:
            shipped = ", ".join(SHIPPED_TEMPLATES)
            raise StageError(
                "chat_template: 'tokenizer' reads the template next to a tokenizer.json, but "
                f"tokenizer {p.tokenizer!r} is tiktoken's; name a template ({shipped}) or a path"
            )

    def prepare(self) -> None:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.params.tokenizer)
        if self._template is None:
            self._template = load_chat_template(self.params.chat_template, self.params.tokenizer)

    def _counts(self, conversations: list[Conversation]) -> tuple[np.ndarray, np.ndarray, list]:
        assert self._tokenizer is not None and self._template is not None
        counts = count_conversations(
            conversations, self._template, self._tokenizer, self.params.threads
        )
        return counts.prompt, counts.total, counts.error

    def _over(self, prompt: np.ndarray, total: np.ndarray) -> np.ndarray:
        p = self.params
        over = np.zeros(len(total), dtype=bool)
        for limit, values in (
            (p.max_total_tokens, total),
            (p.max_prompt_tokens, prompt),
            (p.max_completion_tokens, total - prompt),
        ):
            if limit is not None:
                over |= values > limit
        return over

    def _too_long(self, prompt: int, total: int) -> str:
        """``total 5012 > max_total_tokens 4096 (prompt 4800, completion 212)``."""
        p = self.params
        values = {"prompt": prompt, "completion": total - prompt, "total": total}
        parts = [
            f"{part} {values[part]} > max_{part}_tokens {limit}"
            for part, limit in (
                ("total", p.max_total_tokens),
                ("prompt", p.max_prompt_tokens),
                ("completion", p.max_completion_tokens),
            )
            if limit is not None and values[part] > limit
        ]
        named = {part.split(" ", 1)[0] for part in parts}
        rest = ", ".join(f"{name} {value}" for name, value in values.items() if name not in named)
        return "; ".join(parts) + (f" ({rest})" if rest else "")

    def decide(self, table: pa.Table) -> Decision:
        self.prepare()
        p = self.params
        n = table.num_rows
        turns = table_conversations(table)
        has_text = np.array([any(t["content"].strip() for t in c) for c in turns], dtype=bool)
        text_rows = np.flatnonzero(has_text)
        prompt = np.zeros(n, dtype=np.int64)
        total = np.zeros(n, dtype=np.int64)
        errors: list[str | None] = [None] * n
        got_prompt, got_total, got_errors = self._counts([turns[i] for i in text_rows])
        prompt[text_rows], total[text_rows] = got_prompt, got_total
        for row, error in zip(text_rows, got_errors, strict=True):
            errors[row] = error
        failed = np.array([e is not None for e in errors], dtype=bool)
        measured = has_text & ~failed
        self._measured.update(_bucket(int(v)) for v in total[measured])
        if measured.any():
            self._max["measured"] = max(self._max["measured"], int(total[measured].max()))

        reason: list[str | None] = [None] * n
        detail: list[str | None] = [None] * n
        for row in np.flatnonzero(~has_text):
            reason[row], detail[row] = "no_text", "every turn of the conversation is empty"
        for row in np.flatnonzero(failed):
            reason[row] = "template_error"
            detail[row] = f"chat template {self.params.chat_template}: {errors[row]}"
        over = measured & self._over(prompt, total)
        cut = np.zeros(n, dtype=np.int64)  # turns removed
        if p.on_overflow == "truncate" and over.any():
            self._truncate(turns, np.flatnonzero(over), prompt, total, cut)
            over &= cut == 0
        for row in np.flatnonzero(over):
            why = self._too_long(int(prompt[row]), int(total[row]))
            if p.on_overflow == "truncate":
                why += "; not truncated: " + (
                    "no shorter run of whole exchanges fits"
                    if _cuts(turns[row])
                    else "a single exchange (that would cut the answer)"
                )
            reason[row], detail[row] = "too_long", why

        keep = np.array([r is None for r in reason], dtype=bool)
        truncated = cut > 0
        self._outcomes.update(
            {
                "kept": int(keep.sum()),
                "truncated": int(truncated.sum()),
                "too_long": int(over.sum()),
                "no_text": int((~has_text).sum()),
                "template_error": int(failed.sum()),
            }
        )
        self._kept.update(_bucket(int(v)) for v in total[keep])
        if keep.any():
            self._max["kept"] = max(self._max["kept"], int(total[keep].max()))
        self._tokens_kept.update(
            {
                "prompt": int(prompt[keep].sum()),
                "completion": int((total - prompt)[keep].sum()),
                "total": int(total[keep].sum()),
            }
        )
        scores: dict[str, pa.Array] = {
            "prompt_tokens": pa.array(prompt, pa.int64()),
            "completion_tokens": pa.array(total - prompt, pa.int64()),
            "total_tokens": pa.array(total, pa.int64()),
        }
        if p.on_overflow == "truncate":
            scores[TRUNCATED_COLUMN] = pa.array(cut, pa.int64())
            if truncated.any():
                # Kept rows only (scores go on kept rows): the shorter conversation.
                scores.update(_shortened(table, turns, np.flatnonzero(truncated), cut))
        return Decision(
            keep=pa.array(keep, pa.bool_()),
            reason=pa.array(reason, pa.string()),
            detail=pa.array(detail, pa.string()),
            scores=scores,
        )

    def _truncate(
        self,
        turns: list[Conversation],
        rows: np.ndarray,
        prompt: np.ndarray,
        total: np.ndarray,
        cut: np.ndarray,
    ) -> None:
        """For each overlong row, the longest run of its leading whole exchanges that fits:
        counts go to ``prompt``/``total``, turns removed to ``cut`` (0: nothing fits)."""
        owners: list[int] = []
        candidates: list[Conversation] = []
        for row in rows:
            for end in _cuts(turns[row]):
                owners.append(int(row))
                candidates.append(turns[row][:end])
        if not candidates:
            return
        got_prompt, got_total, got_errors = self._counts(candidates)
        fits = ~self._over(got_prompt, got_total)
        for index, row in enumerate(owners):
            if cut[row] or not fits[index] or got_errors[index] is not None:
                continue
            cut[row] = len(turns[row]) - len(candidates[index])
            prompt[row], total[row] = got_prompt[index], got_total[index]

    def manifest_info(self) -> dict[str, Any]:
        return {
            "tokenizer": self.params.tokenizer,
            "package": self._tokenizer.package if self._tokenizer is not None else None,
            "chat_template": self.params.chat_template,
            "rows": {name: self._outcomes.get(name, 0) for name in OUTCOMES},
            "tokens_kept": {
                k: self._tokens_kept.get(k, 0) for k in ("prompt", "completion", "total")
            },
            "total_tokens": {
                dist: _summary(histogram, self._max[dist])
                for dist, histogram in (("measured", self._measured), ("kept", self._kept))
            },
        }

    def merge_manifest_info(self, infos: list[Any]) -> Any:
        """Counts add up; percentiles are computed again from the merged histograms."""
        infos = [info for info in infos if info]
        if not infos:
            return None
        dists = ("measured", "kept")
        plain = [{k: v for k, v in info.items() if k != "total_tokens"} for info in infos]
        merged = merge_infos(plain)
        merged["total_tokens"] = {}
        for dist in dists:
            histogram: Counter[int] = Counter()
            for info in infos:
                found = info.get("total_tokens", {}).get(dist, {}).get("histogram", {})
                histogram.update({int(k): int(v) for k, v in found.items()})
            tops = [info.get("total_tokens", {}).get(dist, {}).get("max") for info in infos]
            merged["total_tokens"][dist] = _summary(
                histogram, max((t for t in tops if t is not None), default=-1)
            )
        return merged


def _cuts(turns: Conversation) -> list[int]:
    """Ends of the shorter conversations that keep only leading whole exchanges, longest first:
    right after an assistant turn (with a user turn before it) that a user turn follows."""
    ends: list[int] = []
    seen_user = False
    for index, turn in enumerate(turns[:-1]):
        role = turn["role"]
        seen_user = seen_user or role == "user"
        if role == "assistant" and seen_user and turns[index + 1]["role"] == "user":
            ends.append(index + 1)
    return ends[::-1]


def _final_exchange(turns: Conversation) -> tuple[str, str]:
    """(instruction, output) of a conversation: its last assistant turn and the user turn before
    (as the readers set them)."""
    for index in range(len(turns) - 1, -1, -1):
        if turns[index]["role"] == "assistant":
            for before in range(index - 1, -1, -1):
                if turns[before]["role"] == "user":
                    return turns[before]["content"], turns[index]["content"]
            return "", turns[index]["content"]
    return "", ""


def _shortened(
    table: pa.Table, turns: list[Conversation], rows: np.ndarray, cut: np.ndarray
) -> Iterable[tuple[str, pa.Array]]:
    """``messages``, ``instruction``, ``input`` and ``output`` with the shortened conversations
    on ``rows`` (instruction/output: its last exchange; input: empty, it is in the user turn)."""
    short = [turns[row][: len(turns[row]) - int(cut[row])] for row in rows]
    exchanges = [_final_exchange(t) for t in short]
    values: dict[str, list[Any]] = {
        "messages": short,
        "instruction": [e[0] for e in exchanges],
        "input": [""] * len(short),
        "output": [e[1] for e in exchanges],
    }
    for name, new in values.items():
        if name in table.column_names:
            yield name, _replace_rows(table.column(name), rows, new)


def _replace_rows(column: pa.ChunkedArray, rows: np.ndarray, values: list[Any]) -> pa.Array:
    base = column.combine_chunks()
    n = len(base)
    index = np.arange(n, dtype=np.int64)
    index[rows] = n + np.arange(len(rows), dtype=np.int64)
    return pa.concat_arrays([base, pa.array(values, base.type)]).take(pa.array(index))


def _bucket(value: int) -> int:
    """The histogram bucket of a token count (its lower bound)."""
    if value < _EXACT_BELOW:
        return value
    shift = value.bit_length() - _SIGNIFICANT_BITS
    return (value >> shift) << shift


def _bucket_top(lower: int) -> int:
    if lower < _EXACT_BELOW:
        return lower
    return lower + (1 << (lower.bit_length() - _SIGNIFICANT_BITS)) - 1


def _summary(histogram: Mapping[int, int], maximum: int) -> dict[str, Any]:
    """p50/p90/p99 (nearest rank; the top of its bucket: exact below 64, at most 6.25% above),
    the exact max (-1: no rows), rows, and the histogram itself (bucket lower bound -> rows), from
    which merged shards compute their percentiles."""
    buckets = sorted((int(k), int(v)) for k, v in histogram.items() if v)
    rows = sum(v for _, v in buckets)
    out: dict[str, Any] = {"rows": rows}
    cumulative = np.cumsum([v for _, v in buckets])
    for label, q in PERCENTILES:
        rank = max(1, int(np.ceil(q * rows)))
        at = int(np.searchsorted(cumulative, rank)) if rows else -1
        out[label] = min(_bucket_top(buckets[at][0]), maximum) if rows else None
    out["max"] = maximum if rows else None
    out["histogram"] = {str(k): v for k, v in buckets}
    return out
