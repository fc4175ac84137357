"""The create-job modal: opened from the buttons or a bare `create`, errors on its fields."""

from __future__ import annotations

import json

import pytest
import respx
from pydantic import SecretStr

from bot.backends import Backends
from bot.blocks import Actions
from bot.config import BotSettings
from bot.slack.app import build_slack_bot
from tests.bot.conftest import NEBIUS_KEY, NEBIUS_URL, HarnessFactory, RouterTransport
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
JOB = {"id": "ftjob-8", "object": "fine_tuning.job", "model": MODEL, "status": "queued"}


@pytest.fixture
def nebius(nebius_api: respx.Router, nebius_files: respx.Route) -> respx.Router:
    """Nebius lists two models and takes uploads."""
    nebius_api.get("models").respond(
        json={"object": "list", "data": [{"id": MODEL}, {"id": "Qwen/Qwen3-4B"}]}
    )
    return nebius_api


@pytest.fixture
def create(nebius: respx.Router) -> respx.Route:
    """Nebius starts JOB when asked: the route, to count the jobs started."""
    return nebius.post("fine_tuning/jobs").respond(json=JOB)


class EmbeddedEngine:
    """Stands for the local engine the bot starts when no NEBIUS_API_KEY is set."""

    base_url = NEBIUS_URL

    def start(self) -> None: ...

    def stop(self) -> None: ...


@pytest.fixture
async def local_harness(
    settings: BotSettings, fake_slack: FakeSlack, clock: FakeClock, nebius_api: respx.Router
) -> SlackHarness:
    """The bot as it runs with its embedded local engine: the client comes from Backends."""
    backends = Backends(settings, NEBIUS_URL, SecretStr(NEBIUS_KEY), engine=EmbeddedEngine())
    nebius = backends.client(
        max_retries=2, sleep=clock.sleep, transport=RouterTransport(nebius_api)
    )
    harness = SlackHarness.create(
        fake_slack, settings, build_slack_bot(settings, nebius=nebius, clock=clock)
    )
    yield harness
    await harness.aclose()


def opened_view(fake: FakeSlack) -> dict:
    (call,) = fake.calls_to("views.open")
    return call.args["view"]


def block(view: dict, block_id: str) -> dict:
    (found,) = [b for b in view["blocks"] if b.get("block_id") == block_id]
    return found


def answers(**values: str) -> dict:
    """`state.values` as Slack sends it: selects carry selected_option, inputs value."""
    state = {}
    for block_id, value in values.items():
        if block_id in ("model", "training", "validation", "packing", "lora"):
            state[block_id] = {
                "value": {"type": "static_select", "selected_option": {"value": value}}
            }
        else:
            state[block_id] = {"value": {"type": "plain_text_input", "value": value}}
    return state


async def form_of_a_shared_file(harness: SlackHarness, data: bytes) -> dict:
    """train.jsonl (F1) shared and checked, then its Fine-tune button clicked: the form."""
    await harness.upload("train.jsonl", data)
    await harness.click(Actions.FINETUNE_WITH_FILE, "F1")
    return opened_view(harness.fake)


@pytest.fixture
async def view(harness: SlackHarness, nebius: respx.Router, valid_bytes: bytes) -> dict:
    """The form opened from the button of a shared training file."""
    return await form_of_a_shared_file(harness, valid_bytes)


async def test_the_button_opens_the_form_with_the_file_chosen(
    fake_slack: FakeSlack, view: dict
) -> None:
    assert fake_slack.calls_to("views.open")[0].args["trigger_id"] == "T-trigger-2"
    assert block(view, "training")["element"]["initial_option"]["value"] == "F1"
    models = [o["value"] for o in block(view, "model")["element"]["options"]]
    assert models == ["Qwen/Qwen3-4B", MODEL]
    # Every hyperparameter of the contract is there, with Nebius's default.
    assert block(view, "learning_rate")["element"]["initial_value"] == "1e-05"
    assert block(view, "n_epochs")["hint"]["text"] == "Allowed on Nebius: [1, 20]"
    assert block(view, "weight_decay")["hint"]["text"] == "Allowed on Nebius: at least 0"
    assert block(view, "suffix")["element"]["max_length"] == 64
    for name in ("lora_r", "lora_alpha", "lora_dropout", "packing", "seed", "suffix"):
        block(view, name)
    assert json.loads(view["private_metadata"]) == {"channel": "C1"}


