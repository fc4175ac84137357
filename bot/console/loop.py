"""The console's input loop: what a person (or a script) types, handed to the bot's core.

`/finetune ...` reaches the core exactly as the Slack command listener hands it over,
`upload PATH` as a file shared in the channel, `click N` as a button click; forms the bot
opens are asked as prompts. After each line the loop waits (up to `settle_s`) for the work
that line started, so a script's output reads in the order a person would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import shlex
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from bot.chat_interface import SharedFile
from bot.clock import Clock, RealClock
from bot.console.forms import FormCancelled, fill_form, form_title
from bot.console.home_text import home_text
from bot.console.render import text_object
from bot.console.screen import Screen
from bot.console.terminal_chat import CHANNEL, Action, ConsoleChat, Form
from bot.core import Bot, ButtonClick, CommandRequest, FormSubmission
from client import NebiusClient, NebiusError

PROMPT = "xgenlens> "
DEFAULT_SETTLE_S = 60.0
DEFAULT_WAIT_S = 3600.0
WAIT_POLL_S = 5.0
# How often `wait` looks whether the watcher has finished a job's thread.
WATCH_POLL_S = 0.5

HELP = """\
Type what you would do in Slack:
  /finetune help                 the bot's commands (models, create, status JOB, events JOB, ...)
  upload PATH [comment]          share a local file in the channel, as if uploaded to Slack
  click N                        press button [N] (or: click LABEL, the latest button so named)
  wait [SECONDS]                 wait until the jobs shown so far have ended (default 1 hour)
  home                           your jobs and deployments, as the bot's Slack Home tab shows them
  help                           this help
  quit                           stop the bot (Ctrl-D too)
$JOB stands for the latest job shown, e.g. `/finetune events $JOB`.
In a form, Enter keeps the [default] and `cancel` stops."""


# The line of input whose work a task is doing; tasks inherit it from the task that made them.
LINE: contextvars.ContextVar[int | None] = contextvars.ContextVar("console_line", default=None)


class LineTasks:
    """Knows which tasks each line of input started (directly or through other tasks).

    A task factory reads LINE where each task is created. The watcher, started before any
    line, polls forever with tasks of its own: those carry no line and are never waited for.
    """

    def __init__(self) -> None:
        self.origin: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = weakref.WeakKeyDictionary()
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        previous = self._previous = loop.get_task_factory()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            context = kwargs.get("context")
            line = context.get(LINE) if context is not None else LINE.get()
            if previous is not None:
                task = previous(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            if line is not None:
                self.origin[task] = line
            return task

        loop.set_task_factory(factory)

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.set_task_factory(self._previous)
            self._loop = None

    def pending(self, line: int | None) -> list[asyncio.Task[Any]]:
        """Unfinished tasks of `line` (of every line when None)."""
        return [
            task
            for task, origin in list(self.origin.items())
            if not task.done() and (line is None or origin == line)
        ]


class LineSource(Protocol):
    async def read(self, prompt: str) -> str | None:
        """The next line typed (without its newline); None when the input has ended."""
        ...


class ScriptInput:
    """Lines from a file or a pipe, echoed after the prompt as if typed."""

    def __init__(self, lines: Iterable[str], screen: Screen) -> None:
        self._lines: Iterator[str] = iter(lines)
        self.screen = screen

    async def read(self, prompt: str) -> str | None:
        for raw in self._lines:
            line = raw.rstrip("\r\n")
            if prompt == PROMPT and (not line.strip() or line.lstrip().startswith("#")):
                continue  # blank lines and comments between commands
            self.screen.show([prompt + line])
            return line
        return None


class KeyboardInput:
    """A person at a terminal: `input()` in a thread, so the bot keeps printing meanwhile."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def _read(self, prompt: str) -> str | None:
        self.screen.input_started(prompt)
        try:
            return input(prompt)
        except EOFError:
            return None
        finally:
            self.screen.input_finished()

    async def read(self, prompt: str) -> str | None:
        # A daemon thread, not asyncio.to_thread: on Ctrl-C the loop's executor would wait
        # at exit for an input() that only Enter can end.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()

        def deliver(line: str | None) -> None:
            if not future.done():
                future.set_result(line)

        def work() -> None:
            line = self._read(prompt)
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(deliver, line)

        threading.Thread(target=work, name="console-input", daemon=True).start()
        return await future


