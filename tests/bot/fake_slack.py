"""A local fake of Slack's Web API, in the spirit of Bolt's own test mock server.

It records every call, answers the methods the bot uses, serves `url_private_download`
only to the bot token (an HTML login page otherwise, as Slack does), and enforces Slack's
one-message-per-second-per-channel limit with 429 + Retry-After on an injectable clock.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.bot.fake_clock import FakeClock

BOT_TOKEN = "xoxb-test-bot-token-000"
APP_TOKEN = "xapp-test-app-token-000"
BOT_USER = "UBOT"
# Slack's limits on one message, refused as Slack refuses them.
MAX_BLOCKS = 50
MAX_BLOCK_TEXT = 3000
MAX_MESSAGE_TEXT = 40000
# A Home tab's: at most 100 blocks, the whole view at most 250 kB (views.publish's
# view_too_large), published to a user id (U… or W…).
MAX_HOME_BLOCKS = 100
MAX_HEADER_TEXT = 150
MAX_VIEW_BYTES = 250_000
USER_ID = re.compile(r"^[UW][A-Z0-9]+$")


def view_problem(args: dict[str, Any]) -> tuple[str, str] | None:
    """(error, what Slack says in response_metadata.messages) for a views.publish Slack
    refuses, or None."""
    view = args.get("view")
    if not USER_ID.match(str(args.get("user_id") or "")):
        return "invalid_arguments", "invalid `user_id`"
    if not isinstance(view, dict) or view.get("type") != "home":
        return "invalid_arguments", "[ERROR] must provide a home view [json-pointer:/view]"
    if len(json.dumps(view).encode()) > MAX_VIEW_BYTES:
        return "view_too_large", "view is larger than 250 kB"
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_HOME_BLOCKS:
        return "invalid_arguments", "[ERROR] no more than 100 items allowed [/view/blocks]"
    for n, block in enumerate(blocks):
        limit = MAX_HEADER_TEXT if block.get("type") == "header" else MAX_BLOCK_TEXT
        for text in [block.get("text"), *(block.get("elements") or [])]:
            if isinstance(text, dict) and len(str(text.get("text") or "")) > limit:
                return (
                    "invalid_arguments",
                    f"[ERROR] must be at most {limit} characters [/view/blocks/{n}]",
                )
    return None


def limits_problem(args: dict[str, Any]) -> str | None:
    """The error Slack answers a chat.postMessage/chat.update with for a message over its
    limits, or None."""
    if len(str(args.get("text") or "")) > MAX_MESSAGE_TEXT:
        return "msg_too_long"
    blocks = args.get("blocks") or []
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        texts = [block.get("text"), *(block.get("elements") or [])]
        for text in texts:
            if isinstance(text, dict) and len(str(text.get("text") or "")) > MAX_BLOCK_TEXT:
                return "invalid_blocks"
    return None


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class PostedMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    metadata: dict[str, Any] | None
    updates: int = 0


@dataclass
class HostedFile:
    id: str
    name: str
    content: bytes
    content_type: str = "application/octet-stream"
    channel: str = ""


@dataclass
class FakeLink:
    """One Socket Mode WebSocket connection. `silent`: the network between the bot and Slack
    is cut (nothing gets through, not even a close), so pings go unanswered."""

    ws: web.WebSocketResponse
    silent: bool = False
    pings: int = 0
    received: list[str] = field(default_factory=list)


@dataclass
class FakeSlack:
    clock: FakeClock = field(default_factory=FakeClock)
    bot_token: str = BOT_TOKEN
    # The token Slack serves files to; another value simulates a token without files:read.
    bot_token_for_files: str = BOT_TOKEN
    post_interval: float = 1.0
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], PostedMessage] = field(default_factory=dict)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    # views.publish: every view published, by user id, oldest first.
    home_views: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # How many coming views.publish calls answer 429 (Retry-After: 3) first.
    publish_rate_limits: int = 0
    files: dict[str, HostedFile] = field(default_factory=dict)
    uploaded: dict[str, bytes] = field(default_factory=dict)
    completed_uploads: list[dict[str, Any]] = field(default_factory=list)
    rate_limited: int = 0
    download_requests: list[str | None] = field(default_factory=list)
    # files.info: an error code to answer for a file id (access denied, say), and the files
    # Slack is still processing (their object has no download address yet).
    file_info_errors: dict[str, str] = field(default_factory=dict)
    processing: set[str] = field(default_factory=set)
    base_url: str = ""
    # Socket Mode: the app-level token apps.connections.open takes, the WebSocket links the
    # bot opened, and how many coming apps.connections.open calls meet a dropped connection.
    app_token: str = APP_TOKEN
    links: list[FakeLink] = field(default_factory=list)
    connections_open_failures: int = 0
    # An error code apps.connections.open answers with instead (ratelimited comes as a 429).
    connections_open_error: str | None = None
    _last_post: dict[str, float] = field(default_factory=dict)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        # Ahead of the catch-all: it takes the app-level token, not the bot token.
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/link/{n}", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # -- what tests look at ----------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[PostedMessage]:
        return [
            m for m in self.messages.values() if m.channel == channel and m.thread_ts == thread_ts
        ]

    def ephemerals_for(self, user: str) -> list[dict[str, Any]]:
        return [e for e in self.ephemerals if e.get("user") == user]

    def host_file(
        self, file_id: str, name: str, content: bytes, *, content_type: str = "application/json"
    ) -> dict[str, Any]:
        """Makes a file downloadable; returns Slack's file object for events."""
        self.files[file_id] = HostedFile(file_id, name, content, content_type)
        return self.file_object(file_id)

    def file_object(self, file_id: str) -> dict[str, Any]:
        f = self.files[file_id]
        return {
            "id": f.id,
            "name": f.name,
            "title": f.name,
            "size": len(f.content),
            "filetype": "text",
            "url_private_download": f"{self.base_url}/files-pri/{f.id}/{f.name}",
        }

    # -- handlers --------------------------------------------------------------------------
    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        body = await request.read()
        if body:
            if request.content_type == "application/json":
                args.update(json.loads(body))
            else:
                args.update(dict(parse_qsl(body.decode())))
        for key in ("blocks", "files", "view", "metadata"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        self.calls.append(Call(method, args, token))
        if token != self.bot_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return await handler(args)

    async def _m_auth_test(self, args: dict[str, Any]) -> web.Response:
        return web.json_response(
            {
                "ok": True,
                "url": "https://example.slack.com/",
                "team": "Test",
                "team_id": "T1",
                "user": "xgenlens",
                "user_id": BOT_USER,
                "bot_id": "B1",
            }
        )

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.000100"

    async def _m_chat_postMessage(self, args: dict[str, Any]) -> web.Response:
        channel = args["channel"]
        if problem := limits_problem(args):
            return web.json_response({"ok": False, "error": problem})
        now = self.clock.monotonic()
        last = self._last_post.get(channel)
        if last is not None and now - last < self.post_interval:
            self.rate_limited += 1
            wait = math.ceil(self.post_interval - (now - last))
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(wait)},
            )
        self._last_post[channel] = now
        ts = self._next_ts()
        self.messages[(channel, ts)] = PostedMessage(
            channel=channel,
            ts=ts,
            text=args.get("text", ""),
            blocks=args.get("blocks") or [],
            thread_ts=args.get("thread_ts"),
            metadata=args.get("metadata"),
        )
        return web.json_response({"ok": True, "channel": channel, "ts": ts})

    async def _m_chat_update(self, args: dict[str, Any]) -> web.Response:
        key = (args["channel"], args["ts"])
        message = self.messages.get(key)
        if message is None:
            return web.json_response({"ok": False, "error": "message_not_found"})
        if problem := limits_problem(args):
            return web.json_response({"ok": False, "error": problem})
        message.text = args.get("text", message.text)
        message.blocks = args.get("blocks") or []
        if "metadata" in args:
            message.metadata = args["metadata"]
        message.updates += 1
        return web.json_response({"ok": True, "channel": key[0], "ts": key[1]})

    async def _m_chat_postEphemeral(self, args: dict[str, Any]) -> web.Response:
        self.ephemerals.append(args)
        return web.json_response({"ok": True, "message_ts": self._next_ts()})

    async def _m_chat_getPermalink(self, args: dict[str, Any]) -> web.Response:
        if (args.get("channel"), args.get("message_ts")) not in self.messages:
            return web.json_response({"ok": False, "error": "message_not_found"})
        ts = str(args["message_ts"]).replace(".", "")
        link = f"https://example.slack.com/archives/{args['channel']}/p{ts}"
        return web.json_response({"ok": True, "channel": args["channel"], "permalink": link})

    async def _m_views_open(self, args: dict[str, Any]) -> web.Response:
        return web.json_response({"ok": True, "view": {"id": "V1", **(args.get("view") or {})}})

    async def _m_views_update(self, args: dict[str, Any]) -> web.Response:
        return await self._m_views_open(args)

    async def _m_views_publish(self, args: dict[str, Any]) -> web.Response:
        if self.publish_rate_limits > 0:
            self.publish_rate_limits -= 1
            self.rate_limited += 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "3"}
            )
        if problem := view_problem(args):
            error, detail = problem
            return web.json_response(
                {"ok": False, "error": error, "response_metadata": {"messages": [detail]}}
            )
        view = args["view"]
        self.home_views.setdefault(args["user_id"], []).append(view)
        return web.json_response({"ok": True, "view": {"id": "VHOME", **view}})

    def home_of(self, user: str) -> dict[str, Any] | None:
        """The last view published to `user`'s Home tab."""
        views = self.home_views.get(user)
        return views[-1] if views else None

    async def _m_files_info(self, args: dict[str, Any]) -> web.Response:
        file_id = args.get("file")
        if file_id in self.file_info_errors:
            return web.json_response({"ok": False, "error": self.file_info_errors[file_id]})
        if file_id not in self.files:
            return web.json_response({"ok": False, "error": "file_not_found"})
        info = self.file_object(file_id)
        if file_id in self.processing:
            info.pop("url_private_download")
        return web.json_response({"ok": True, "file": info})

    def id_only_object(self, file_id: str) -> dict[str, Any]:
        """A file as a message event gives it in Slack Connect channels, or while Slack is
        still processing it: its id, and that files.info has the rest."""
        return {
            "id": file_id,
            "mode": "file_access",
            "file_access": "check_file_info",
            "created": 0,
            "timestamp": 0,
            "user": "",
        }

    async def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> web.Response:
        file_id = f"FUP{next(self._ts)}"
        self.uploaded[file_id] = b""
        return web.json_response(
            {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}
        )

    async def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> web.Response:
        files = args.get("files") or []
        if not all(f.get("id") in self.uploaded for f in files):
            return web.json_response({"ok": False, "error": "invalid_file"})
        self.completed_uploads.append(args)
        return web.json_response({"ok": True, "files": files})

    async def _m_conversations_replies(self, args: dict[str, Any]) -> web.Response:
        thread = self.thread(args["channel"], args["ts"])
        return web.json_response(
            {
                "ok": True,
                "messages": [
                    {"ts": m.ts, "text": m.text, "thread_ts": m.thread_ts, "metadata": m.metadata}
                    for m in thread
                ],
                "has_more": False,
            }
        )

    async def _download(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        self.download_requests.append(auth)
        hosted = self.files.get(request.match_info["file_id"])
        if auth != f"Bearer {self.bot_token_for_files}" or hosted is None:
            # What Slack does when the token lacks files:read: a sign-in page, status 200.
            return web.Response(
                text="<!DOCTYPE html><html><body>Sign in to Slack</body></html>",
                content_type="text/html",
            )
        return web.Response(body=hosted.content, content_type=hosted.content_type)

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in self.uploaded:
            return web.Response(status=404)
        self.uploaded[file_id] = await request.read()
        return web.Response(text=f"OK - {len(self.uploaded[file_id])}")

    # -- Socket Mode -----------------------------------------------------------------------
    def cut_links(self) -> None:
        """Cuts the network under every open link (no close frame, no answer to pings)."""
        for link in self.links:
            link.silent = True

    def open_links(self) -> list[FakeLink]:
        return [link for link in self.links if not link.ws.closed and not link.silent]

    async def _connections_open(self, request: web.Request) -> web.Response:
        args = await self._args(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        self.calls.append(Call("apps.connections.open", args, token))
        if self.connections_open_failures > 0:
            # The network is down: the connection drops without an answer.
            self.connections_open_failures -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if token != self.app_token:
            error = "not_allowed_token_type" if token == self.bot_token else "invalid_auth"
            return web.json_response({"ok": False, "error": error})
        if self.connections_open_error is not None:
            limited = self.connections_open_error == "ratelimited"
            return web.json_response(
                {"ok": False, "error": self.connections_open_error},
                status=429 if limited else 200,
                headers={"Retry-After": "60"} if limited else None,
            )
        n = len(self.calls_to("apps.connections.open"))
        url = self.base_url.replace("http://", "ws://", 1) + f"/link/{n}"
        return web.json_response({"ok": True, "url": url})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        # Answers pings by hand, so that a cut link can leave them unanswered.
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        link = FakeLink(ws)
        self.links.append(link)
        hello = {"type": "hello", "num_connections": len(self.open_links())}
        await ws.send_json({**hello, "connection_info": {"app_id": "A1"}})
        async for message in ws:
            if link.silent:
                continue
            if message.type == WSMsgType.PING:
                link.pings += 1
                await ws.pong(message.data)
            elif message.type == WSMsgType.TEXT:
                link.received.append(message.data)
        return ws
