"""From a JSONL dataset to tokenized examples and to model-ready batches.

Every example becomes its token ids plus, for each position, the token the model
should predict there or -1 (no loss). Only assistant tokens are predicted. Labels
are shifted inside each example, so an example's last position never predicts the
first token of the next one when examples are packed into one row.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

IGNORE = -100


class DatasetError(Exception):
    """A dataset the trainer cannot use; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    # targets[i] is the token predicted at position i, or IGNORE.
    targets: list[int]

    @property
    def n_targets(self) -> int:
        return sum(1 for t in self.targets if t != IGNORE)


@dataclass(frozen=True)
class DatasetStats:
    examples: int
    tokens: int
    truncated: int
    dropped: int
    context_length: int

    def message(self, name: str) -> str:
        text = f"{name}: {self.examples} examples, {self.tokens} tokens"
        if self.truncated:
            text += (
                f"; {self.truncated} longer than the context length of {self.context_length} "
                "tokens were truncated"
            )
        if self.dropped:
            text += f"; {self.dropped} dropped: no assistant tokens left within the context length"
        return text


def _where(path: Path, line: int) -> str:
    return f"{path.name}, line {line}"


def _chat_spans(
    tokenizer: Any, messages: list[dict[str, Any]], tools: Any, where: str
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of assistant turns to learn."""
    kwargs = {"tools": tools} if tools else {}
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    except Exception as exc:  # jinja errors from the model's own template
        raise DatasetError(f"{where}: the model's chat template rejects it: {exc}") from exc
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        # The assistant turn is what rendering messages[:i+1] adds after the prompt for it.
        before = tokenizer.apply_chat_template(
            messages[:i], tokenize=False, add_generation_prompt=True, **kwargs
        )
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False, **kwargs)
        if not (text.startswith(upto) and upto.startswith(before)):
            raise DatasetError(
                f"{where}: the model's chat template does not render turns as a prefix "
                "of the conversation, so assistant tokens cannot be located"
            )
        spans.append((len(before), len(upto)))
    return text, spans


def _text_and_spans(
    tokenizer: Any, record: dict[str, Any], where: str
) -> tuple[str, list[tuple[int, int]]]:
    eos = tokenizer.eos_token or ""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise DatasetError(f"{where}: field 'messages' must be a non-empty list")
        for j, message in enumerate(messages):
            if not isinstance(message, dict) or "role" not in message:
                raise DatasetError(f"{where}: messages[{j}] must be an object with a 'role'")
        if messages[-1].get("role") != "assistant":
            raise DatasetError(f"{where}: the last message must come from the assistant")
        return _chat_spans(tokenizer, messages, record.get("tools"), where)
    if "prompt" in record and "completion" in record:
        prompt, completion = record["prompt"], record["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise DatasetError(f"{where}: 'prompt' and 'completion' must be strings")
        text = prompt + completion + eos
        return text, [(len(prompt), len(text))]
    if "text" in record:
        if not isinstance(record["text"], str):
            raise DatasetError(f"{where}: field 'text' must be a string")
        text = record["text"] + eos
        return text, [(0, len(text))]
    raise DatasetError(
        f"{where}: expected a chat example ('messages'), 'prompt'/'completion' or 'text'"
    )


def encode(tokenizer: Any, record: dict[str, Any], where: str) -> Example:
    """Tokenize one record; targets mark the tokens inside the spans to learn."""
    text, spans = _text_and_spans(tokenizer, record, where)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    learn = [any(a <= start < b for a, b in spans) for start, _ in enc["offset_mapping"]]
    # Position i predicts token i+1; the last position predicts nothing.
    targets = [ids[i + 1] if learn[i + 1] else IGNORE for i in range(len(ids) - 1)]
    targets.append(IGNORE)
    return Example(input_ids=ids, targets=targets)


def load_dataset(
    path: Path, tokenizer: Any, context_length: int
) -> tuple[list[Example], DatasetStats]:
    """Read a JSONL file; examples longer than the context are truncated, kept from the start."""
    examples: list[Example] = []
    tokens = truncated = dropped = 0
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DatasetError(f"cannot read {path.name}: {exc.strerror}") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = _where(path, number)
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise DatasetError(f"{where}: not valid JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise DatasetError(f"{where}: expected a JSON object")
            example = encode(tokenizer, record, where)
            if len(example.input_ids) > context_length:
                truncated += 1
                example = Example(
                    input_ids=example.input_ids[:context_length],
                    # The new last position has no next token inside the context.
                    targets=[*example.targets[: context_length - 1], IGNORE],
                )
            if example.n_targets == 0:
                dropped += 1
                continue
            tokens += len(example.input_ids)
            examples.append(example)
    if not examples:
        raise DatasetError(f"{path.name}: no usable examples (every one has nothing to learn)")
    stats = DatasetStats(len(examples), tokens, truncated, dropped, context_length)
    return examples, stats


def collate_packed(batch: list[Example]) -> tuple[dict[str, torch.Tensor], list[int]]:
    """All examples in one row, and where each starts and ends (the segment bounds).

    Position ids restart at 0 at each example (rotary embeddings see each one alone);
    the bounds keep attention inside each example (engine.training.attention).
    """
    ids: list[int] = []
    targets: list[int] = []
    positions: list[int] = []
    bounds = [0]
    for example in batch:
        ids.extend(example.input_ids)
        targets.extend(example.targets)
        positions.extend(range(len(example.input_ids)))
        bounds.append(len(ids))
    tensors = {
        "input_ids": torch.tensor([ids]),
        "position_ids": torch.tensor([positions]),
        "targets": torch.tensor([targets]),
    }
    return tensors, bounds


def collate_padded(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """One row per example, right-padded to the longest, with an attention mask."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id)
    targets = torch.full((len(batch), width), IGNORE)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        targets[row, :n] = torch.tensor(example.targets)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "targets": targets}