async def test_use_as_validation_file_presets_the_validation_file(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: respx.Router, valid_bytes: bytes
) -> None:
    await harness.upload("train.jsonl", valid_bytes)
    await harness.click(Actions.USE_AS_VALIDATION, "F1")
    view = opened_view(fake_slack)
    assert block(view, "validation")["element"]["initial_option"]["value"] == "F1"


async def test_a_bare_create_opens_the_form(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: respx.Router
) -> None:
    await harness.command("create")
    assert opened_view(fake_slack)["callback_id"] == "create_job"


async def test_bad_values_come_back_as_errors_on_their_fields(
    harness: SlackHarness, view: dict, create: respx.Route
) -> None:
    response = await harness.submit_view(
        view, answers(model=MODEL, training="F1", n_epochs="0", learning_rate="abc", seed="-1")
    )

    body = response.json()
    assert body["response_action"] == "errors"
    assert "n_epochs must be in [1, 20] on Nebius" in body["errors"]["n_epochs"]
    assert "learning_rate" in body["errors"]["learning_rate"]
    assert "whole number" in body["errors"]["seed"]
    assert not create.called


async def test_a_good_submission_starts_one_job_even_if_submitted_twice(
    harness: SlackHarness, view: dict, create: respx.Route
) -> None:
    values = answers(model=MODEL, training="F1", validation="none", n_epochs="2", lora="true")

    first = await harness.submit_view(view, values)
    again = await harness.submit_view(view, values)  # a double click / redelivery

    assert first.status_code == 200 and first.text == ""
    assert again.status_code == 200
    assert create.call_count == 1
    sent = json.loads(create.calls.last.request.content)
    assert sent["hyperparameters"]["n_epochs"] == 2 and sent["hyperparameters"]["lora"] is True
    assert "validation_file" not in sent
    assert (await harness.bot.store.watch("ftjob-8")).channel == "C1"


async def test_a_user_off_the_allowlist_gets_no_form(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, nebius: respx.Router
) -> None:
    harness = harness_factory(allowed_users=frozenset({"UADMIN"}))
    await harness.click(Actions.FINETUNE_WITH_FILE, "F1", user="UOTHER")
    assert fake_slack.calls_to("views.open") == []
    (eph,) = fake_slack.ephemerals_for("UOTHER")
    assert "not on this bot's list" in eph["text"]


