"""`curate export --for trl` read by TRL itself: ``SFTTrainer`` (CPU, a tiny model built from a
config, a tokenizer trained in memory: nothing downloaded) prepares the exported dataset with its
own chat-template code and trains one step on it. Skipped where the ``trainers`` extra (trl and
torch) is not installed."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from testutils import tiny_tokenizer_json

from curate.run.export import export_run

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

CHATML = Path(__file__).resolve().parents[2] / "curate" / "data" / "chat_templates" / "chatml.jinja"


def sft_tokenizer(folder: Path, corpus: list[str]) -> transformers.PreTrainedTokenizerFast:
    path = tiny_tokenizer_json(folder / "tokenizer.json", corpus)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token="<s>", eos_token="<|im_end|>", pad_token="</s>"
    )
    tokenizer.chat_template = CHATML.read_text(encoding="utf-8")
    return tokenizer


def test_sft_trainer_prepares_and_trains_on_the_trl_export(run_dir: Path, tmp_path: Path) -> None:
    result = export_run(run_dir, tmp_path / "trl", trainer="trl")
    card = (tmp_path / "trl" / "README.md").read_text(encoding="utf-8")
    assert 'load_dataset("parquet"' in card
    # As the card says: the parquet files, loaded by datasets, go to SFTTrainer as they are.
    dataset = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "trl" / "data" / "*.parquet"), split="train"
    )
    assert dataset.num_rows == result.rows > 0
    assert trl.data_utils.is_conversational(dataset[0])
    corpus = [turn["content"] for row in dataset.select(range(50)) for turn in row["messages"]]
    tokenizer = sft_tokenizer(tmp_path, corpus)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
    )
    model = transformers.LlamaForCausalLM(config)
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=512,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataset_num_proc=1,
    )
    trainer = trl.SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer
    )
    prepared = trainer.train_dataset
    assert prepared.num_rows == dataset.num_rows  # nothing dropped or split by TRL
    # TRL's tokens are the chat template's rendering of the exported conversation.
    first = tokenizer.apply_chat_template(dataset[0]["messages"], tokenize=False)
    assert tokenizer.decode(prepared[0]["input_ids"]) == first
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("train_loss" in entry for entry in trainer.state.log_history)
