"""`/finetune compare` and the Compare button, through the real Bolt app and the fake Slack,
with Nebius mocked: progress edited in place, Cancel, one run per job, retried deliveries,
a Nebius job without a deployment, and a file named by its Slack name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
import respx

from bot.blocks import Actions
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack, PostedMessage
from tests.bot.harness import SlackHarness

V0_MODELS = "https://nebius.test/v0/models"
BASE = "meta-llama/Llama-3.1-8B-Instruct"
TUNED = "llama-ft-xgen"
QUESTIONS = [f"What is {n} plus {n}?" for n in range(1, 6)]
ANSWERS = {q: f"{2 * n}" for n, q in enumerate(QUESTIONS, start=1)}


def jsonl(questions: list[str], answers: dict[str, str]) -> bytes:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": answers[q]},
                ]
            }
        )
        for q in questions
    ]
    return ("\n".join(lines) + "\n").encode()


VALIDATION = jsonl(QUESTIONS, ANSWERS)


def job(**changes: object) -> dict:
    return {
        "id": "ftjob-1",
        "object": "fine_tuning.job",
        "model": BASE,
        "status": "succeeded",
        "training_file": "file-train",
        "validation_file": "file-val",
    } | changes


DEPLOYMENT = {
    "name": TUNED,
    "base_model": BASE,
    "source": "ftjob-1:ftckpt-1",
    "status": "active",
    "created_at": 1_700_000_000,
}


def completion(text: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chat-1",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
        },
    )


class Models:
    """Chat completions: the fine-tuned model knows the answers, the base one does not. Each
    answer takes `seconds` on the fake clock; `gate`, once cleared, holds every answer after
    the first `free` ones until it is set again."""

    def __init__(self, clock: FakeClock, *, seconds: float = 2.0, free: int | None = None) -> None:
        self.clock = clock
        self.seconds = seconds
        self.free = free
        self.asked: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.held = asyncio.Event()  # set when an answer waits at the gate
        if free is None:
            self.gate.set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        question = body["messages"][-1]["content"]
        self.asked.append((body["model"], question))
        if self.free is not None and len(self.asked) > self.free and not self.gate.is_set():
            self.held.set()
            await self.gate.wait()
        self.clock.advance(self.seconds)
        if body["model"] == TUNED:
            return completion(ANSWERS.get(question, "no idea"))
        return completion("Let me think about that for a while.")


def on_nebius(nebius_api: respx.Router, models: Models, *, deployments: list[dict]) -> None:
    nebius_api.get("fine_tuning/jobs/ftjob-1").respond(json=job())
    nebius_api.get("fine_tuning/jobs/ftjob-1/checkpoints").respond(
        json={"data": [{"id": "ftckpt-1", "step_number": 3, "metrics": {"valid_loss": 1.2}}]}
    )
    nebius_api.get(V0_MODELS).respond(json=deployments)
    nebius_api.get("files/file-val").respond(
        json={"id": "file-val", "filename": "val.jsonl", "bytes": len(VALIDATION)}
    )
    nebius_api.get("files/file-val/content").respond(content=VALIDATION)
    nebius_api.post("chat/completions").mock(side_effect=models)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Lets the bot's background work run until `condition` holds (it waits on the fake
    Slack's sockets, so the loop must turn; bounded, so a broken bot fails the test)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


def _meta(message: PostedMessage) -> dict:
    meta = message.metadata or {}
    return meta.get("event_payload", meta)


def _state(message: PostedMessage) -> str | None:
    return _meta(message).get("state")


def compare_messages(fake_slack: FakeSlack) -> list[PostedMessage]:
    return [m for m in fake_slack.messages.values() if _meta(m).get("kind") == "compare"]


def progress_message(fake_slack: FakeSlack) -> PostedMessage:
    (progress,) = [
        m for m in fake_slack.messages.values() if _meta(m).get("run") and _state(m) != "result"
    ]
    return progress


def result_message(fake_slack: FakeSlack) -> PostedMessage:
    (result,) = [m for m in fake_slack.messages.values() if _state(m) == "result"]
    return result


def code_blocks(message: PostedMessage) -> list[str]:
    return [
        b["text"]["text"]
        for b in message.blocks
        if b["type"] == "section" and b["text"]["text"].startswith("```")
    ]


def cancel_value(message: PostedMessage) -> str:
    (actions,) = [b for b in message.blocks if b["type"] == "actions"]
    (button,) = actions["elements"]
    assert button["action_id"] == Actions.CANCEL_COMPARE
    return button["value"]


async def in_background(work: Awaitable[object]) -> asyncio.Task[object]:
    task = asyncio.ensure_future(work)
    await asyncio.sleep(0)
    return task


@pytest.fixture
def deployed(nebius_api: respx.Router, clock: FakeClock) -> Models:
    """ftjob-1 on Nebius, its deployment active; the models, which answer in 2 s each."""
    models = Models(clock)
    on_nebius(nebius_api, models, deployments=[DEPLOYMENT])
    return models


@pytest.fixture
async def watched(harness: SlackHarness) -> str:
    """ftjob-1 is followed in a thread of C1; returns the thread's ts."""
    await harness.bot.store.add_watch("ftjob-1", "C1", "111.1", "U1")
    return "111.1"


