"""Merged-instruction leaks: the output runs on into the next generated task ("2. Instruction: …")."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.stages.filters.quality.rules import (
    Rule,
    RuleParams,
    RuleResult,
    TextView,
    detail_on,
    first_match,
    matches_where,
)

# Self-Instruct/Alpaca generation artefacts: numbered task headers or prompt-format headers on a line
# of their own inside the output.
_LEAK = (
    r"(?im)(?P<m>(?:^|\n)[ \t]*(?:"
    r"\d{1,2}\s*[.):]\s*instruction\s*:"  # "2. Instruction:"
    r"|#{2,4}\s*(?:instruction|input|response)\s*:?"  # "### Instruction:"
    r"|instruction\s*:\s*\S"  # "Instruction: Write a poem…" on its own line
    r"|<\|?(?:im_start|im_end|endoftext|user|assistant)\|?>"  # chat-template tokens
    r"))"
)


# Chat-template tokens alone: a leak even in the answer to "write an instruction for ...".
_TEMPLATE_TOKEN = r"(?i)(?P<m><\|?(?:im_start|im_end|endoftext|user|assistant)\|?>)"
# A request whose answer is itself a task ("Create a task that a GPT model can complete..."): its
# "Instruction:" header is the answer, not the start of another generation.
_TASK_WRITING = r"(?i)\b(?:create|write|generate|design|construct|compose|come up with|make|reverse[- ]engineer|formulate|devise)\b.{0,60}\b(?:tasks?|instructions?|prompts?)\b"


class InstructionLeak(Rule):
    """The output contains the start of another instruction (merged generations, template tokens).

    Score: ``quality_leak_matches`` (number of leak markers in the output).
    """

    name: ClassVar[str] = "instruction_leak"
    order: ClassVar[int] = 60
    description: ClassVar[str] = (
        "Rejects outputs running on into another task or chat-template tokens (instruction_leak)."
    )

    class Params(RuleParams):
        skip_task_writing: bool = Field(
            False,
            description="When the request asks for a task or an instruction, only chat-template "
            "tokens count: its 'Instruction:' header is the answer.",
        )

    params: Params

    def check(self, view: TextView) -> RuleResult:
        count = pc.count_substring_regex(view.assistant, _LEAK)
        writes_task = pa.array(np.zeros(view.num_rows, dtype=bool))
        if self.params.skip_task_writing:
            # A task-writing request counts its template tokens instead: the request only
            # matters on rows holding either (its regex is slow on long instructions).
            tokens = pc.count_substring_regex(view.assistant, _TEMPLATE_TOKEN)
            either = pc.or_(pc.greater(count, 0), pc.greater(tokens, 0))
            writes_task = matches_where(either, view.instruction, _TASK_WRITING)
            count = pc.if_else(writes_task, tokens, count)
        fail = pc.greater(count, 0)

        def describe(assistant: pa.Array, task: pa.Array) -> pa.Array:
            found = pc.if_else(
                task, first_match(assistant, _TEMPLATE_TOKEN), first_match(assistant, _LEAK)
            )
            found = pc.utf8_trim_whitespace(pc.fill_null(found, ""))
            return pc.binary_join_element_wise("output continues with another task: ", found, "")

        detail = detail_on(fail, describe, view.assistant, writes_task)
        return RuleResult(fail, {"quality_leak_matches": count}, detail)
