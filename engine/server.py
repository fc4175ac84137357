"""Running the engine: under uvicorn in this process, in a background thread.

The bot starts it this way when no Nebius key is configured, and tests use it to talk
to a live engine over real HTTP on loopback:

    with EmbeddedEngine(data_dir) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="unused")
"""

import asyncio
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from engine.config import EngineConfig

STARTUP_TIMEOUT_S = 30.0


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one, which the socket then reports."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class EmbeddedEngine:
    """The engine served on a loopback port from a background thread; start/stop or `with`."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        api_key: str | None = None,
        **settings: Any,
    ) -> None:
        self.config = EngineConfig(data_dir=Path(data_dir), api_key=api_key, **settings)
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return base_url(self.host, self.port)

    def start(self) -> "EmbeddedEngine":
        from engine.app import create_app

        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.config), log_level="warning", lifespan="on", access_log=False
        )
        self._server = server = uvicorn.Server(config)

        def serve() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start() or stop()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name="finetune-engine", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the engine did not start: {self._error or 'timed out'}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STARTUP_TIMEOUT_S)
        self._server = None
        self._thread = None

    def __enter__(self) -> "EmbeddedEngine":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
