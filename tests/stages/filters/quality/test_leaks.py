"""The instruction_leak rule: outputs that run on into another task or chat-template tokens."""

from __future__ import annotations

import pytest
from testutils import records_table

from curate.stages import Quality

ONLY_LEAKS = {name: {"enabled": name == "instruction_leak"} for name in Quality.Params.model_fields}


@pytest.mark.parametrize(
    "output",
    [
        "Rayleigh scattering.\n\n14. Instruction: Name a fruit.\n14. Input:\n<noinput>",
        "Paris.\n### Instruction:\nName a river.",
        "Sure.<|im_end|>\n<|im_start|>user",
    ],
)
def test_a_leak_is_dropped_with_what_follows(output: str) -> None:
    kept, rejected = Quality(ONLY_LEAKS).run(
        records_table([{"instruction": "Q?", "output": output}])
    )
    (row,) = rejected.to_pylist()
    assert kept.num_rows == 0 and row["reason"] == "instruction_leak"
    assert row["detail"].startswith("output continues with another task: ")


@pytest.mark.parametrize(
    "output",
    [
        "The instruction: was clear.",  # not at the start of a line
        "Step 1. Mix the flour.\nStep 2. Bake.",
        "Write clear instructions: first, ...",
    ],
)
def test_ordinary_outputs_are_kept_and_scored(output: str) -> None:
    kept, rejected = Quality(ONLY_LEAKS).run(
        records_table([{"instruction": "Q?", "output": output}])
    )
    assert rejected.num_rows == 0
    assert kept.column("quality_leak_matches").to_pylist() == [0]
