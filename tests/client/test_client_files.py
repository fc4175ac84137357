"""Files: streaming upload and download with progress, list/retrieve/delete, and waiting
until Nebius has processed a file."""

import hashlib
import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx

from client import (
    APIConnectionError,
    FileNotReadyError,
    FileObject,
    FileProcessingError,
    NebiusClient,
    PayloadTooLargeError,
)
from client.constants import UPLOAD_CHUNK_BYTES
from tests.client.conftest import API_KEY, BASE_URL, FakeTime, file_json

MB = 1024 * 1024


def write_file(path: Path, size: int) -> Path:
    block = bytes(range(256)) * 4096  # 1 MiB
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(block[: size % len(block)])
    return path


class StreamingServer(httpx.AsyncBaseTransport):
    """A transport that consumes request bodies chunk by chunk (like a socket would) and
    serves file content as a stream, remembering what it saw."""

    def __init__(self, content_size: int = 0) -> None:
        self.content_size = content_size
        self.max_chunk = 0
        self.received = 0
        self.digest = hashlib.sha256()
        self.headers: httpx.Headers | None = None
        self.head = b""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.headers = request.headers
            async for chunk in request.stream:  # type: ignore[union-attr]
                self.max_chunk = max(self.max_chunk, len(chunk))
                if len(self.head) < 4096:
                    self.head += chunk[:4096]
                self.received += len(chunk)
                self.digest.update(chunk)
            return httpx.Response(200, json=file_json("file-up", bytes=self.received))
        size = self.content_size

        async def body() -> AsyncIterator[bytes]:
            block = b"x" * (64 * 1024)
            sent = 0
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                sent += len(piece)
                yield piece

        return httpx.Response(200, headers={"Content-Length": str(size)}, content=body())


async def test_upload_streams_the_file_in_chunks_with_progress(tmp_path: Path) -> None:
    path = write_file(tmp_path / "big train.jsonl", 8 * MB + 123)
    server = StreamingServer()
    progress: list[tuple[int, int]] = []
    async with NebiusClient(API_KEY, BASE_URL, transport=server) as client:
        tracemalloc.start()
        uploaded = await client.upload_file(path, on_progress=lambda s, t: progress.append((s, t)))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert uploaded.id == "file-up"
    # Never the whole file at once: chunks of at most 1 MiB, and memory far below its size.
    assert server.max_chunk <= UPLOAD_CHUNK_BYTES
    assert peak < 4 * MB
    assert server.headers is not None
    assert int(server.headers["content-length"]) == server.received
    assert "transfer-encoding" not in server.headers
    assert server.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="purpose"\r\n\r\nfine-tune\r\n' in server.head
    assert b'name="file"; filename="big train.jsonl"' in server.head
    assert progress[0] == (0, 8 * MB + 123)
    assert progress[-1] == (8 * MB + 123, 8 * MB + 123)
    assert [s for s, _ in progress] == sorted(s for s, _ in progress)


async def test_uploaded_multipart_parses_back_to_the_file(
    client: NebiusClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n')
    route = api.post("files").respond(200, json=file_json("file-1", status="uploaded"))
    uploaded = await client.upload_file(path)
    assert uploaded.status == "uploaded"
    request = route.calls.last.request
    boundary = request.headers["content-type"].split("boundary=")[1]
    parts = request.content.split(f"--{boundary}".encode())
    assert parts[-1] == b"--\r\n"
    assert parts[2].endswith(b'\r\n\r\n{"messages": []}\n\r\n')


async def test_upload_is_retried_with_the_whole_body_after_503(
    client: NebiusClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    path = write_file(tmp_path / "t.jsonl", 3 * MB)
    route = api.post("files").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=file_json())]
    )
    await client.upload_file(path)
    first, second = (call.request for call in route.calls)
    assert len(second.content) == int(second.headers["content-length"]) > 3 * MB
    assert len(first.content) == len(second.content)


