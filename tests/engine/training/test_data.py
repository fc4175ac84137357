"""What the trainer learns from: tokenized examples, their loss mask, truncation, batches."""

from pathlib import Path

import pytest
import torch

from engine.training.data import (
    IGNORE,
    DatasetError,
    collate_packed,
    collate_padded,
    encode,
    load_dataset,
)
from tests.engine.training.conftest import build_tokenizer, chat, write_jsonl


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def learned_text(tokenizer, example) -> str:
    """The tokens the loss is computed on, decoded in order."""
    return tokenizer.decode([t for t in example.targets if t != IGNORE])


def test_loss_falls_only_on_assistant_turns(tokenizer):
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first?"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "second?"},
            {"role": "assistant", "content": "two"},
        ]
    }
    example = encode(tokenizer, record, "x.jsonl, line 1")
    assert learned_text(tokenizer, example) == "one<|im_end|>\ntwo<|im_end|>\n"
    assert len(example.targets) == len(example.input_ids)
    # Each target is the next input token: position i predicts token i+1.
    for i, target in enumerate(example.targets[:-1]):
        assert target in (IGNORE, example.input_ids[i + 1])
    assert example.targets[-1] == IGNORE


def test_assistant_turns_with_weight_zero_are_not_learned(tokenizer):
    record = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "skip me", "weight": 0},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "learn me"},
        ]
    }
    assert learned_text(tokenizer, encode(tokenizer, record, "x")) == "learn me<|im_end|>\n"


def test_prompt_completion_learns_the_completion_and_text_learns_everything(tokenizer):
    pc = encode(tokenizer, {"prompt": "Q: 2+2? A:", "completion": " 4"}, "x")
    assert learned_text(tokenizer, pc) == " 4<|im_end|>"
    text = encode(tokenizer, {"text": "hello world"}, "x")
    # Every token but the first is predicted (nothing comes before the first).
    assert learned_text(tokenizer, text) == "ello world<|im_end|>"


def test_long_examples_are_truncated_and_counted(tokenizer, tmp_path: Path):
    records = [chat("hi", "short"), chat("hi", "long " * 200), chat("x " * 300, "unreachable")]
    path = write_jsonl(tmp_path / "train.jsonl", records)
    examples, stats = load_dataset(path, tokenizer, context_length=128)
    assert (stats.examples, stats.truncated, stats.dropped) == (2, 2, 1)
    assert all(len(e.input_ids) <= 128 for e in examples)
    assert examples[1].targets[-1] == IGNORE
    assert stats.tokens == sum(len(e.input_ids) for e in examples)
    message = stats.message("train.jsonl")
    assert "2 longer than the context length of 128 tokens were truncated" in message
    assert "1 dropped" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "train.jsonl, line 2: not valid JSON"),
        ("[1, 2]", "train.jsonl, line 2: expected a JSON object"),
        (
            '{"messages": [{"role": "user", "content": "hi"}]}',
            "train.jsonl, line 2: the last message must come from the assistant",
        ),
        ('{"question": "hi"}', "train.jsonl, line 2: expected a chat example"),
    ],
)
def test_bad_lines_name_the_file_and_line(tokenizer, tmp_path: Path, line: str, expected: str):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n")
    with pytest.raises(DatasetError, match=expected):
        load_dataset(path, tokenizer, context_length=512)


def test_packed_batch_restarts_positions_at_each_example(tokenizer):
    a = encode(tokenizer, chat("a", "b"), "x")
    b = encode(tokenizer, chat("cc", "dd"), "x")
    packed, bounds = collate_packed([a, b])
    n = len(a.input_ids)
    assert bounds == [0, n, n + len(b.input_ids)]
    assert packed["input_ids"].shape == (1, n + len(b.input_ids))
    assert packed["position_ids"][0, n] == 0
    assert torch.equal(packed["position_ids"][0, :n], torch.arange(n))
    padded = collate_padded([a, b], pad_id=tokenizer.pad_token_id)
    assert padded["input_ids"].shape == (2, max(n, len(b.input_ids)))
    assert padded["attention_mask"].sum() == n + len(b.input_ids)
