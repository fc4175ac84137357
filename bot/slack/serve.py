"""Running the Slack app: Socket Mode (the default) or HTTP (Starlette under uvicorn)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.config import BotSettings
from bot.slack.app import SlackBot
from bot.slack.fast_ack import acknowledge_command, signed_command
from bot.slack.socket_link import (
    PING_INTERVAL_S,
    REFUSALS,
    AppTokenRefused,
    BoltOverLink,
    IssuedUrl,
    SocketLink,
    open_connection,
)

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


class SlackStartError(Exception):
    """Slack cannot be used with these settings; the message says what to check."""


@dataclass(frozen=True)
class SlackCheck:
    """What the start-up check found: the first line to print and, in Socket Mode, the
    WebSocket URL the check opened (the link connects to it instead of asking again)."""

    line: str
    socket_url: IssuedUrl | None = None


APP_TOKEN_HELP = (
    "create an app-level token with the connections:write scope (Basic Information > "
    "App-Level Tokens) and set SLACK_APP_TOKEN to it (xapp-...)"
)
BOT_TOKEN_HELP = "copy the Bot User OAuth Token (xoxb-...) from OAuth & Permissions"


def app_token_refused(code: str, *, while_running: bool = False) -> str:
    if code not in REFUSALS:  # ratelimited (a Tier 1 method), internal_error, ...
        return (
            f"Slack did not open a Socket Mode connection just now ({code}): "
            "start the bot again in a minute."
        )
    when = " while reconnecting" if while_running else ""
    return f"Slack refused SLACK_APP_TOKEN ({code}){when}: {APP_TOKEN_HELP}."


def token_kind_problems(settings: BotSettings) -> list[str]:
    """A token in the wrong variable, said before any call (Slack's answer would be a bare
    `not_allowed_token_type` or `invalid_auth`). Only a prefix is named, never a token."""
    problems = []
    bot = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if bot.startswith("xapp-"):
        problems.append(
            "SLACK_BOT_TOKEN holds an app-level token (xapp-...): "
            f"{BOT_TOKEN_HELP}; the xapp- token belongs in SLACK_APP_TOKEN"
        )
    app = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
    if app and not app.startswith("xapp-"):
        kind = "the bot token (xoxb-...)" if "xoxb-" in app else "no app-level token"
        problems.append(
            f"SLACK_APP_TOKEN holds {kind}, but Socket Mode needs the app-level token: "
            f"{APP_TOKEN_HELP}"
        )
    return problems


async def check_slack(settings: BotSettings) -> SlackCheck:
    """Asks Slack who the bot token belongs to and, in Socket Mode, for a WebSocket URL with
    the app token: a bad token or no network fails here, with a clear message, instead of
    deep inside the connection loop (which would retry it forever)."""
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    if problems := token_kind_problems(settings):
        raise SlackStartError("; ".join(problems) + ".")
    assert settings.slack_bot_token is not None
    # No retry handlers: at start-up a clear failure now beats a silent wait.
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        retry_handlers=[],
    )
    try:
        try:
            identity = await client.auth_test()
        except SlackApiError as error:
            code = error.response.get("error", "unknown_error")
            raise SlackStartError(
                f"Slack refused SLACK_BOT_TOKEN ({code}): {BOT_TOKEN_HELP}, "
                "and reinstall the app if it changed."
            ) from None
        socket_url = None
        if settings.slack_mode == "socket":
            assert settings.slack_app_token is not None
            try:
                socket_url = await open_connection(
                    client, settings.slack_app_token.get_secret_value()
                )
            except AppTokenRefused as refused:
                raise SlackStartError(app_token_refused(refused.code)) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise SlackStartError(
            f"could not reach Slack at {settings.slack_api_url} ({type(error).__name__}): "
            "check the network (and SLACK_API_URL if you set it)."
        ) from None
    line = f"Slack: connected as @{identity.get('user')} in {identity.get('team')}"
    return SlackCheck(line, socket_url)


def http_app(slack: SlackBot) -> Starlette:
    """Slack's HTTP endpoints: events, commands and interactivity all post to /slack/events."""
    from slack_bolt.adapter.starlette.async_handler import (
        AsyncSlackRequestHandler,
        to_starlette_response,
    )

    handler = AsyncSlackRequestHandler(slack.app)

    async def events(request: Request) -> Response:
        # Bolt's adapter reads the body again: Starlette keeps it.
        command = signed_command(await request.body(), request.headers, slack.verifier)
        if command is None:
            return await handler.handle(request)
        answer = await acknowledge_command(slack.command_listener, command, slack.bot)
        return to_starlette_response(answer)

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await slack.open()
        slack.bot.start_watching()
        yield
        await slack.aclose()

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def run_socket_mode(
    slack: SlackBot,
    settings: BotSettings,
    *,
    first_url: IssuedUrl | None = None,
    ping_interval: float = PING_INTERVAL_S,
) -> None:
    """Serves over Socket Mode until cancelled; raises SlackStartError if Slack refuses the
    app token on a reconnect (revoked while the bot runs)."""
    assert settings.slack_app_token is not None
    await slack.open()
    link = SocketLink(
        settings.slack_app_token.get_secret_value(),
        web_client=slack.app.client,
        first_url=first_url,
        ping_interval=ping_interval,
    )
    handler = BoltOverLink(slack.app, link)
    slack.bot.start_watching()
    try:
        await handler.connect_async()
        await link.stopped
    except AppTokenRefused as refused:
        raise SlackStartError(
            app_token_refused(refused.code, while_running=refused.while_running)
        ) from None
    finally:
        await handler.close_async()
        await slack.aclose()


def http_server(
    slack: SlackBot, host: str, port: int, *, log_level: str = "info"
) -> uvicorn.Server:
    """The uvicorn server of HTTP mode (the benchmark runs this same one)."""
    import uvicorn

    config = uvicorn.Config(http_app(slack), host=host, port=port, log_level=log_level)
    return uvicorn.Server(config)


def run_http(slack: SlackBot, settings: BotSettings) -> None:
    http_server(slack, settings.http_host, settings.http_port).run()