async def test_upload_too_large_has_the_413_hint(
    client: NebiusClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("{}\n")
    api.post("files").respond(413, text="Request Entity Too Large")
    with pytest.raises(PayloadTooLargeError) as info:
        await client.upload_file(path)
    assert "5 GB" in (info.value.hint or "")


async def test_upload_of_missing_file_fails_before_any_request(
    client: NebiusClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    route = api.post("files")
    with pytest.raises(Exception, match="no such file"):
        await client.upload_file(tmp_path / "missing.jsonl")
    assert not route.called


async def test_download_streams_to_disk_with_progress(tmp_path: Path) -> None:
    server = StreamingServer(content_size=8 * MB + 5)
    progress: list[tuple[int, int | None]] = []
    async with NebiusClient(API_KEY, BASE_URL, transport=server) as client:
        tracemalloc.start()
        written = await client.download_file(
            "file-x",
            tmp_path / "out" / "model.bin",
            on_progress=lambda d, t: progress.append((d, t)),
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    dest = tmp_path / "out" / "model.bin"
    assert written == dest.stat().st_size == 8 * MB + 5
    assert peak < 4 * MB
    assert progress[0] == (0, 8 * MB + 5) and progress[-1] == (8 * MB + 5, 8 * MB + 5)
    assert not (tmp_path / "out" / "model.bin.part").exists()


async def test_truncated_download_fails_and_leaves_no_file(
    client: NebiusClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    api.get("files/f/content").respond(200, headers={"Content-Length": "100"}, content=b"x" * 10)
    with pytest.raises(APIConnectionError, match="incomplete"):
        await client.download_file("f", tmp_path / "dl" / "x.bin")
    assert list((tmp_path / "dl").iterdir()) == []


async def test_stream_file_content_yields_total_and_chunks(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get("files/f/content").respond(200, content=b"hello world")
    async with client.stream_file_content("f") as (total, chunks):
        data = b"".join([c async for c in chunks])
    assert (total, data) == (11, b"hello world")


async def test_download_of_unknown_file_is_not_found(
    client: NebiusClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    from client import NotFoundError

    api.get("files/nope/content").respond(404, json={"error": {"message": "File not found"}})
    with pytest.raises(NotFoundError, match="File not found"):
        await client.download_file("nope", tmp_path / "x")


async def test_list_retrieve_delete(client: NebiusClient, api: respx.MockRouter) -> None:
    api.get("files").respond(json={"object": "list", "data": [file_json("a"), file_json("b")]})
    api.get("files/a").respond(json=file_json("a", filename="dir/train.jsonl", extra="x"))
    delete = api.delete("files/a").respond(json={"id": "a", "object": "file", "deleted": True})
    assert [f.id for f in await client.list_files()] == ["a", "b"]
    file = await client.retrieve_file("a")
    assert file.clean_filename == "train.jsonl"
    assert await client.delete_file("a") is True
    assert delete.called


async def test_wait_for_file_polls_with_backoff_until_processed(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    api.get("files/f").mock(
        side_effect=[
            httpx.Response(200, json=file_json("f", status="uploaded")),
            httpx.Response(200, json=file_json("f", status="pending")),
            httpx.Response(200, json=file_json("f", status="running")),
            httpx.Response(200, json=file_json("f", status="processed")),
        ]
    )
    seen: list[tuple[str | None, float]] = []
    file = await client.wait_for_file("f", on_progress=lambda f, e: seen.append((f.status, e)))
    assert file.status == "processed"
    assert [s for s, _ in seen] == ["uploaded", "pending", "running", "processed"]
    assert len(fake_time.sleeps) == 3
    # growing delays (1, 1.5, 2.25 nominal) with jitter
    for slept, nominal in zip(fake_time.sleeps, [1.0, 1.5, 2.25], strict=True):
        assert nominal * 0.8 <= slept <= nominal * 1.2
    assert seen[-1][1] == pytest.approx(sum(fake_time.sleeps))


async def test_wait_for_file_without_status_returns_at_once(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    body = file_json("f")
    del body["status"]
    api.get("files/f").respond(json=body)
    file = await client.wait_for_file("f")
    assert file.status is None and fake_time.sleeps == []


async def test_wait_for_file_is_bounded(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    api.get("files/f").respond(json=file_json("f", status="uploaded"))
    with pytest.raises(FileNotReadyError, match="still 'uploaded'"):
        await client.wait_for_file("f", timeout=30)
    assert sum(fake_time.sleeps) == pytest.approx(30)


async def test_wait_for_file_reports_processing_failure(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get("files/f").respond(
        json=file_json("f", status="error", status_details="line 3: invalid JSON")
    )
    with pytest.raises(FileProcessingError, match="line 3: invalid JSON"):
        await client.wait_for_file("f")


def test_file_object_roundtrip() -> None:
    data = file_json("f", new_field=1)
    assert json.loads(FileObject.model_validate(data).model_dump_json())["new_field"] == 1
