"""Builds the Bolt app around the core: the only place the two meet."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
import httpx
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

from bot.clock import Clock
from bot.config import BotSettings
from bot.core import Bot
from bot.listeners import register_listeners
from bot.listeners.commands.finetune import finetune_command
from bot.slack.fast_ack import CommandListener, command_verifier
from bot.slack.web_chat import SlackChat, api_host
from bot.store import store_for
from client import NebiusClient


@dataclass
class SlackBot:
    app: AsyncApp
    bot: Bot
    chat: SlackChat
    # What HTTP mode runs for `/finetune` ahead of Bolt (bot/slack/fast_ack.py): the listener
    # Bolt itself runs in Socket Mode.
    command_listener: CommandListener = finetune_command
    # Checks the signatures of those commands; None outside HTTP mode (Bolt then sees all).
    verifier: SignatureVerifier | None = field(default=None, repr=False)

    async def open(self) -> None:
        """Gives the Web API client one HTTP session for all its calls (call inside the loop
        that serves). Without one, slack_sdk opens a new connection per call (for slack.com a
        TLS handshake each); under a burst of commands those connections cost more CPU than
        answering the commands, and slow the acknowledgements that share the loop.
        Connects the store too (PostgreSQL connects and migrates here)."""
        await self.bot.store.open()
        client = self.chat.client
        if client.session is None or client.session.closed:
            client.session = aiohttp.ClientSession(
                # A session of the caller's own gets no per-call timeout from the SDK.
                timeout=aiohttp.ClientTimeout(total=client.timeout),
                trust_env=client.trust_env_in_session,
            )

    async def aclose(self) -> None:
        await self.bot.aclose()
        await self.chat.aclose()
        session = self.chat.client.session
        if session is not None:
            await session.close()


def build_slack_bot(
    settings: BotSettings,
    *,
    nebius: NebiusClient | None = None,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
) -> SlackBot:
    if settings.slack_bot_token is None:
        raise ValueError("SLACK_BOT_TOKEN is not set")
    token = settings.slack_bot_token.get_secret_value()
    signing = settings.slack_signing_secret
    secret = signing.get_secret_value() if signing else ""
    # Socket Mode requests are authenticated by the connection, not by a signature.
    http_mode = settings.slack_mode == "http"
    # Bolt makes the Web API client from the token: given a client of ours it would also read
    # SLACK_BOT_TOKEN from the environment and warn, on every start, that it goes unused.
    app = AsyncApp(
        token=token,
        signing_secret=secret,
        request_verification_enabled=http_mode,
        # Quiet "unhandled request" noise: every listener we need is registered.
        raise_error_for_unhandled_request=False,
        # Listeners only acknowledge and hand over to the core's own background tasks, so
        # running them inline answers Slack sooner than Bolt's poll-for-ack loop (10 ms steps).
        process_before_response=True,
    )
    client = app.client
    client.base_url = settings.slack_api_url
    # Only when pointed somewhere other than slack.com (a test server) does that host serve files.
    host = api_host(settings.slack_api_url)
    extra_hosts = frozenset() if host.endswith("slack.com") else frozenset({host})
    chat = SlackChat(
        client,
        bot_token=token,
        clock=clock,
        http=http,
        extra_file_hosts=extra_hosts,
        secrets=settings.secrets(),
    )
    store = store_for(settings, clock=clock)
    bot = Bot(settings, store, chat, nebius, clock=clock)
    register_listeners(app, bot)
    verifier = command_verifier(secret) if http_mode else None
    return SlackBot(app=app, bot=bot, chat=chat, verifier=verifier)