async def test_compare_posts_progress_then_the_table_and_examples_in_the_jobs_thread(
    harness: SlackHarness, fake_slack: FakeSlack, deployed: Models, watched: str
) -> None:
    await harness.command("compare ftjob-1")

    # Every prompt of the validation file, through both models: the deployment and its base.
    assert sorted(deployed.asked) == sorted((m, q) for q in QUESTIONS for m in (BASE, TUNED))
    progress = progress_message(fake_slack)
    assert progress.thread_ts == watched
    # Edited in place while it ran, then once more when it ended, without its button.
    edits = [c.args["text"] for c in fake_slack.calls_to("chat.update")]
    assert any("of 10 answers (" in t and "(0%)" not in t for t in edits[:-1]), edits
    assert progress.text.startswith(":white_check_mark: Compared `llama-ft-xgen`")
    assert "on 5 examples of `val.jsonl`" in progress.text
    assert not [b for b in progress.blocks if b["type"] == "actions"]
    # The results: a table for all examples and three side by side, in the same thread.
    result = result_message(fake_slack)
    assert result.thread_ts == watched
    table, *examples = code_blocks(result)
    assert "Compare on 5 examples of val.jsonl" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:5]}
    # chrF (the fifth figure from the right): the fine-tuned model gives the right answers.
    assert rows["fine-tuned"][-5] == "100.0" and float(rows["base"][-5]) < 50
    assert len(examples) == 3
    assert "prompt: What is 1 plus 1?" in examples[0] and "reference: 2" in examples[0]
    assert all(len(block) <= 3000 for block in code_blocks(result))
    assert "<@U1>" in result.blocks[0]["text"]["text"]


async def test_progress_edits_stay_within_chat_update_rate_limits(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, clock: FakeClock
) -> None:
    models = Models(clock, seconds=0.1)  # 10 answers a second: far more than Slack takes
    on_nebius(nebius_api, models, deployments=[DEPLOYMENT])
    many = [f"Question {n}?" for n in range(40)]
    content = jsonl(many, {q: "yes" for q in many})
    nebius_api.get("files/file-val").respond(
        json={"id": "file-val", "filename": "val.jsonl", "bytes": len(content)}
    )
    nebius_api.get("files/file-val/content").respond(content=content)
    start = clock.monotonic()
    await harness.command("compare ftjob-1")

    seconds = clock.monotonic() - start
    assert len(models.asked) == 80 and seconds >= 8.0
    progress_edits = [
        c for c in fake_slack.calls_to("chat.update") if "answers (" in c.args["text"]
    ]
    # At most one edit per 1.5 s of the run (about 40 a minute at most, Tier 3 allows 50).
    assert 1 <= len(progress_edits) <= seconds / 1.5 + 1