async def test_without_the_model_list_the_form_asks_for_a_model_id(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("models").respond(401, json={"error": {"message": "bad key"}})
    await harness.command("create")
    view = opened_view(fake_slack)
    assert block(view, "model")["element"]["type"] == "plain_text_input"


async def test_two_forms_submitted_with_the_same_answers_start_one_job(
    harness: SlackHarness, fake_slack: FakeSlack, view: dict, create: respx.Route
) -> None:
    values = answers(model=MODEL, training="F1", n_epochs="2")

    # Two clicks opened two modals (two view ids); both are filled in the same way.
    await harness.submit_view(view, values, view_id="V1")
    await harness.submit_view(view, values, view_id="V2")

    assert create.call_count == 1
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "Not started again" in eph["text"] and "job `ftjob-8`" in eph["text"]
    # Another epoch count is another job.
    await harness.submit_view(view, answers(model=MODEL, training="F1", n_epochs="3"), view_id="V3")
    assert create.call_count == 2


async def test_the_form_has_optional_wandb_fields_and_never_asks_for_a_key(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: respx.Router
) -> None:
    await harness.command("create")
    view = opened_view(fake_slack)
    ids = [b.get("block_id") for b in view["blocks"]]
    for name in ("wandb_project", "wandb_name", "wandb_entity"):
        assert block(view, name)["optional"] is True
        assert ids.index(name) > ids.index("suffix")  # in the Advanced section
    assert not [i for i in ids if i and "key" in i]
    assert "WANDB_API_KEY" in json.dumps(view["blocks"])  # no key configured: it says so


async def test_a_wandb_project_without_a_configured_key_is_an_error_on_its_field(
    harness: SlackHarness, fake_slack: FakeSlack, view: dict, create: respx.Route
) -> None:
    response = await harness.submit_view(
        view, answers(model=MODEL, training="F1", wandb_project="xgen")
    )

    body = response.json()
    assert body["response_action"] == "errors"
    assert "WANDB_API_KEY" in body["errors"]["wandb_project"]
    assert not create.called
    # Only the upload's report was posted: no job thread was started.
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_a_wandb_run_name_without_a_project_is_an_error_on_the_run_name(
    harness_factory: HarnessFactory, nebius: respx.Router, valid_bytes: bytes
) -> None:
    harness = harness_factory(wandb_api_key=SecretStr("wandb-secret-key"))
    view = await form_of_a_shared_file(harness, valid_bytes)

    response = await harness.submit_view(view, answers(model=MODEL, training="F1", wandb_name="r"))

    assert response.json()["errors"] == {
        "wandb_name": "Only with a W&B project: fill that in, or leave this empty."
    }


async def test_wandb_fields_go_to_nebius_with_the_bots_key(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, create: respx.Route, valid_bytes: bytes
) -> None:
    harness = harness_factory(wandb_api_key=SecretStr("wandb-secret-key"))
    view = await form_of_a_shared_file(harness, valid_bytes)
    assert "WANDB_API_KEY" not in json.dumps(view["blocks"])  # configured: nothing to ask

    response = await harness.submit_view(
        view,
        answers(
            model=MODEL,
            training="F1",
            wandb_project="xgen",
            wandb_name="run-1",
            wandb_entity="team",
        ),
    )

    assert response.text == ""
    sent = json.loads(create.calls.last.request.content)
    assert sent["integrations"] == [
        {
            "type": "wandb",
            "wandb": {
                "project": "xgen",
                "name": "run-1",
                "entity": "team",
                "api_key": "wandb-secret-key",
            },
        }
    ]
    assert "wandb-secret-key" not in repr(fake_slack.calls)


async def test_what_nebius_refuses_comes_back_on_each_field(
    harness: SlackHarness, nebius: respx.Router, view: dict, create: respx.Route
) -> None:
    response = await harness.submit_view(
        view,
        answers(
            model=MODEL,
            training="F1",
            n_epochs="21",
            batch_size="128",
            context_length="4096",
            lora_r="4",
            lora_alpha="4",
            learning_rate="0",
        ),
    )

    errors = response.json()["errors"]
    assert errors == {
        "n_epochs": "n_epochs must be in [1, 20] on Nebius (got 21)",
        "batch_size": "batch_size must be in [1, 64] on Nebius (got 128)",
        "context_length": "context_length must be in [8192, 131072] on Nebius (got 4096)",
        "lora_r": "lora_r must be in [8, 128] on Nebius (got 4)",
        "lora_alpha": "lora_alpha must be at least 8 on Nebius (got 4)",
        "learning_rate": "learning_rate must be in (0, 1] (got 0): a typo guard of ours; "
        "Nebius itself allows any value of at least 0",
    }
    assert not create.called
    assert not [c for c in nebius.calls if c.request.method == "POST"]  # nothing uploaded


async def test_on_the_local_engine_the_form_shows_and_checks_the_engines_ranges(
    local_harness: SlackHarness, create: respx.Route, valid_bytes: bytes
) -> None:
    harness = local_harness
    view = await form_of_a_shared_file(harness, valid_bytes)
    hint = block(view, "context_length")["hint"]["text"]
    assert hint == "Allowed on the local engine: [8, 131072]"

    refused = await harness.submit_view(
        view, answers(model=MODEL, training="F1", weight_decay="2"), view_id="V1"
    )
    assert refused.json()["errors"] == {
        "weight_decay": "weight_decay must be in [0, 1] on the local engine (got 2)"
    }
    started = await harness.submit_view(
        view, answers(model=MODEL, training="F1", context_length="512", lora_r="4"), view_id="V2"
    )
    assert started.text == ""
    sent = json.loads(create.calls.last.request.content)["hyperparameters"]
    assert (sent["context_length"], sent["lora_r"]) == (512, 4)


async def test_the_inline_create_names_the_refused_field_before_any_upload(
    local_harness: SlackHarness, fake_slack: FakeSlack, nebius: respx.Router, valid_bytes: bytes
) -> None:
    await local_harness.upload("train.jsonl", valid_bytes)
    await local_harness.command(f"create model={MODEL} training=train.jsonl lora_dropout=1")
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "lora_dropout must be in [0, 1) on the local engine (got 1)" in eph["text"]
    assert not [c for c in nebius.calls if c.request.method == "POST"]  # no upload, no job
