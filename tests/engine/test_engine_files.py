"""Files: uploads stream to disk, then validation moves them to processed or error."""

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.server import EmbeddedEngine
from tests.engine.conftest import CHAT_LINE, Api, start_engine, wait_for

BOUNDARY = "H2bOuNdArY"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart_head(filename: str = "train.jsonl") -> bytes:
    """A multipart body up to the start of its file part's content."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode()


def test_a_valid_upload_becomes_processed_and_reads_back_byte_for_byte(api: Api) -> None:
    content = CHAT_LINE * 12
    uploaded = api.upload(content, filename="train.jsonl")
    assert uploaded["object"] == "file"
    assert uploaded["status"] == "uploaded"
    assert uploaded["bytes"] == len(content.encode())
    assert uploaded["filename"] == "train.jsonl"
    assert uploaded["purpose"] == "fine-tune"

    processed = wait_for(lambda: api.file(uploaded["id"])["status"] == "processed", "processing")
    assert processed
    content_response = api.http.get(f"files/{uploaded['id']}/content")
    assert content_response.status_code == 200
    assert content_response.content == content.encode()


def test_an_invalid_dataset_goes_to_error_with_the_validators_findings(api: Api) -> None:
    bad = CHAT_LINE + "this is not json\n" + '{"messages": []}\n'
    file = api.processed(bad)
    assert file["status"] == "error"
    details = file["status_details"]
    assert "line 2" in details and "invalid JSON" in details
    assert "line 3" in details and "messages" in details


def test_files_are_listed_newest_first_and_deleted_with_their_content(
    api: Api, engine_dir: Path
) -> None:
    first = api.upload(CHAT_LINE)
    second = api.upload(CHAT_LINE * 2)
    listing = api.http.get("files").json()
    assert listing["object"] == "list"
    assert [f["id"] for f in listing["data"]] == [second["id"], first["id"]]
    assert list((engine_dir / "files").iterdir())

    deleted = api.http.delete(f"files/{first['id']}")
    assert deleted.json() == {"id": first["id"], "object": "file", "deleted": True}
    assert api.http.get(f"files/{first['id']}").status_code == 404
    assert not (engine_dir / "files" / f"{first['id']}.jsonl").exists()
    assert [f["id"] for f in api.http.get("files").json()["data"]] == [second["id"]]


def test_an_unknown_file_is_a_404_in_openai_shape(api: Api) -> None:
    for response in (
        api.http.get("files/file-nope"),
        api.http.get("files/file-nope/content"),
        api.http.delete("files/file-nope"),
    ):
        assert response.status_code == 404
        error = response.json()["error"]
        assert "file-nope" in error["message"]
        assert set(error) == {"message", "type", "param", "code"}


def test_an_upload_declared_over_the_size_limit_is_refused_with_413_and_leaves_nothing(
    engine_dir: Path,
) -> None:
    server = start_engine(engine_dir, max_upload_bytes=1000)
    api = Api(server.base_url)
    try:
        big = CHAT_LINE.encode() * 50
        response = api.http.post(
            "files", files={"file": ("big.jsonl", big)}, data={"purpose": "fine-tune"}
        )
        assert response.status_code == 413
        assert "1,000 bytes" in response.json()["error"]["message"]
        assert api.http.get("files").json()["data"] == []
        assert list((engine_dir / "files").iterdir()) == []
    finally:
        server.stop()


def test_the_size_limit_holds_for_a_chunked_body_without_content_length(engine_dir: Path) -> None:
    server = start_engine(engine_dir, max_upload_bytes=1000)
    api = Api(server.base_url)
    boundary = "XyZ"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    def chunks():
        yield head
        for _ in range(100):
            yield CHAT_LINE.encode()
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = api.http.post(
            "files",
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413
        assert list((engine_dir / "files").iterdir()) == []
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"purpose": "assistants"}, "not 'assistants'"), ({}, "none was given")],
)
def test_an_upload_needs_the_fine_tune_purpose(api: Api, data: dict, expected: str) -> None:
    response = api.http.post("files", files={"file": ("t.jsonl", CHAT_LINE.encode())}, data=data)
    assert response.status_code == 400
    assert expected in response.json()["error"]["message"]
    assert response.json()["error"]["param"] == "purpose"


def test_an_upload_without_a_file_part_is_refused(api: Api) -> None:
    response = api.http.post("files", files={"purpose": (None, "fine-tune")})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    json_response = api.http.post("files", json={"purpose": "fine-tune"})
    assert json_response.status_code == 400
    assert "multipart/form-data" in json_response.json()["error"]["message"]


def test_a_filename_is_kept_as_a_label_never_as_a_path(api: Api, engine_dir: Path) -> None:
    uploaded = api.upload(CHAT_LINE, filename="../../etc/passwd.jsonl")
    assert uploaded["filename"] == "passwd.jsonl"
    assert (engine_dir / "files" / f"{uploaded['id']}.jsonl").is_file()


def test_a_file_still_uploaded_when_the_engine_stops_is_processed_on_the_next_start(
    engine_dir: Path, validation_gate: threading.Event
) -> None:
    server = start_engine(engine_dir)
    file_id = Api(server.base_url).upload(CHAT_LINE)["id"]
    server.stop()
    validation_gate.set()  # validation runs as usual from here on

    server = start_engine(engine_dir)
    try:
        api = Api(server.base_url)
        assert wait_for(lambda: api.file(file_id)["status"] == "processed", "reprocessing")
    finally:
        server.stop()


def test_a_hand_made_multipart_body_with_its_closing_boundary_is_accepted(api: Api) -> None:
    content = (CHAT_LINE * 10).encode()
    response = api.http.post(
        "files", content=multipart_head() + content + CLOSING, headers=MULTIPART
    )
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(content)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda content: content[: len(content) // 2], id="at-a-line-end"),
        pytest.param(lambda content: content[:-7], id="mid-line"),
        pytest.param(lambda content: content + CLOSING[:-4], id="inside-the-boundary"),
        pytest.param(lambda content: b"", id="before-any-content"),
    ],
)
def test_a_body_that_ends_inside_the_file_part_is_refused_and_nothing_is_kept(
    api: Api, engine_dir: Path, cut
) -> None:
    # A matching Content-Length (httpx sets it from the bytes): the HTTP request is whole, the
    # multipart message is not, as when a client stops writing the body early.
    body = multipart_head() + cut((CHAT_LINE * 10).encode())
    response = api.http.post("files", content=body, headers=MULTIPART)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "file"
    assert error["code"] == "incomplete_upload"
    assert "closing boundary" in error["message"]
    assert api.http.get("files").json()["data"] == []
    assert list((engine_dir / "files").iterdir()) == []


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def engine_log(engine: EmbeddedEngine) -> Iterator[_Records]:
    """Everything the engine and uvicorn log (added after uvicorn configured its loggers)."""
    records = _Records()
    loggers = [logging.getLogger("engine"), logging.getLogger("uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(records)
        logger.setLevel(logging.DEBUG)
    yield records
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(records)
        logger.setLevel(level)


def test_a_client_that_hangs_up_mid_upload_is_one_info_line_and_leaves_nothing(
    engine: EmbeddedEngine, api: Api, engine_dir: Path, engine_log: _Records
) -> None:
    head = multipart_head()
    sent = head + (CHAT_LINE * 5).encode()
    request = (
        "POST /v1/files HTTP/1.1\r\n"
        f"Host: {engine.host}:{engine.port}\r\n"
        f"Content-Type: {MULTIPART['Content-Type']}\r\n"
        f"Content-Length: {len(sent) + 100_000}\r\n\r\n"
    ).encode()
    with socket.create_connection((engine.host, engine.port)) as client:
        client.sendall(request + sent)
    # closed, 100,000 bytes short

    def settled() -> bool:
        return any(
            r.levelno >= logging.ERROR or "disconnected" in r.getMessage()
            for r in engine_log.records
        )

    wait_for(settled, "the engine to notice the hang-up")
    worth_noting = [r for r in engine_log.records if r.levelno >= logging.INFO]
    assert [(r.levelno, r.name) for r in worth_noting] == [(logging.INFO, "engine.app")]
    assert "POST /v1/files" in worth_noting[0].getMessage()
    assert not any(r.exc_info for r in engine_log.records)
    assert api.http.get("files").json()["data"] == []
    assert list((engine_dir / "files").iterdir()) == []