async def test_cancel_stops_the_run_and_posts_the_partial_results(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, clock: FakeClock
) -> None:
    models = Models(clock, free=4)  # two whole examples, then the answers wait
    on_nebius(nebius_api, models, deployments=[DEPLOYMENT])
    run = await in_background(harness.command("compare ftjob-1"))
    await asyncio.wait_for(models.held.wait(), 10)
    progress = progress_message(fake_slack)
    await harness.click(Actions.CANCEL_COMPARE, cancel_value(progress), message_ts=progress.ts)
    await run

    progress = progress_message(fake_slack)
    assert progress.text.startswith(
        ":no_entry_sign: Comparison of job `ftjob-1` cancelled by <@U1> after 2 of 5 examples"
    )
    assert not [b for b in progress.blocks if b["type"] == "actions"]
    result = result_message(fake_slack)
    table = code_blocks(result)[0]
    assert "Compare on 2 of 5 examples of val.jsonl (cancelled" in table
    assert len(code_blocks(result)) == 1 + 2  # the table, and the two answered examples
    # The answers held at the gate were dropped, not waited for.
    assert len(models.asked) <= 6
    # A click on the Cancel of a run that has ended says so.
    await harness.click(Actions.CANCEL_COMPARE, cancel_value_of_old(progress), message_ts="1.1")
    assert "no longer running" in fake_slack.ephemerals[-1]["text"]


def cancel_value_of_old(progress: PostedMessage) -> str:
    return str(_meta(progress)["run"])


async def test_one_run_per_job_a_second_request_and_a_double_click_are_told_where_it_is(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    clock: FakeClock,
    watched: str,
) -> None:
    models = Models(clock, free=0)
    on_nebius(nebius_api, models, deployments=[DEPLOYMENT])
    first = await in_background(harness.command("compare ftjob-1"))
    await asyncio.wait_for(models.held.wait(), 10)
    # While it runs: another command, and the summary's Compare clicked twice.
    second = await in_background(harness.command("compare ftjob-1", trigger_id="T-trigger-9"))
    await until(lambda: len(fake_slack.ephemerals) == 1, "the second command's answer")
    clicks = [
        await in_background(
            harness.click(Actions.COMPARE_JOB, "ftjob-1", message_ts=watched, trigger_id=t)
        )
        for t in ("T-click-1", "T-click-2")  # each click has its own trigger
    ]
    await until(lambda: len(fake_slack.ephemerals) == 3, "the clicks' answers")
    models.gate.set()
    await asyncio.gather(first, second, *clicks)

    for ephemeral in fake_slack.ephemerals:
        assert "A comparison of job `ftjob-1` is already running" in ephemeral["text"]
        assert "see its progress" in ephemeral["text"]  # a link to the progress message
    assert len(models.asked) == 10  # one run
    assert len([m for m in fake_slack.messages.values() if _state(m) == "result"]) == 1
    # Once it has ended, the button starts a new one.
    await harness.click(Actions.COMPARE_JOB, "ftjob-1", message_ts=watched, trigger_id="T-3")
    assert len(models.asked) == 20


async def test_a_retried_command_starts_nothing_again(
    harness: SlackHarness, fake_slack: FakeSlack, deployed: Models
) -> None:
    await harness.command("compare ftjob-1", trigger_id="T-same")
    await harness.command("compare ftjob-1", trigger_id="T-same")  # Slack's retry

    assert len(deployed.asked) == 10
    assert len([m for m in fake_slack.messages.values() if _state(m) == "result"]) == 1
    assert fake_slack.ephemerals == []


async def test_on_nebius_without_a_deployment_it_says_to_press_deploy(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, clock: FakeClock
) -> None:
    models = Models(clock)
    on_nebius(nebius_api, models, deployments=[])
    await harness.command("compare ftjob-1")

    (answer,) = fake_slack.ephemerals_for("U1")
    assert "Job `ftjob-1` cannot be compared yet" in answer["text"]
    assert "only once it is deployed" in answer["text"]
    assert (
        "Press *Deploy best checkpoint*" in answer["text"]
        and "`/finetune deploy ftjob-1`" in answer["text"]
    )
    assert "--model" not in answer["text"]  # the CLI's words are not the bot's
    assert models.asked == [] and compare_messages(fake_slack) == []


