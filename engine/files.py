"""Uploaded files: streamed from the request to disk, then validated in the background."""

import contextlib
import os
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.requests import Request

from engine.errors import ApiError

UPLOAD_PURPOSES = ("fine-tune",)
# Form fields other than the file are short; a large one is a mistake, not data.
MAX_FIELD_BYTES = 64 * 1024
# Multipart framing around the file: headers, boundaries and the purpose field.
MULTIPART_OVERHEAD = 1024 * 1024
# Findings quoted in a file's status_details; the report keeps the counts of all.
DETAILS_FINDINGS = 5


class Upload:
    """One file received from a multipart request, written to `path`."""

    def __init__(self, path: Path, filename: str, size: int, fields: dict[str, str]) -> None:
        self.path = path
        self.filename = filename
        self.size = size
        self.fields = fields


class _Receiver:
    """Callbacks for python-multipart's streaming parser: the file part goes straight to disk."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self._out: IO[bytes] | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        # Set by the closing boundary (`--BOUNDARY--`). python-multipart's finalize() does not
        # check for it, so without this a body cut inside the file part (a client that
        # stopped early but sent a matching Content-Length) would pass as a shorter file.
        self.complete = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._is_file = False
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            if self._out is not None:
                raise ApiError(400, "Send one file per upload.", param="file")
            raw = options.get(b"filename", b"upload.jsonl").decode("utf-8", "replace")
            # Keep the base name only: a filename is a label, never a path on this machine.
            self.filename = Path(raw.replace("\\", "/")).name or "upload.jsonl"
            self._is_file = True
            self._out = open(self.dest, "wb")  # noqa: SIM115 (closed in close())

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            assert self._out is not None
            self.size += end - start
            if self.size > self.max_bytes:
                raise ApiError(
                    413,
                    f"File is larger than this engine accepts ({self.max_bytes:,} bytes).",
                    code="file_too_large",
                    param="file",
                )
            self._out.write(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise ApiError(400, f"Form field '{self._name}' is too long.", param=self._name)

    def on_part_end(self) -> None:
        if not self._is_file and self._name:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.complete = True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


async def receive_upload(request: Request, dest: Path, max_bytes: int) -> Upload:
    """Streams the multipart body to `dest`; memory stays flat whatever the file's size."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(
            400, "Upload a file as multipart/form-data with fields 'file' and 'purpose'."
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise ApiError(
            413,
            f"File is larger than this engine accepts ({max_bytes:,} bytes).",
            code="file_too_large",
            param="file",
        )
    receiver = _Receiver(dest, max_bytes)
    parser = MultipartParser(boundary, receiver.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        receiver.close()
        dest.unlink(missing_ok=True)
        raise ApiError(400, f"The multipart body could not be read: {exc}") from None
    except BaseException:  # ClientDisconnect (the app logs it), an ApiError, a cancellation
        receiver.close()
        dest.unlink(missing_ok=True)
        raise
    receiver.close()
    if not receiver.complete:
        dest.unlink(missing_ok=True)
        raise ApiError(
            400,
            "The multipart body ended before its closing boundary: the upload is incomplete "
            "and nothing was kept. Send the whole file again.",
            param="file",
            code="incomplete_upload",
        )
    if receiver.filename is None:
        dest.unlink(missing_ok=True)
        raise ApiError(400, "The upload has no 'file' part.", param="file")
    return Upload(dest, receiver.filename, receiver.size, receiver.fields)


def validation_summary(report: dict[str, Any], filename: str) -> str:
    """Why a file is in error, for `status_details`: counts and the first findings with lines."""
    counts: dict[str, int] = report.get("error_counts") or {}
    total = sum(counts.values())
    parts = []
    for finding in (report.get("errors") or [])[:DETAILS_FINDINGS]:
        where = []
        if finding.get("line") is not None:
            where.append(f"line {finding['line']}")
        if finding.get("field"):
            where.append(str(finding["field"]))
        prefix = f"{', '.join(where)}: " if where else ""
        parts.append(f"{prefix}{finding.get('message', finding.get('code'))}")
    noun = "error" if total == 1 else "errors"
    head = f"{filename}: {total:,} validation {noun}"
    if total > len(parts) and parts:
        parts.append(f"and {total - len(parts):,} more")
    return f"{head}: " + "; ".join(parts) if parts else head


def validate_dataset(path: Path, filename: str) -> tuple[bool, dict[str, Any], str | None]:
    """Runs the shared validator; (valid, report, status_details when invalid)."""
    from client.validation import DatasetUnreadable, validate_file

    try:
        report = validate_file(path)
    except DatasetUnreadable as exc:
        return False, {"error_counts": {"unreadable": 1}}, f"The file cannot be read: {exc}"
    data = report.to_dict()
    return report.valid, data, None if report.valid else validation_summary(data, filename)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