class Console:
    def __init__(
        self,
        bot: Bot,
        chat: ConsoleChat,
        *,
        nebius: NebiusClient | None = None,
        settle_s: float = DEFAULT_SETTLE_S,
        clock: Clock | None = None,
    ) -> None:
        self.bot = bot
        self.chat = chat
        self.nebius = nebius
        self.settle_s = settle_s
        self.clock = clock or RealClock()
        self.problems = 0  # lines the console could not act on (a script's exit status)
        self.tasks = LineTasks()
        self._triggers = 0
        self._lines = 0

    def say(self, *lines: str) -> None:
        self.chat.notice(*lines)

    def problem(self, text: str) -> None:
        self.problems += 1
        self.say(text)

    async def run(self, source: LineSource) -> int:
        """Reads and acts until `quit` or the end of the input; 1 if some line was refused."""
        self.tasks.install()
        try:
            while True:
                await self.answer_forms(source)
                line = await source.read(PROMPT)
                if line is None:
                    break
                if not await self.handle(line, source):
                    break
            await self.settle(None)
            await self.answer_forms(source)
        finally:
            self.tasks.uninstall()
        return 1 if self.problems else 0

    # ------------------------------------------------------------------ one line

    async def handle(self, line: str, source: LineSource) -> bool:
        """Acts on one line; False when the person asked to quit."""
        text = line.strip()
        if not text:
            return True
        if "$JOB" in text:
            if self.chat.last_job is None:
                self.problem("$JOB stands for the latest job shown, and no job has been shown yet.")
                return True
            text = text.replace("$JOB", self.chat.last_job)
        word, _, rest = text.partition(" ")
        word = word.lower()
        if word in ("quit", "exit"):
            return False
        self._lines += 1
        line_number = self._lines
        token = LINE.set(line_number)
        try:
            known = await self._dispatch(word, rest, source)
        finally:
            LINE.reset(token)
        if known:
            await self.settle(line_number)
        return True

    async def _dispatch(self, word: str, rest: str, source: LineSource) -> bool:
        """Acts on one line; False when the line was not understood."""
        if word in ("/finetune", "finetune"):
            self.bot.command(
                CommandRequest(
                    text=rest.strip(),
                    user=self.chat.user,
                    channel=CHANNEL,
                    trigger_id=self._trigger(),
                )
            )
        elif word == "upload":
            self.upload(rest)
        elif word == "click":
            await self.click(rest.strip(), source)
        elif word == "wait":
            await self.wait(rest.strip())
        elif word == "home":
            await self.home()
        elif word in ("help", "?"):
            self.say(HELP)
        else:
            self.problem(f"I don't know `{word}`. Type `help` for what the console understands.")
            return False
        return True

    def _trigger(self) -> str:
        # Unique across sessions too: the core takes a repeated trigger for a redelivery.
        self._triggers += 1
        return f"console-{self.chat.session:x}-{self._triggers}"

    async def settle(self, line: int | None) -> None:
        """Waits, up to settle_s, for the work `line` started (every line's when None)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_s
        while True:
            pending = self.tasks.pending(line)
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                return
            await asyncio.wait(pending, timeout=remaining)

    def upload(self, rest: str) -> None:
        try:
            words = shlex.split(rest)
        except ValueError as error:
            self.problem(f"Could not read the upload command: {error}.")
            return
        if not words:
            self.problem("`upload` needs a file: upload PATH [comment]")
            return
        path = Path(words[0]).expanduser()
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            self.problem(f"Cannot upload {path}: it {what}.")
            return
        comment = " ".join(words[1:])
        size = path.stat().st_size
        file_id = self.chat.new_file_id()
        shown = f"shared {path.name} ({size:,} bytes, file {file_id})"
        ref = self.chat.show_user_message(shown + (f"\n{comment}" if comment else ""))
        self.chat.share_local_file(file_id, path.resolve())
        shared = SharedFile(
            id=file_id,
            name=path.name,
            channel=CHANNEL,
            message_ts=ref.ts,
            user=self.chat.user,
            size=size,
        )
        if not shared.is_jsonl:
            # In Slack silence is right (people share all sorts); here it would puzzle.
            self.say(f"(the bot checks .jsonl datasets only, so it leaves {path.name} alone)")
        self.bot.file_shared(shared)

    def _find_action(self, which: str) -> Action | None:
        if which.isdigit():
            return self.chat.actions.get(int(which))
        wanted = which.strip("\"'").lower()
        named = [a for a in self.chat.actions.values() if a.label.lower() == wanted]
        return named[-1] if named else None

    async def click(self, which: str, source: LineSource) -> None:
        if not which:
            self.problem("`click` needs a button number: click N")
            return
        action = self._find_action(which)
        if action is None:
            last = max(self.chat.actions, default=0)
            known = f"buttons are numbered 1 to {last}" if last else "no button has been shown yet"
            self.problem(f"There is no button {which}: {known}.")
            return
        confirm = action.element.get("confirm")
        if confirm:
            question = " ".join(
                part
                for part in (text_object(confirm.get("title")), text_object(confirm.get("text")))
                if part
            )
            yes = text_object(confirm.get("confirm")) or "yes"
            answer = await source.read(f"{question} {yes}? [y/N] ")
            if (answer or "").strip().lower() not in ("y", "yes"):
                self.say(f"Not clicked: {action.label}.")
                return
        self.bot.button(
            ButtonClick(
                action_id=action.action_id,
                value=action.value,
                user=self.chat.user,
                channel=action.channel,
                message_ts=action.message_ts,
                thread_ts=action.thread_ts,
                trigger_id=self._trigger(),
                ephemeral=action.ephemeral,
            )
        )

    # ------------------------------------------------------------------ forms

    async def answer_forms(self, source: LineSource) -> None:
        while not self.chat.forms.empty():
            form = self.chat.forms.get_nowait()
            await self.answer_form(form, source)

    async def answer_form(self, form: Form, source: LineSource) -> None:
        """Asks the form's questions, submits, and asks again what the core found wrong."""
        inputs = {
            str(b.get("block_id")): text_object(b.get("label"))
            for b in form.view.get("blocks") or []
            if b.get("type") == "input"
        }
        values: dict[str, dict[str, Any]] = {}
        only: set[str] | None = None
        while True:
            try:
                values.update(
                    await fill_form(form.view, source.read, self.chat.screen.show, only=only)
                )
            except FormCancelled:
                self.say(f"{form_title(form.view)}: cancelled, nothing was sent.")
                return
            self._lines += 1
            line_number = self._lines
            token = LINE.set(line_number)
            try:
                errors = await self.bot.form_submitted(
                    FormSubmission(
                        callback_id=str(form.view.get("callback_id", "")),
                        private_metadata=str(form.view.get("private_metadata", "")),
                        values=values,
                        user=self.chat.user,
                        trigger_id=form.trigger_id,
                    )
                )
            finally:
                LINE.reset(token)
            if not errors:
                await self.settle(line_number)
                return
            self.say(*(f"  {inputs.get(block, block)}: {error}" for block, error in errors.items()))
            only = {block for block in errors if block in inputs}
            if not only:
                self.problem(f"{form_title(form.view)}: not sent.")
                return

    # ------------------------------------------------------------------ wait

    async def _watches_finished(self, jobs: list[str], deadline: float) -> None:
        """Lets the watcher post its last words (the summary) on the jobs that ended."""
        while any(w.job_id in jobs for w in await self.bot.store.active_watches()):
            if self.clock.monotonic() >= deadline:
                return
            await self.clock.sleep(WATCH_POLL_S)

    async def home(self) -> None:
        """The Home tab Slack would show this person, as text (read now, not debounced)."""
        self.say(home_text(await self.bot.home.builder.build(self.chat.user)))

    async def wait(self, rest: str) -> None:
        try:
            limit = float(rest) if rest else DEFAULT_WAIT_S
        except ValueError:
            self.problem(f"`wait` takes a number of seconds, not `{rest}`.")
            return
        if self.nebius is None:
            self.problem("There is no Nebius (nor local engine) to ask about jobs.")
            return
        jobs = list(self.chat.jobs)
        pending = list(jobs)
        if not pending:
            self.problem("No job has been shown yet, so there is nothing to wait for.")
            return
        deadline = self.clock.monotonic() + limit
        seen: dict[str, str] = {}
        while True:
            still = []
            for job_id in pending:
                try:
                    job = await self.nebius.retrieve_job(job_id)
                except NebiusError as error:
                    self.problem(f"Could not follow job {job_id}: {error.message}")
                    return
                if job.is_terminal:
                    self.say(f"(job {job_id} has ended: {job.status})")
                    continue
                still.append(job_id)
                if seen.get(job_id) != job.status:
                    # A line per change of status: the person knows the wait is alive.
                    seen[job_id] = job.status
                    self.say(f"(waiting: job {job_id} is {job.status})")
            pending = still
            if not pending:
                await self._watches_finished(jobs, deadline)
                return
            if self.clock.monotonic() >= deadline:
                self.problem(f"Still running after {limit:g} s: {', '.join(pending)}.")
                return
            await self.clock.sleep(WAIT_POLL_S)
