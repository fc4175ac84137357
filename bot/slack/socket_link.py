"""The Socket Mode link: slack_sdk's aiohttp socket client, with what it lacks for a service.

- The first WebSocket URL is the one the start-up check got (`apps.connections.open` is a
  Tier 1 method: no second call a moment later).
- A refused app token (revoked while the bot runs) stops the bot with a clear message; the
  SDK alone would log a traceback and try again every few seconds, forever.
- A link that dies without a `disconnect` message (a network cut) is noticed within seconds
  (`PING_INTERVAL_S`), and the log says in one line when it dropped and in one when it is
  back, without the SDK's traceback for every failed attempt in between.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock, RealClock

# slack_sdk's default is 5 s and Bolt's 10 s: a dead link then goes unnoticed for 15-25 s,
# while Slack retries its deliveries and then gives up on them. A ping goes out when nothing
# came for one interval, the link is dead when no pong comes within half of one, and the
# SDK's monitor looks each interval: a cut is acted on 3-5 s after it (at 2 s).
PING_INTERVAL_S = 2.0
# Slack calls the URL "temporary" without saying for how long, and slack_sdk retries a URL
# that fails without asking for a new one: only a fresh one is handed over.
HANDED_URL_MAX_AGE_S = 10.0
# Answers of apps.connections.open that no retry cures: the token is wrong, not the moment.
REFUSALS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "not_allowed_token_type",
        "missing_scope",
        "no_permission",
        "forbidden_team",
    }
)

log = logging.getLogger(__name__)
# slack_sdk's own lines (each step of each reconnect at INFO): warnings and errors only, unless
# someone lowers this logger's level to look under the hood.
SDK_LOG = logging.getLogger(f"{__name__}.sdk")
SDK_LOG.setLevel(logging.WARNING)


class AppTokenRefused(Exception):
    """Slack refused SLACK_APP_TOKEN; `code` is Slack's error code, `while_running` whether
    the link had been up (the token was revoked since)."""

    def __init__(self, code: str, *, while_running: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.while_running = while_running


@dataclass(frozen=True)
class IssuedUrl:
    """A WebSocket URL from apps.connections.open and when (Clock.monotonic) it came."""

    url: str
    issued_at: float

    def fresh(self, now: float) -> bool:
        return now - self.issued_at <= HANDED_URL_MAX_AGE_S


async def open_connection(
    web_client: AsyncWebClient, app_token: str, *, clock: Clock | None = None
) -> IssuedUrl:
    """One apps.connections.open: a WebSocket URL, or AppTokenRefused with Slack's reason."""
    try:
        response = await web_client.apps_connections_open(app_token=app_token)
    except SlackApiError as error:
        raise AppTokenRefused(str(error.response.get("error", "unknown_error"))) from None
    return IssuedUrl(str(response["url"]), (clock or RealClock()).monotonic())


class _SdkLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """What the link gives slack_sdk to log with: nothing while the link is down (its own
    lines say so), and no traceback unless the SDK's logger is at DEBUG."""

    def __init__(self, link: SocketLink) -> None:
        super().__init__(SDK_LOG, {})
        self.link = link

    @property
    def level(self) -> int:
        # Bolt's response helper reads `client.logger.level`.
        return self.logger.level

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.link.down:
            return
        if not self.isEnabledFor(logging.DEBUG):
            kwargs.pop("exc_info", None)
            kwargs.pop("stack_info", None)
        super().log(level, msg, *args, **kwargs)


class SocketLink(SocketModeClient):
    """The socket client the bot runs on. Make it inside the event loop that serves."""

    def __init__(
        self,
        app_token: str,
        *,
        web_client: AsyncWebClient,
        first_url: IssuedUrl | None = None,
        ping_interval: float = PING_INTERVAL_S,
        clock: Clock | None = None,
    ) -> None:
        self._first_url = first_url
        self.clock = clock or RealClock()
        self._down_since: float | None = None
        self.stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        super().__init__(
            app_token=app_token,
            logger=_SdkLog(self),  # type: ignore[arg-type]
            web_client=web_client,
            ping_interval=ping_interval,
        )

    @property
    def down(self) -> bool:
        """Whether the link dropped and is not back yet."""
        return self._down_since is not None

    async def issue_new_wss_url(self) -> str:
        first, self._first_url = self._first_url, None
        if first is not None and first.fresh(self.clock.monotonic()):
            return first.url
        try:
            # The SDK's own waits out `ratelimited` (Retry-After).
            return await super().issue_new_wss_url()
        except SlackApiError as error:
            code = str(error.response.get("error", "unknown_error"))
            if code in REFUSALS:
                # The SDK sets current_session once a link is up, and never unsets it.
                was_up = self.current_session is not None
                self._stop(AppTokenRefused(code, while_running=was_up))
            raise

    async def connect_to_new_endpoint(self, force: bool = False) -> None:
        # `force` is Slack's own `disconnect` message (a routine refresh): not a drop.
        if not force and not self.closed and self._down_since is None:
            self._down_since = self.clock.monotonic()
            log.warning(
                "Slack: the Socket Mode link dropped%s; reconnecting every %g s",
                self._why_dropped(),
                self.ping_interval,
            )
        await super().connect_to_new_endpoint(force)
        if self._down_since is not None and not self.closed and await self.is_connected():
            down_for = self.clock.monotonic() - self._down_since
            self._down_since = None
            log.info("Slack: the Socket Mode link is back (it was down %.1f s)", down_for)

    def _why_dropped(self) -> str:
        session = self.current_session
        error = session.exception() if session is not None else None
        if error is not None:
            return f" ({error})"
        if self.stale:
            return f" (no pong for {4 * self.ping_interval:g} s)"
        return " (Slack closed it)" if session is not None and session.closed else ""

    def _stop(self, error: Exception) -> None:
        """Stops every loop of the SDK's (they all check `closed`) and wakes the runner."""
        self.closed = True
        if not self.stopped.done():
            self.stopped.set_exception(error)


class BoltOverLink(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler (its `handle` dispatches each envelope to the app and
    acknowledges it) over a SocketLink, instead of the client Bolt would build itself."""

    def __init__(self, app: AsyncApp, link: SocketLink) -> None:
        # Not super().__init__: it would build a second socket client with a 10 s ping.
        self.app = app
        self.app_token = link.app_token
        self.client = link
        link.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]
