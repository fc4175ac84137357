"""Running the Slack app: Socket Mode (the default) or HTTP (Starlette under uvicorn)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.config import BotSettings
from bot.slack.app import SlackBot
from bot.slack.commands import acknowledge_command, signed_command

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


class SlackStartError(Exception):
    """Slack cannot be used with these settings; the message says what to check."""


async def check_slack(settings: BotSettings) -> str:
    """Asks Slack who the bot token belongs to: a bad token or no network fails here,
    with a clear message, instead of deep inside the connection loop."""
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    assert settings.slack_bot_token is not None
    # No retry handlers: at start-up a clear failure now beats a silent wait.
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        retry_handlers=[],
    )
    try:
        identity = await client.auth_test()
    except SlackApiError as error:
        code = error.response.get("error", "unknown_error")
        raise SlackStartError(
            f"Slack refused SLACK_BOT_TOKEN ({code}): copy the Bot User OAuth Token "
            "(xoxb-...) from OAuth & Permissions, and reinstall the app if it changed."
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise SlackStartError(
            f"could not reach Slack at {settings.slack_api_url} ({type(error).__name__}): "
            "check the network (and SLACK_API_URL if you set it)."
        ) from None
    return f"Slack: connected as @{identity.get('user')} in {identity.get('team')}"


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


async def run_socket_mode(slack: SlackBot, settings: BotSettings) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.errors import SlackApiError

    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(slack.app, settings.slack_app_token.get_secret_value())
    await slack.open()
    slack.bot.start_watching()
    try:
        await handler.start_async()
    except SlackApiError as error:
        code = error.response.get("error", "unknown_error")
        raise SlackStartError(
            f"Slack refused SLACK_APP_TOKEN ({code}): create an app-level token with the "
            "connections:write scope (Basic Information > App-Level Tokens)."
        ) from None
    finally:
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