async def test_a_deployment_still_starting_is_waited_for(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, clock: FakeClock
) -> None:
    models = Models(clock)
    on_nebius(nebius_api, models, deployments=[{**DEPLOYMENT, "status": "validating"}])
    await harness.command("compare ftjob-1")

    (answer,) = fake_slack.ephemerals_for("U1")
    assert f"its deployment `{TUNED}` is still validating" in answer["text"]
    assert "Press *Compare* again when the deployment says it is active" in answer["text"]
    assert models.asked == []


async def test_a_file_shared_in_the_channel_is_found_by_its_name(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, deployed: Models
) -> None:
    validation = nebius_api.get("files/file-val/content")
    mine = QUESTIONS[3:]
    await harness.upload(
        "my prompts.jsonl", jsonl(mine, ANSWERS), file_id="F7", ts="1700000000.000050"
    )
    await harness.command('compare ftjob-1 "my prompts.jsonl"')

    assert sorted(q for _, q in deployed.asked) == sorted(mine * 2)
    assert not validation.called  # the job's own validation file is not needed
    table = code_blocks(result_message(fake_slack))[0]
    assert "Compare on 2 examples of my prompts.jsonl" in table


async def test_a_file_that_is_not_there_and_a_bad_option_are_said_plainly(
    harness: SlackHarness, fake_slack: FakeSlack, deployed: Models
) -> None:
    await harness.command("compare ftjob-1 nothing.jsonl")
    await harness.command("compare ftjob-1 limit=0")
    await harness.command("compare ftjob-1 temperature=1")

    first, second, third = (e["text"] for e in fake_slack.ephemerals_for("U1"))
    assert "compare file `nothing.jsonl`: no recent upload with that name or id" in first
    assert "limit must be a whole number from 1 to 500 (got '0')" in second
    assert "unknown option temperature; the options are: limit, max_tokens" in third
    assert deployed.asked == []


async def test_a_model_that_cannot_be_used_stops_the_run_with_its_reason(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, deployed: Models
) -> None:
    nebius_api.post("chat/completions").respond(
        404, json={"error": {"message": f"model {TUNED} not found", "code": "model_not_found"}}
    )
    await harness.command("compare ftjob-1")

    progress = progress_message(fake_slack)
    assert progress.text.startswith(":x: The comparison of job `ftjob-1` stopped:")
    assert "cannot be used" in progress.text
    assert not [m for m in fake_slack.messages.values() if _state(m) == "result"]


async def test_compare_is_refused_to_someone_not_on_the_allowlist(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, deployed: Models
) -> None:
    harness = harness_factory(allowed_users=frozenset({"U9"}))
    await harness.command("compare ftjob-1")
    await harness.click(Actions.COMPARE_JOB, "ftjob-1")

    assert all("Sorry" in e["text"] for e in fake_slack.ephemerals_for("U1"))
    assert len(fake_slack.ephemerals_for("U1")) == 2 and deployed.asked == []


async def test_a_bot_stopping_mid_run_says_so_in_the_progress_message(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, clock: FakeClock
) -> None:
    models = Models(clock, free=2)
    on_nebius(nebius_api, models, deployments=[DEPLOYMENT])
    run = await in_background(harness.command("compare ftjob-1"))
    await asyncio.wait_for(models.held.wait(), 10)
    await harness.bot.background.cancel_all()  # what a shutdown does first
    await run

    progress = progress_message(fake_slack)
    assert progress.text.startswith(
        ":x: The comparison of job `ftjob-1` stopped: the bot stopped before it finished."
    )
    assert not [b for b in progress.blocks if b["type"] == "actions"]  # no Cancel left
