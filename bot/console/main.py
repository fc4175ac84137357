"""`xgenlens-bot` with no Slack tokens: the bot in this terminal.

python -m bot                      # interactive (no SLACK_* tokens set)
python -m bot --script demo.txt    # run the lines of a file, print what a person would see
python -m bot < demo.txt           # the same from a pipe
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from bot.backends import BackendError, Backends, start_backends
from bot.clock import Clock
from bot.config import BotSettings
from bot.console.loop import DEFAULT_SETTLE_S, PROMPT, Console, KeyboardInput, ScriptInput
from bot.console.screen import Screen, TerminalScreen
from bot.console.terminal_chat import ConsoleChat
from bot.core import Bot
from bot.store import store_for

DOWNLOADS_FOLDER = "downloads"
# Where the files shared with `upload PATH` are, so a later session can still use them.
FILES_INDEX = "console-files.json"
LOG_FILE = "console.log"
# At the keyboard the prompt comes back soon; answers arriving later are drawn above it.
INTERACTIVE_SETTLE_S = 2.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xgenlens-bot",
        description="The XGenLens fine-tuning bot in this terminal (console mode).",
    )
    p.add_argument(
        "--script",
        type=Path,
        metavar="FILE",
        help="run the lines of FILE instead of reading the keyboard ('-' for standard input)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=None,
        metavar="SECONDS",
        help=(
            "how long to wait for the bot's answers to a line before taking the next "
            f"(default: {DEFAULT_SETTLE_S:g} for scripts, {INTERACTIVE_SETTLE_S:g} at the "
            "keyboard, where later answers appear above the prompt)"
        ),
    )
    p.add_argument(
        "--downloads",
        type=Path,
        metavar="DIR",
        help="where files the bot shares are saved (default: DATA_DIR/downloads)",
    )
    p.add_argument(
        "--no-warm-worker",
        action="store_true",
        help="local engine: start each job's trainer from scratch (saves memory)",
    )
    return p


def _settings() -> BotSettings | None:
    try:
        return BotSettings.from_env()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        print(f"xgenlens-bot: bad configuration: {problems}", file=sys.stderr)
        return None


def _read_script(path: Path) -> list[str] | None:
    if str(path) == "-":
        return sys.stdin.read().splitlines()
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        print(f"xgenlens-bot: the script {path} does not exist.", file=sys.stderr)
    except IsADirectoryError:
        print(f"xgenlens-bot: the script {path} is a folder, not a file.", file=sys.stderr)
    except UnicodeDecodeError as error:
        print(
            f"xgenlens-bot: the script {path} is not UTF-8 text ({error.reason}).", file=sys.stderr
        )
    except OSError as error:
        print(f"xgenlens-bot: cannot read the script {path}: {error.strerror}.", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = _settings()
    if settings is None:
        return 2
    script: list[str] | None = None
    if args.script is not None:
        script = _read_script(args.script)
        if script is None:
            return 2
    elif not sys.stdin.isatty():
        script = sys.stdin.read().splitlines()
    # The bot's own log goes to a file: the terminal is the chat.
    with _log_to(settings.data_dir / LOG_FILE):
        return _run(args, settings, script)


def _run(args: argparse.Namespace, settings: BotSettings, script: list[str] | None) -> int:
    try:
        backends = start_backends(settings, warm_worker=not args.no_warm_worker)
    except BackendError as error:
        print(f"xgenlens-bot: {error}", file=sys.stderr)
        return 1
    try:
        for line in backends.lines():
            print(line)
        print("Type `help` for what you can do here, `quit` to stop.", flush=True)
        downloads = args.downloads or settings.data_dir / DOWNLOADS_FOLDER
        with contextlib.suppress(KeyboardInterrupt):
            settle = args.settle
            if settle is None:
                settle = INTERACTIVE_SETTLE_S if script is None else DEFAULT_SETTLE_S
            return asyncio.run(run_console(backends, downloads, script, settle_s=settle))
        return 0
    finally:
        backends.close()


async def run_console(
    backends: Backends,
    downloads: Path,
    script: list[str] | None,
    *,
    settle_s: float = DEFAULT_SETTLE_S,
    screen: Screen | None = None,
    clock: Clock | None = None,
    user_name: str | None = None,
) -> int:
    """One console session over the chosen Nebius; the lines of `script`, or the keyboard."""
    interactive = script is None
    screen = screen or (TerminalScreen() if interactive else Screen())
    chat = ConsoleChat(
        screen,
        downloads,
        user_name=user_name or _user_name(),
        files_index=backends.settings.data_dir / FILES_INDEX,
        clock=clock,
    )
    nebius = backends.client()
    store = store_for(backends.settings)
    await store.open()
    bot = Bot(backends.settings, store, chat, nebius)
    console = Console(bot, chat, nebius=nebius, settle_s=settle_s, clock=clock)
    # Resumes the watches of earlier sessions too: their threads continue here.
    bot.start_watching()
    source = KeyboardInput(screen) if script is None else ScriptInput(script, screen)
    try:
        code = await console.run(source)
        # A refused line fails a script; at the keyboard the person has read why already.
        return 0 if interactive else code
    finally:
        if interactive:
            screen.show(["", "Bye."])
        await bot.aclose()


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """The bot's log in a file for the session (the terminal is the conversation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "you"


__all__ = ["PROMPT", "main", "run_console"]
