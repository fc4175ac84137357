"""A multipart/form-data body built as a stream from a file: never read whole."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from client.constants import UPLOAD_CHUNK_BYTES

Progress = Callable[[int, int], object]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


class MultipartFile:
    """`fields` as plain parts, then `path` as the `file` part; the exact length is known up
    front, so the upload carries a Content-Length (no chunked encoding)."""

    def __init__(
        self,
        path: Path,
        fields: dict[str, str],
        *,
        filename: str | None = None,
        chunk_size: int = UPLOAD_CHUNK_BYTES,
        on_progress: Progress | None = None,
    ) -> None:
        self.path = path
        self.size = os.stat(path).st_size
        self.boundary = secrets.token_hex(16)
        self.chunk_size = chunk_size
        self.on_progress = on_progress
        head = b"".join(
            (
                f"--{self.boundary}\r\n"
                f'Content-Disposition: form-data; name="{_quote(k)}"\r\n\r\n'
                f"{v}\r\n"
            ).encode()
            for k, v in fields.items()
        )
        name = _quote(filename or path.name)
        head += (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.head = head
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    async def stream(self) -> AsyncIterator[bytes]:
        """A fresh stream each call, so that a retry can send the body again."""
        sent = 0
        if self.on_progress:
            self.on_progress(0, self.size)
        yield self.head
        with open(self.path, "rb") as fh:
            while True:
                # Local disk reads of 1 MiB are quick; a thread hop per chunk would cost more
                # than it saves, but yield to the loop so other tasks keep running.
                chunk = fh.read(self.chunk_size)
                if not chunk:
                    break
                sent += len(chunk)
                yield chunk
                if self.on_progress:
                    self.on_progress(sent, self.size)
                await asyncio.sleep(0)
        if sent != self.size:
            raise OSError(f"{self.path} changed size during upload ({self.size} -> {sent} bytes)")
        yield self.tail
