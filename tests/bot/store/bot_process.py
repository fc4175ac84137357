"""One bot process for tests that start several on one database: what `python -m bot` serves
in HTTP mode (the same settings from the environment, the same Slack app, store, watcher and
HTTP server), with two changes a test needs: running jobs are polled every
XGENLENS_TEST_POLL_S seconds (not every 10), and the process first prints its store session
(`session <id>`) so the test knows which process holds which watches.

    XGENLENS_TEST_POLL_S=0.2 PORT=3001 ... python -m tests.bot.store.bot_process

It stops on SIGTERM as the bot does (its watches handed back); SIGKILL stops it dead.
"""

from __future__ import annotations

import logging
import os
import sys

from bot.backends import start_backends
from bot.config import BotSettings
from bot.slack.app import build_slack_bot
from bot.slack.serve import http_server

POLL_VARIABLE = "XGENLENS_TEST_POLL_S"


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(process)d %(levelname)s %(message)s")
    settings = BotSettings.from_env()
    backends = start_backends(settings)
    slack = build_slack_bot(settings, nebius=backends.client(max_retries=2))
    watcher = slack.bot.watcher
    assert watcher is not None
    poll_s = float(os.environ[POLL_VARIABLE])
    watcher.poll_s = {status: poll_s for status in watcher.poll_s}
    print(f"session {slack.bot.store.session}", flush=True)
    http_server(slack, "127.0.0.1", settings.http_port, log_level="warning").run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
