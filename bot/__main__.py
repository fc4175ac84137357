"""Entry point of `make run` and `xgenlens-bot`.

The Slack app when Slack tokens are set, console mode otherwise; Nebius when
NEBIUS_API_KEY is set, the local engine otherwise (see `bot.backends`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.config import BotSettings

if TYPE_CHECKING:
    from bot.slack.serve import SlackCheck


def main(argv: list[str] | None = None) -> int:
    _flush_each_line()
    try:
        settings = BotSettings.from_env()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        print(f"xgenlens-bot: bad configuration: {problems}", file=sys.stderr)
        return 2
    if settings.slack_mode == "none":
        # The console prints its own first lines and logs to a file: the terminal is
        # the conversation.
        from bot.console import main as console_main

        return console_main(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run_slack(settings)


def _flush_each_line() -> None:
    """Under a service manager or in a container stdout is a file or a pipe, which Python
    fills in blocks: the first lines would only show when the bot exits."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def run_slack(settings: BotSettings) -> int:
    from bot.slack.serve import SlackStartError, check_slack

    try:
        # Both tokens are checked before anything is said about the mode.
        check = asyncio.run(check_slack(settings))
        print(check.line)
        return _serve(settings, check)
    except SlackStartError as error:
        print(f"xgenlens-bot: {error}", file=sys.stderr)
        return 1


def _serve(settings: BotSettings, check: SlackCheck) -> int:
    from bot.backends import BackendError, start_backends
    from bot.slack.app import build_slack_bot
    from bot.slack.serve import run_http, run_socket_mode

    try:
        backends = start_backends(settings)
    except BackendError as error:
        print(f"xgenlens-bot: {error}", file=sys.stderr)
        return 1
    for line in backends.lines():  # which Slack mode, which Nebius, where the state lives
        print(line)
    try:
        if settings.slack_mode == "http":
            run_http(build_slack_bot(settings, nebius=backends.client()), settings)
            return 0

        async def socket() -> None:
            # Built inside the loop: the clients bind to it.
            slack = build_slack_bot(settings, nebius=backends.client())
            await run_socket_mode(slack, settings, first_url=check.socket_url)

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(socket())
        return 0
    finally:
        backends.close()


if __name__ == "__main__":
    sys.exit(main())
