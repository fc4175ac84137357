"""Edit and retry: the create form filled in with a job's files and settings."""

from __future__ import annotations

import json

from bot.blocks.forms import create_job_view, form_options
from bot.blocks.retry import JobLinks, filled_create_view, retry_buttons
from bot.store import Upload
from client import Job, Model

PLAN = {
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "training": "F1",
    "training_name": "train.jsonl",
    "validation": "F2",
    "validation_name": "valid.jsonl",
    "hyperparameters": {
        "batch_size": 4,
        "learning_rate": 2e-05,
        "n_epochs": 2,
        "lora": True,
        "packing": False,
        "context_length": 8192,
    },
    "suffix": "xgen",
    "seed": 7,
    "wandb": {"project": "lens", "name": "run-2"},
}


def upload(file_id: str, name: str) -> Upload:
    return Upload(file_id, "C1", None, name, "U1", "sha", True, "chat", {}, "done", 1.0)


def state_values(view: dict) -> dict:
    """What Slack would send back for the form as it was opened (nothing changed)."""
    values: dict = {}
    for block in view["blocks"]:
        element = block.get("element") or {}
        if "initial_option" in element:
            values[block["block_id"]] = {"value": {"selected_option": element["initial_option"]}}
        elif "initial_value" in element:
            values[block["block_id"]] = {"value": {"value": element["initial_value"]}}
    return values


def test_the_form_comes_back_with_every_setting_of_the_job() -> None:
    view = create_job_view(
        channel="C1",
        models=[Model(id="other-model"), Model(id=PLAN["model"])],
        uploads=[upload("F1", "train.jsonl"), upload("F2", "valid.jsonl")],
        wandb_configured=True,
    )
    filled = filled_create_view(view, PLAN, "ftjob-1")

    options = form_options(state_values(filled))
    assert options["model"] == PLAN["model"]
    assert options["training"] == "F1" and options["validation"] == "F2"
    assert options["batch_size"] == "4" and options["learning_rate"] == "2e-05"
    assert options["n_epochs"] == "2" and options["lora"] == "true"
    assert options["packing"] == "false"
    assert options["seed"] == "7" and options["suffix"] == "xgen"
    assert options["wandb_project"] == "lens" and options["wandb_name"] == "run-2"
    assert json.loads(filled["private_metadata"]) == {"channel": "C1", "retry_of": "ftjob-1"}
    assert filled["title"]["text"] == "Edit and retry" and len(filled["title"]["text"]) <= 24
    assert view["blocks"][0]["element"].get("initial_option") is None  # the original untouched


def test_a_model_or_file_no_longer_listed_is_offered_by_name() -> None:
    view = create_job_view(
        channel="C1", models=[Model(id="other-model")], uploads=[upload("F9", "new.jsonl")]
    )
    filled = filled_create_view(view, PLAN, "ftjob-1")
    options = form_options(state_values(filled))
    assert options["model"] == PLAN["model"] and options["training"] == "F1"
    training = next(b for b in filled["blocks"] if b.get("block_id") == "training")
    assert training["element"]["initial_option"]["text"]["text"] == "train.jsonl"


def test_retry_is_offered_until_the_job_was_retried() -> None:
    job = Job.model_validate({"id": "ftjob-1", "status": "failed"})
    assert [b["text"]["text"] for b in retry_buttons(job)] == ["Retry", "Edit and retry"]
    retried = retry_buttons(job, JobLinks(retried_as=["ftjob-2"]))
    assert [b["text"]["text"] for b in retried] == ["Edit and retry"]
