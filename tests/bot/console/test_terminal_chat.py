"""The console chat adapter: each message once, threads, updates, buttons, files, forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.blocks.jobs import job_card_message
from bot.chat_interface import ChatError, FileTooLarge, Message, MessageRef, SharedFile
from bot.console.terminal_chat import CHANNEL, ConsoleChat
from bot.core.commands import usage
from client import Job
from tests.bot.console.conftest import RecordingScreen
from tests.bot.fake_clock import FakeClock


def job(status: str, steps: int) -> Job:
    return Job(id="ftjob-1", model="m", status=status, trained_steps=steps, total_steps=10)


async def test_a_post_is_numbered_and_its_thread_reply_is_indented_and_labelled(
    chat: ConsoleChat, screen: RecordingScreen
) -> None:
    parent = await chat.post(CHANNEL, Message(text="Report for *train.jsonl*"))
    await chat.post(parent.channel, Message(text="Waiting for Nebius"), thread_ts=parent.ts)
    assert screen.text.splitlines() == [
        "#1 xgenlens:",
        "    Report for train.jsonl",
        "    ↳ #2 xgenlens, in the thread of #1 Report for train.jsonl:",
        "      Waiting for Nebius",
    ]


async def test_an_updated_card_is_shown_again_with_what_changed_marked(
    chat: ConsoleChat, screen: RecordingScreen
) -> None:
    ref = await chat.post(CHANNEL, job_card_message(job("running", 3)))
    posted = len(screen.text.splitlines())
    await chat.update(ref, job_card_message(job("running", 6)))
    shown = screen.text.splitlines()[posted:]
    assert shown[0] == "#1 xgenlens updated (1 line changed, marked *):"
    assert "    * Progress: step 6 of 10 (60%)" in shown
    assert "      Status: ⚙️ running" in shown
    # The same buttons keep their numbers, so `click 1` still means Refresh.
    assert shown[-1] == "      [1] Refresh  [2] Cancel  [3] Chart"
    assert sorted(chat.actions) == [1, 2, 3]


async def test_a_card_of_an_earlier_session_is_shown_afresh_when_updated(
    chat: ConsoleChat, screen: RecordingScreen
) -> None:
    await chat.update(MessageRef(CHANNEL, "9.000000"), job_card_message(job("running", 3)))
    lines = screen.text.splitlines()
    assert lines[0] == "#1 xgenlens updated a message of an earlier session:"
    assert "    Progress: step 3 of 10 (30%)" in lines
    assert chat.actions[1].message_ts == "9.000000"


async def test_an_ephemeral_message_says_who_sees_it_and_its_buttons_are_marked_ephemeral(
    chat: ConsoleChat, screen: RecordingScreen
) -> None:
    await chat.ephemeral(CHANNEL, chat.user, job_card_message(job("queued", 0)))
    assert screen.text.splitlines()[0] == "xgenlens (only @ada sees this):"
    assert chat.actions[1].ephemeral and chat.actions[1].message_ts is None
    assert chat.last_job == "ftjob-1"


async def test_a_shared_file_is_saved_to_the_downloads_folder_without_overwriting(
    chat: ConsoleChat, screen: RecordingScreen, tmp_path: Path
) -> None:
    source = tmp_path / "adapter.safetensors"
    source.write_bytes(b"weights")
    parent = await chat.post(CHANNEL, Message(text="Job done"))
    for _ in range(2):
        await chat.upload_file(CHANNEL, source, filename="adapter.safetensors", thread_ts=parent.ts)
    saved = sorted(p.name for p in (tmp_path / "downloads").iterdir())
    assert saved == ["adapter (2).safetensors", "adapter.safetensors"]
    assert (tmp_path / "downloads" / "adapter (2).safetensors").read_bytes() == b"weights"
    assert "📎 adapter.safetensors (7 bytes) saved to " in screen.text


async def test_fetching_a_local_file_copies_it_and_reports_progress(
    chat: ConsoleChat, tmp_path: Path
) -> None:
    source = tmp_path / "train.jsonl"
    source.write_text('{"text": "hi"}\n')
    chat.local_files["F1"] = source
    shared = SharedFile(id="F1", name="train.jsonl", channel=CHANNEL, message_ts=None, user=None)
    seen: list[int] = []

    async def progress(done: int, total: int | None) -> None:
        seen.append(done)

    size = await chat.fetch_file(shared, tmp_path / "copy", max_bytes=100, on_progress=progress)
    assert size == 15 and seen == [15]
    assert (tmp_path / "copy").read_text() == '{"text": "hi"}\n'
    with pytest.raises(FileTooLarge):
        await chat.fetch_file(shared, tmp_path / "copy", max_bytes=10)
    source.unlink()
    with pytest.raises(ChatError, match="no longer there"):
        await chat.fetch_file(shared, tmp_path / "copy", max_bytes=100)


async def test_a_form_is_queued_for_the_input_loop(chat: ConsoleChat) -> None:
    await chat.open_form("trigger-1", {"type": "modal", "blocks": []})
    form = chat.forms.get_nowait()
    assert form.trigger_id == "trigger-1"


async def test_usage_is_plain_text_with_the_command_list_indented(
    chat: ConsoleChat, screen: RecordingScreen
) -> None:
    await chat.ephemeral(CHANNEL, chat.user, usage("I don't know `frob`."))
    lines = screen.text.splitlines()
    assert lines[1] == "    ⚠️ I don't know frob."
    assert "        /finetune status JOB                    a job's card" in lines


async def test_ids_do_not_repeat_across_sessions_and_shared_files_stay_known(
    screen: RecordingScreen, tmp_path: Path
) -> None:
    index = tmp_path / "files.json"
    first = ConsoleChat(screen, tmp_path, files_index=index, clock=FakeClock(wall=1_000))
    file_id = first.new_file_id()
    first.share_local_file(file_id, tmp_path / "train.jsonl")
    ref = await first.post(CHANNEL, Message(text="hi"))
    later = ConsoleChat(screen, tmp_path, files_index=index, clock=FakeClock(wall=2_000))
    assert later.new_file_id() != file_id
    assert (await later.post(CHANNEL, Message(text="hi"))).ts != ref.ts
    assert later.local_files[file_id] == tmp_path / "train.jsonl"


async def test_an_update_that_changes_nothing_is_not_shown_again(
    chat: ConsoleChat, screen: RecordingScreen
) -> None:
    ref = await chat.post(CHANNEL, job_card_message(job("running", 3)))
    shown = screen.text
    await chat.update(ref, job_card_message(job("running", 3)))
    assert screen.text == shown


async def test_a_jobs_files_are_saved_in_a_folder_named_after_the_job(
    chat: ConsoleChat, tmp_path: Path
) -> None:
    source = tmp_path / "adapter_config.json"
    source.write_text("{}")
    card = await chat.post(CHANNEL, job_card_message(job("succeeded", 10)))
    await chat.upload_file(CHANNEL, source, filename="adapter_config.json", thread_ts=card.ts)
    assert (tmp_path / "downloads" / "ftjob-1" / "adapter_config.json").read_text() == "{}"
