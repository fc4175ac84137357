"""The create-job modal: model, training and validation files, and every hyperparameter."""

from __future__ import annotations

import json
from typing import Any

from bot.blocks.ids import Views
from bot.store import Upload
from client import Hyperparameters, Model
from client.hyperparameters import NEBIUS, SUFFIX_MAX_CHARS, RangeProfile

NO_VALIDATION = "none"
# (block id, label) of the Advanced section, in the order people look for them.
ADVANCED = [
    ("n_epochs", "Epochs"),
    ("batch_size", "Batch size"),
    ("learning_rate", "Learning rate"),
    ("warmup_ratio", "Warmup ratio"),
    ("weight_decay", "Weight decay"),
    ("max_grad_norm", "Max gradient norm"),
    ("context_length", "Context length"),
    ("packing", "Packing"),
    ("lora", "LoRA"),
    ("lora_r", "LoRA rank (r)"),
    ("lora_alpha", "LoRA alpha"),
    ("lora_dropout", "LoRA dropout"),
]
BOOLEANS = {"packing", "lora"}
# W&B names, with the block ids `/finetune create` takes as options (wandb_project=...).
# The key is never asked for: it only comes from the bot's WANDB_API_KEY.
WANDB_FIELDS = [
    ("wandb_project", "W&B project", "Logs the run to Weights & Biases"),
    ("wandb_name", "W&B run name", "Optional, with a W&B project"),
    ("wandb_entity", "W&B entity (team or user)", "Optional, with a W&B project"),
]
WANDB_MAX_CHARS = 128


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75]}


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": _text(label), "value": value}


def _input_block(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool, hint: str | None
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _text(label),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = _text(hint)
    return block


def _select(
    block_id: str,
    label: str,
    options: list[dict[str, Any]],
    initial: str | None,
    *,
    optional: bool = False,
    hint: str | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "static_select", "action_id": "value", "options": options}
    chosen = [o for o in options if o["value"] == initial]
    if chosen:
        element["initial_option"] = chosen[0]
    return _input_block(block_id, label, element, optional=optional, hint=hint)


def _input(
    block_id: str,
    label: str,
    initial: str | None,
    *,
    optional: bool = True,
    hint: str | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value"}
    if max_length is not None:
        element["max_length"] = max_length
    if initial is not None:
        element["initial_value"] = initial
    return _input_block(block_id, label, element, optional=optional, hint=hint)


def _upload_option(upload: Upload) -> dict[str, Any]:
    mark = "" if upload.valid else " (has errors)"
    return _option(f"{upload.name}{mark}", upload.slack_file_id)


def create_job_view(
    *,
    channel: str,
    models: list[Model],
    uploads: list[Upload],
    training: str | None = None,
    validation: str | None = None,
    wandb_configured: bool = False,
    profile: RangeProfile = NEBIUS,
    cost_note: str | None = None,
) -> dict[str, Any]:
    """The modal; `uploads` come valid first, and `private_metadata` remembers the channel.

    `wandb_configured`: the bot has a W&B key, so a W&B project can be logged to.
    `profile`: the ranges of the server in use, shown under each field.
    `cost_note`: the estimate for the training file it was opened from (bot.blocks.cost).
    """
    defaults = Hyperparameters()
    blocks: list[dict[str, Any]] = []
    if models:
        model_options = [_option(m.id, m.id) for m in sorted(models, key=lambda m: m.id)][:100]
        blocks.append(_select("model", "Model", model_options, None))
    else:
        blocks.append(_input("model", "Model", None, optional=False, hint="A Nebius model id"))
    file_options = [_upload_option(u) for u in uploads][:100]
    if file_options:
        blocks.append(_select("training", "Training file", file_options, training))
        if cost_note:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": cost_note}]})
    else:
        blocks.append(
            {
                "type": "section",
                "block_id": "no_files",
                "text": {
                    "type": "mrkdwn",
                    "text": ":warning: No checked .jsonl uploads in this channel yet: "
                    "share one here first, then open this form again.",
                },
            }
        )
    validation_options = [_option("No validation file", NO_VALIDATION), *file_options][:100]
    blocks.append(
        _select(
            "validation",
            "Validation file",
            validation_options,
            validation or NO_VALIDATION,
            optional=True,
        )
    )
    blocks.append({"type": "header", "text": _text("Advanced")})
    for name, label in ADVANCED:
        value = getattr(defaults, name)
        if name in BOOLEANS:
            options = [_option("on", "true"), _option("off", "false")]
            blocks.append(_select(name, label, options, "true" if value else "false"))
        else:
            hint = (
                f"Allowed {profile.where}: {profile.hint(name)}" if name in profile.ranges else None
            )
            blocks.append(
                _input(
                    name, label, f"{value:g}" if isinstance(value, float) else str(value), hint=hint
                )
            )
    seed_hint = f"A whole number in {profile.hint('seed')}, for reproducible runs"
    blocks.append(_input("seed", "Seed", None, hint=seed_hint))
    blocks.append(
        _input(
            "suffix",
            "Suffix",
            None,
            hint=f"Added to the output model's name; at most {SUFFIX_MAX_CHARS} characters",
            max_length=SUFFIX_MAX_CHARS,
        )
    )
    blocks.extend(_wandb_blocks(wandb_configured))
    return {
        "type": "modal",
        "callback_id": Views.CREATE_JOB,
        "title": _text("Fine-tune a model"),
        "submit": _text("Start job"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": blocks,
    }


def _wandb_blocks(configured: bool) -> list[dict[str, Any]]:
    if configured:
        about = "W&B logging uses the bot's own key; never type keys into Slack."
    else:
        about = (
            "W&B logging needs WANDB_API_KEY in the bot's configuration, which is not set; "
            "never type keys into Slack."
        )
    blocks: list[dict[str, Any]] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": about}]}
    ]
    for block_id, label, hint in WANDB_FIELDS:
        blocks.append(_input(block_id, label, None, hint=hint, max_length=WANDB_MAX_CHARS))
    return blocks


def form_options(values: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """Slack's `view.state.values` -> the same name=value options `/finetune create` takes."""
    options: dict[str, str] = {}
    for block_id, actions in values.items():
        state = actions.get("value") or next(iter(actions.values()), {})
        selected = state.get("selected_option")
        value = selected.get("value") if selected else state.get("value")
        if value is None or str(value).strip() == "":
            continue
        options[block_id] = str(value).strip()
    if options.get("validation") == NO_VALIDATION:
        del options["validation"]
    return options
