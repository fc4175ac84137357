"""A tiny random llama model and a byte-level tokenizer, built once per test session.

Training it takes milliseconds, so the tests can check the trainer's behaviour
(what it learns from, what it writes, what it reports) rather than what it learns.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIALS[1:],
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_model(folder: Path, **config: Any) -> Path:
    """A 2-layer random llama with the test tokenizer, saved where transformers can load it;
    keyword arguments override its LlamaConfig."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        **{
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": True,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            **config,
        }
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


def chat(user: str, answer: str, system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": messages}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def sample_records(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """Chat examples of varied lengths, so batches mix short and long ones."""
    return [
        chat(f"question {i}: " + "why " * (i % 5), f"answer {i} " + "because " * (1 + i % 7))
        for i in range(offset, offset + n)
    ]


@pytest.fixture
def make_spec(tiny_model_dir: Path, tmp_path: Path) -> Callable[..., Any]:
    """A TrainSpec for the tiny model on generated data; keyword arguments override."""
    from engine.training.spec import TrainSpec

    def make(name: str = "job", hyperparameters: dict[str, Any] | None = None, **fields: Any):
        train = fields.pop("training_file", None) or write_jsonl(
            tmp_path / "train.jsonl", sample_records(10)
        )
        valid = fields.pop("validation_file", None) or write_jsonl(
            tmp_path / "valid.jsonl", sample_records(4, offset=100)
        )
        hp = {"batch_size": 4, "learning_rate": 1e-2, "n_epochs": 2, "lora": True}
        hp.update(hyperparameters or {})
        fields.setdefault("model", "tiny-llama")
        return TrainSpec(
            job_id=f"ftjob-{name}",
            models_dir=tmp_path / "models",
            extra_model_dirs=[tiny_model_dir.parent],
            training_file=train,
            validation_file=valid,
            output_dir=tmp_path / "jobs" / name,
            hyperparameters=hp,
            **fields,
        )

    return make
