"""The console driven through a script, with Nebius mocked by respx."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
import respx

from bot.backends import Backends
from bot.chat_interface import Message
from bot.console.loop import Console, ScriptInput
from bot.console.terminal_chat import CHANNEL, ConsoleChat
from tests.bot.console.conftest import RecordingScreen, job, run
from tests.bot.fake_clock import FakeClock


async def test_an_uploaded_sample_gets_its_report_in_the_thread_of_the_upload(
    backends: Backends, samples_dir: Path
) -> None:
    path = samples_dir / "sample_training_data.jsonl"
    code, text = await run(backends, f"upload {path} first try\n")
    assert code == 0
    lines = text.splitlines()
    assert lines[:3] == [
        f"xgenlens> upload {path} first try",
        "#1 @ada:",
        lines[2],
    ]
    assert re.fullmatch(
        r"    shared sample_training_data.jsonl \(10,016 bytes, file F[0-9A-F]+001\)", lines[2]
    )
    assert lines[3] == "    first try"
    assert lines[4].startswith("    ↳ #2 xgenlens, in the thread of #1 shared sample_training")
    assert "✅ sample_training_data.jsonl is a valid chat dataset: 10 examples" in lines[5]
    assert lines[-1] == "      [1] Fine-tune with this file  [2] Use as validation file"


async def test_finetune_lines_reach_the_core_and_answers_show_once(
    backends: Backends, nebius: respx.Router
) -> None:
    nebius.get("models").respond(json={"object": "list", "data": [{"id": "tiny-model"}]})
    nebius.get("https://nebius.test/v0/models").respond(json=[])  # no custom models
    code, text = await run(backends, "/finetune models\n")
    assert code == 0
    assert text.splitlines() == [
        "xgenlens> /finetune models",
        "xgenlens (only @ada sees this):",
        "    Models you can fine-tune (1)",
        "        tiny-model",
        "    ----------------------------------------",
        "    Custom models (deployments)",
        "      No custom models yet: a succeeded LoRA job's summary has a Deploy button.",
    ]


async def test_click_refresh_on_a_card_asks_nebius_again(
    backends: Backends, nebius: respx.Router
) -> None:
    route = nebius.get("fine_tuning/jobs/ftjob-1").mock(
        side_effect=[
            httpx.Response(200, json=job()),
            httpx.Response(200, json=job(trained_steps=6)),
        ]
    )
    code, text = await run(backends, "/finetune status ftjob-1\nclick 1\n")
    assert code == 0 and route.call_count == 2
    assert "Progress: step 2 of 8 (25%)" in text
    assert "Progress: step 6 of 8 (75%)" in text
    assert "[1] Refresh  [2] Cancel" in text


async def test_a_button_with_a_confirmation_asks_first(
    backends: Backends, nebius: respx.Router
) -> None:
    nebius.get("fine_tuning/jobs/ftjob-1").respond(json=job())
    cancel = nebius.post("fine_tuning/jobs/ftjob-1/cancel").respond(json=job("cancelled"))
    script = "/finetune cancel ftjob-1\nclick Cancel job\nno\nclick 1\ny\n"
    code, text = await run(backends, script)
    assert code == 0
    assert "Cancel this job? The job stops and cannot be resumed. Cancel job? [y/N] no" in text
    assert "Not clicked: Cancel job." in text
    assert cancel.call_count == 1
    assert "asked Nebius to cancel job ftjob-1; its status is now cancelled." in text


async def test_wait_follows_the_jobs_shown_until_they_end_without_real_sleeps(
    backends: Backends, nebius: respx.Router
) -> None:
    nebius.get("fine_tuning/jobs/ftjob-1").mock(
        side_effect=[
            httpx.Response(200, json=job()),  # the card
            httpx.Response(200, json=job()),
            httpx.Response(200, json=job()),
            httpx.Response(200, json=job("succeeded", trained_steps=8)),
        ]
    )
    events = nebius.get("fine_tuning/jobs/ftjob-1/events").respond(
        json={"object": "list", "data": [], "has_more": False}
    )
    clock = FakeClock()
    code, text = await run(backends, "/finetune status ftjob-1\nwait\n/finetune events $JOB", clock)
    assert code == 0
    assert "(job ftjob-1 has ended: succeeded)" in text
    assert clock.slept == [5.0, 5.0]
    assert events.call_count == 1
    assert "Job ftjob-1 has no events yet." in text


async def test_lines_the_console_cannot_act_on_say_why_and_fail_the_script(
    backends: Backends, tmp_path: Path
) -> None:
    script = "\n".join(
        [
            "# comments and blank lines are skipped",
            "",
            "frobnicate",
            "click 3",
            "upload",
            f"upload {tmp_path / 'missing.jsonl'}",
            f"upload {tmp_path}",
            "wait",
            "wait soon",
            "/finetune events $JOB",
        ]
    )
    code, text = await run(backends, script)
    assert code == 1
    assert text.splitlines() == [
        "xgenlens> frobnicate",
        "I don't know `frobnicate`. Type `help` for what the console understands.",
        "xgenlens> click 3",
        "There is no button 3: no button has been shown yet.",
        "xgenlens> upload",
        "`upload` needs a file: upload PATH [comment]",
        f"xgenlens> upload {tmp_path / 'missing.jsonl'}",
        f"Cannot upload {tmp_path / 'missing.jsonl'}: it does not exist.",
        f"xgenlens> upload {tmp_path}",
        f"Cannot upload {tmp_path}: it is a folder.",
        "xgenlens> wait",
        "No job has been shown yet, so there is nothing to wait for.",
        "xgenlens> wait soon",
        "`wait` takes a number of seconds, not `soon`.",
        "xgenlens> /finetune events $JOB",
        "$JOB stands for the latest job shown, and no job has been shown yet.",
    ]


async def test_quit_stops_before_the_rest_of_the_script(backends: Backends) -> None:
    code, text = await run(backends, "help\nquit\nfrobnicate\n")
    assert code == 0
    assert "upload PATH [comment]" in text
    assert "frobnicate" not in text


class RecordingBot:
    """Stands in for the core to show exactly what the console hands it."""

    def __init__(self) -> None:
        self.commands: list = []
        self.files: list = []

    def command(self, request) -> None:
        self.commands.append(request)

    def file_shared(self, file, *, event_id=None) -> None:
        self.files.append(file)


async def test_each_line_reaches_the_core_as_the_slack_listener_hands_it_over(
    tmp_path: Path, samples_dir: Path
) -> None:
    triggers = set()
    for started in (1_000.0, 1_000.5):  # two sessions, in the same second
        screen = RecordingScreen()
        chat = ConsoleChat(screen, tmp_path, user_name="ada", clock=FakeClock(wall=started))
        bot = RecordingBot()
        script = [
            "/finetune  create model=m training=t.jsonl",
            f"upload {samples_dir}/sample_training_data.jsonl",
        ]
        await Console(bot, chat).run(ScriptInput(script, screen))  # type: ignore[arg-type]
        [request] = bot.commands
        assert (request.text, request.user, request.channel) == (
            "create model=m training=t.jsonl",
            chat.user,
            CHANNEL,
        )
        triggers.add(request.trigger_id)
        [shared] = bot.files
        assert (shared.name, shared.channel, shared.size) == (
            "sample_training_data.jsonl",
            CHANNEL,
            10_016,
        )
        assert chat.local_files[shared.id] == samples_dir / "sample_training_data.jsonl"
    # The core takes a repeated trigger id for Slack redelivering the same command.
    assert len(triggers) == 2


@pytest.fixture
def create(nebius: respx.Router) -> respx.Route:
    """Nebius lists tiny-model, takes an upload as file-1 (processed at once) and starts
    ftjob-1, queued, with no events yet; the route that starts it, to count the jobs."""
    nebius.get("models").respond(json={"object": "list", "data": [{"id": "tiny-model"}]})
    nebius.post("files").respond(json={"id": "file-1", "object": "file", "status": "processed"})
    nebius.get("files/file-1").respond(json={"id": "file-1", "status": "processed"})
    nebius.get("fine_tuning/jobs/ftjob-1").respond(json=job("queued"))
    nebius.get("fine_tuning/jobs/ftjob-1/events").respond(
        json={"object": "list", "data": [], "has_more": False}
    )
    return nebius.post("fine_tuning/jobs").respond(json=job("queued"))


def the_form_of_the_uploaded_sample(samples_dir: Path) -> list[str]:
    """Script lines: upload the sample, click its Fine-tune button, and in the form choose the
    first model, keep the file clicked and give no validation file."""
    return [
        f"upload {samples_dir / 'sample_training_data.jsonl'}",
        "click Fine-tune with this file",
        "1",  # the model
        "",  # the training file: the one clicked
        "",  # no validation file
    ]


async def test_the_create_form_is_asked_as_prompts_and_wrong_fields_are_asked_again(
    backends: Backends, create: respx.Route, samples_dir: Path
) -> None:
    advanced = ["0", "", "", "", "", "", "", "", "1", "", "", ""]  # epochs 0, then LoRA on
    script = [
        *the_form_of_the_uploaded_sample(samples_dir),
        *advanced,
        "7",  # seed
        "",  # suffix
        "",  # no W&B project
        "",  # nor run name
        "",  # nor entity
        "2",  # epochs, asked again
    ]
    code, text = await run(backends, "\n".join(script))
    assert code == 0, text
    assert "📝 Fine-tune a model opened" in text
    assert "      1. tiny-model" in text
    assert "  Epochs (Allowed on Nebius: [1, 20]) [3]: 0" in text
    assert "  Epochs: n_epochs must be in [1, 20] on Nebius (got 0)" in text
    assert "── Fine-tune a model again ──" in text
    assert "  Epochs (Allowed on Nebius: [1, 20]) [3]: 2" in text
    assert create.call_count == 1
    sent = json.loads(create.calls[0].request.content)
    assert sent["model"] == "tiny-model" and sent["seed"] == 7
    assert sent["hyperparameters"]["n_epochs"] == 2 and sent["hyperparameters"]["lora"] is True
    assert "Fine-tuning job ftjob-1" in text


async def test_a_wandb_project_without_the_bots_key_is_asked_again_in_the_form(
    backends: Backends, create: respx.Route, samples_dir: Path
) -> None:
    script = [
        *the_form_of_the_uploaded_sample(samples_dir),
        *[""] * 14,  # the Advanced defaults, seed and suffix
        "xgen",  # W&B project: but the bot has no W&B key
        "",
        "",
        "",  # asked again: no W&B after all
        "help",
    ]
    code, text = await run(backends, "\n".join(script))
    assert code == 0, text
    assert "W&B logging needs WANDB_API_KEY in the bot's configuration, which is not set" in text
    assert "  W&B project (optional) (Logs the run to Weights & Biases): xgen" in text
    assert "  W&B project: W&B logging needs WANDB_API_KEY" in text
    assert create.call_count == 1
    sent = json.loads(create.calls[0].request.content)
    assert "integrations" not in sent or not sent["integrations"]


async def test_use_as_validation_file_shows_the_report_again_as_a_validation_file(
    backends: Backends, nebius: respx.Router, samples_dir: Path
) -> None:
    nebius.get("models").respond(json={"object": "list", "data": [{"id": "tiny-model"}]})
    script = [
        f"upload {samples_dir / 'sample_validation_data.jsonl'}",
        "click Use as validation file",
        "cancel",
    ]
    code, text = await run(backends, "\n".join(script))
    assert code == 0, text
    first, _, after = text.partition("xgenlens> click Use as validation file")
    assert "sample_validation_data.jsonl [training]: valid" in first
    assert "no validation file: add one" in first
    assert "sample_validation_data.jsonl [validation]: valid" in after
    assert "checked as a validation file" in after
    assert "no validation file" not in after


async def test_the_same_create_typed_twice_starts_one_job(
    backends: Backends, create: respx.Route, samples_dir: Path
) -> None:
    line = "/finetune create model=tiny-model training=sample_training_data.jsonl epochs=2"
    script = [f"upload {samples_dir / 'sample_training_data.jsonl'}", line, line]
    code, text = await run(backends, "\n".join(script))
    assert code == 0, text
    assert create.call_count == 1
    second = text.rpartition(f"xgenlens> {line}")[2]
    assert "Not started again. You asked for this exact job less than a minute ago" in second
    assert "it is job ftjob-1" in second


async def test_cancel_in_a_form_sends_nothing(backends: Backends, create: respx.Route) -> None:
    code, text = await run(backends, "/finetune create\ncancel\n")
    assert code == 0
    assert "Fine-tune a model: cancelled, nothing was sent." in text
    assert create.call_count == 0


async def test_work_a_line_starts_is_told_apart_from_the_watchers_endless_polling(
    tmp_path: Path,
) -> None:
    screen = RecordingScreen()
    chat = ConsoleChat(screen, tmp_path, user_name="ada")
    stop = asyncio.Event()

    async def watcher() -> None:  # like the core's: new sleeper tasks all the time
        while not stop.is_set():
            await asyncio.ensure_future(asyncio.sleep(0))

    class Core(RecordingBot):
        def command(self, request) -> None:
            super().command(request)

            async def answer() -> None:
                await asyncio.sleep(0)
                await chat.ephemeral(CHANNEL, chat.user, Message(text="answered"))

            async def work() -> None:
                await asyncio.create_task(answer())

            self.started = asyncio.create_task(work())

    polling = asyncio.create_task(watcher())
    console = Console(Core(), chat, settle_s=3600)  # type: ignore[arg-type]
    await console.run(ScriptInput(["/finetune list", "help"], screen))
    stop.set()
    await polling
    lines = screen.text.splitlines()
    # The answer, made two tasks deep, comes before the next line is taken.
    assert lines.index("    answered") < lines.index("xgenlens> help")
    assert polling not in console.tasks.origin
