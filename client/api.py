"""NebiusClient: the asyncio client for the Nebius fine-tuning API (see DESIGN.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from client._multipart import MultipartFile
from client._retry import RETRY_STATUSES, Clock, RetryPolicy, Sleep, jittered
from client.config import resolve_settings
from client.constants import (
    CONNECT_TIMEOUT_S,
    CREATE_DEDUPE_SCAN_LIMIT,
    CREATE_DEDUPE_SKEW_S,
    DEFAULT_EVENTS_PAGE,
    DEFAULT_JOBS_PAGE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    FILE_POLL_FACTOR,
    FILE_POLL_INITIAL_S,
    FILE_POLL_MAX_S,
    FILE_WAIT_TIMEOUT_S,
)
from client.errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    FileNotReadyError,
    FileProcessingError,
    NebiusError,
    RateLimitError,
    RequestInfo,
    ServerError,
    UnprocessableEntityError,
    error_from_response,
    is_not_ready_message,
    redact_text,
)
from client.hyperparameters import JobRequest
from client.models import Checkpoint, Event, FileObject, Job, Model, Page

log = logging.getLogger("client")

M = TypeVar("M", bound=BaseModel)
TransferProgress = Callable[[int, int | None], object]
FileWaitProgress = Callable[[FileObject, float], object]


class NebiusClient:
    """Every call of the Nebius fine-tuning contract, with retries and streaming transfers.

    `sleep`, `clock` and `rng` are injectable so that tests never wait for real.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        settings = resolve_settings(api_key, base_url)
        self.base_url = settings.base_url
        self._secrets = (settings.api_key,)
        self.max_retries = max(0, max_retries)
        self._retry = RetryPolicy(max_retries=self.max_retries, rng=rng or random.Random())
        self._sleep: Sleep = sleep or asyncio.sleep
        self._clock: Clock = clock or time.monotonic
        self._wall: Clock = wall_clock or time.time
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            headers={
                "Authorization": f"Bearer {settings.api_key}",
                "User-Agent": "xgenlens-finetune-slack/0.1",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)),
            transport=transport,
            follow_redirects=True,
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> NebiusClient:
        """NEBIUS_API_KEY and NEBIUS_BASE_URL; a missing key raises ConfigError."""
        return cls(None, None, **kwargs)

    def __repr__(self) -> str:
        return f"NebiusClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> NebiusClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ plumbing

    def _info(self, method: str, path: str, params: Any = None, body: Any = None) -> RequestInfo:
        url = str(self._http.base_url.join(path))
        return RequestInfo.build(method, url, params, body, self._secrets)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: Callable[[], Any] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> httpx.Response:
        """One call, retried on 429/5xx/connection failures when `retry`; raises NebiusError."""
        params = {k: v for k, v in (params or {}).items() if v is not None}
        info = self._info(method, path, params, json)
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                path,
                params=params,
                json=json,
                content=content() if content else None,
                headers=headers,
            )
            started = self._clock()
            retry_response: httpx.Response | None = None
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                error: NebiusError = APITimeoutError(
                    f"request timed out ({type(exc).__name__})", request=info
                )
            except httpx.TransportError as exc:
                detail = redact_text(str(exc) or type(exc).__name__, self._secrets)
                error = APIConnectionError(f"cannot reach the API: {detail}", request=info)
            else:
                log.debug(
                    "%s %s -> %s in %.0f ms",
                    info.method,
                    info.url,
                    response.status_code,
                    (self._clock() - started) * 1000,
                )
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                error = error_from_response(response, info, self._secrets)
                if response.status_code not in RETRY_STATUSES:
                    raise error
                retry_response = response
            if not retry or attempt >= self.max_retries:
                raise error
            delay = self._retry.delay(attempt, retry_response)
            log.warning(
                "%s %s failed (%s); retry %d/%d in %.1fs",
                info.method,
                info.url,
                error,
                attempt + 1,
                self.max_retries,
                delay,
            )
            await self._sleep(delay)
            attempt += 1

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise NebiusError(
                "the API answered with something that is not JSON",
                status_code=response.status_code,
                body=redact_text(response.text[:2000], self._secrets),
                request=self._info(method, path, kwargs.get("params"), kwargs.get("json")),
            ) from None

    def _parse(self, model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise NebiusError(
                f"unexpected {what} from the API: {exc.errors()[0]['msg']}",
                body=redact_text(str(data)[:2000], self._secrets),
            ) from None

    def _list_data(self, data: Any) -> list[Any]:
        # Lists come as {"object": "list", "data": [...]}; tolerate a bare list too.
        if isinstance(data, list):
            return data
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            return data["data"]
        raise NebiusError("unexpected list response from the API", body=str(data)[:2000])

    # ------------------------------------------------------------------ models

    async def list_models(self) -> list[Model]:
        data = await self._json("GET", "models")
        return [self._parse(Model, item, "model") for item in self._list_data(data)]

    # ------------------------------------------------------------------ files

    async def upload_file(
        self,
        path: str | os.PathLike[str],
        *,
        purpose: str = "fine-tune",
        filename: str | None = None,
        on_progress: TransferProgress | None = None,
    ) -> FileObject:
        """Upload a file as a multipart stream (constant memory); progress(sent, total)."""
        file_path = Path(path)
        if not file_path.is_file():
            raise NebiusError(f"{file_path}: no such file")
        body = MultipartFile(
            file_path, {"purpose": purpose}, filename=filename, on_progress=on_progress
        )
        data = await self._json(
            "POST",
            "files",
            content=body.stream,
            headers={
                "Content-Type": body.content_type,
                "Content-Length": str(body.content_length),
            },
        )
        return self._parse(FileObject, data, "file")

    async def retrieve_file(self, file_id: str) -> FileObject:
        return self._parse(FileObject, await self._json("GET", f"files/{file_id}"), "file")

    async def list_files(self) -> list[FileObject]:
        data = await self._json("GET", "files")
        return [self._parse(FileObject, item, "file") for item in self._list_data(data)]

    async def delete_file(self, file_id: str) -> bool:
        data = await self._json("DELETE", f"files/{file_id}")
        return bool(data.get("deleted", True)) if isinstance(data, dict) else True

    @asynccontextmanager
    async def stream_file_content(
        self, file_id: str
    ) -> AsyncIterator[tuple[int | None, AsyncIterator[bytes]]]:
        """`async with client.stream_file_content(id) as (total, chunks)`: the content as it
        arrives; total is the Content-Length when the server gave one."""
        response = await self._send("GET", f"files/{file_id}/content", stream=True)
        length = response.headers.get("content-length")
        total = int(length) if length and length.isdigit() else None
        info = self._info("GET", f"files/{file_id}/content")

        async def chunks() -> AsyncIterator[bytes]:
            received = 0
            try:
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    yield chunk
            except httpx.TimeoutException:
                raise APITimeoutError("download timed out", request=info) from None
            except httpx.TransportError as exc:
                raise APIConnectionError(f"download interrupted: {exc}", request=info) from None
            # aiter_raw gives the body as sent, so Content-Length applies to it.
            if total is not None and received != total:
                raise APIConnectionError(
                    f"download incomplete: {received} of {total} bytes", request=info
                )

        try:
            yield total, chunks()
        finally:
            await response.aclose()

    async def download_file(
        self,
        file_id: str,
        dest_path: str | os.PathLike[str],
        *,
        on_progress: TransferProgress | None = None,
    ) -> int:
        """Stream a file's content to dest_path (via a .part file); returns bytes written."""
        dest = Path(dest_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        done = 0
        try:
            async with self.stream_file_content(file_id) as (total, chunks):
                if on_progress:
                    on_progress(0, total)
                with open(partial, "wb") as out:
                    async for chunk in chunks:
                        out.write(chunk)
                        done += len(chunk)
                        if on_progress:
                            on_progress(done, total)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        return done

    async def wait_for_file(
        self,
        file_id: str,
        *,
        timeout: float = FILE_WAIT_TIMEOUT_S,
        on_progress: FileWaitProgress | None = None,
    ) -> FileObject:
        """Poll until the file is processed (backoff with jitter), at most `timeout` seconds.

        A file without a `status` counts as usable: Nebius may give none, and job creation
        then reports "not ready" itself, which `create_job` waits out.
        """
        start = self._clock()
        delay = FILE_POLL_INITIAL_S
        while True:
            file = await self.retrieve_file(file_id)
            elapsed = self._clock() - start
            if on_progress:
                on_progress(file, elapsed)
            if file.is_failed:
                reason = file.status_details or file.status
                raise FileProcessingError(f"Nebius could not process file {file_id}: {reason}")
            if file.is_ready:
                return file
            remaining = timeout - elapsed
            if remaining <= 0:
                raise FileNotReadyError(
                    f"file {file_id} is still '{file.status}' after {elapsed:.0f}s "
                    f"(limit {timeout:g}s)"
                )
            await self._sleep(min(jittered(delay, self._retry.rng), remaining))
            delay = min(delay * FILE_POLL_FACTOR, FILE_POLL_MAX_S)

    async def checkpoint_files(self, checkpoint: Checkpoint) -> list[FileObject]:
        """The file objects of a checkpoint's result files (their `clean_filename` is the
        name to save under)."""
        return [await self.retrieve_file(fid) for fid in checkpoint.result_files]

    # ------------------------------------------------------------------ jobs

    async def create_job(
        self, request: JobRequest, *, file_wait_timeout: float = FILE_WAIT_TIMEOUT_S
    ) -> Job:
        """Create a job, retrying without ever creating two.

        - 429: refused, so sending again is safe (after Retry-After).
        - 5xx, timeout, dropped connection: the job may exist; list recent jobs and return the
          one matching this request before sending again.
        - "file not ready yet": wait (backoff, up to file_wait_timeout) and send again.
        """
        body = request.to_body()
        attempt = 0
        since = self._wall() - CREATE_DEDUPE_SKEW_S
        wait_start: float | None = None
        wait_delay = FILE_POLL_INITIAL_S
        while True:
            try:
                data = await self._json("POST", "fine_tuning/jobs", json=body, retry=False)
                return self._parse(Job, data, "job")
            except RateLimitError as err:
                if attempt >= self.max_retries:
                    raise
                delay = err.retry_after
                if delay is None:
                    delay = self._retry.delay(attempt)
            except (APIConnectionError, ServerError) as err:
                existing = await self._find_created_job(request, since, err)
                if existing is not None:
                    log.warning("job creation failed (%s) but created %s", err, existing.id)
                    return existing
                if attempt >= self.max_retries:
                    raise
                delay = self._retry.delay(attempt)
            except (BadRequestError, UnprocessableEntityError) as err:
                if not is_not_ready_message(err.message):
                    raise
                now = self._clock()
                wait_start = now if wait_start is None else wait_start
                if now - wait_start >= file_wait_timeout:
                    raise FileNotReadyError(
                        f"{err.message} (still refused after {now - wait_start:.0f}s)",
                        status_code=err.status_code,
                        body=err.body,
                        request=err.request,
                    ) from None
                delay = min(jittered(wait_delay, self._retry.rng), file_wait_timeout)
                wait_delay = min(wait_delay * FILE_POLL_FACTOR, FILE_POLL_MAX_S)
                log.info("file not ready yet; creating the job again in %.1fs", delay)
                await self._sleep(delay)
                continue  # not-ready waits are bounded by time, not by max_retries
            log.warning("job creation failed; retry %d/%d", attempt + 1, self.max_retries)
            await self._sleep(delay)
            attempt += 1

    async def _find_created_job(
        self, request: JobRequest, since: float, cause: NebiusError
    ) -> Job | None:
        try:
            page = await self.list_jobs(limit=CREATE_DEDUPE_SCAN_LIMIT)
        except NebiusError:
            # Sending again blind could start a second paid job: stop and say so.
            cause.hint = (
                "Job creation failed and the job list could not be checked: the job may "
                "exist. Run `finetune list` before trying again."
            )
            raise cause from None
        for job in page.data:
            if job_matches(job, request, since):
                return job
        return None

    async def list_jobs(
        self, *, after: str | None = None, limit: int = DEFAULT_JOBS_PAGE
    ) -> Page[Job]:
        data = await self._json("GET", "fine_tuning/jobs", params={"after": after, "limit": limit})
        return self._parse(Page[Job], data, "job list")

    async def iter_jobs(self, *, page_size: int = DEFAULT_JOBS_PAGE) -> AsyncIterator[Job]:
        """Every job, newest first, paging as needed."""
        after: str | None = None
        while True:
            page = await self.list_jobs(after=after, limit=page_size)
            for job in page.data:
                yield job
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    async def retrieve_job(self, job_id: str) -> Job:
        return self._parse(Job, await self._json("GET", f"fine_tuning/jobs/{job_id}"), "job")

    async def cancel_job(self, job_id: str) -> Job:
        # Cancelling twice is harmless, so retrying this POST is safe.
        data = await self._json("POST", f"fine_tuning/jobs/{job_id}/cancel")
        return self._parse(Job, data, "job")

    async def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = DEFAULT_EVENTS_PAGE
    ) -> Page[Event]:
        """One page of events as Nebius gives them: newest first; `after` pages to older."""
        data = await self._json(
            "GET", f"fine_tuning/jobs/{job_id}/events", params={"after": after, "limit": limit}
        )
        return self._parse(Page[Event], data, "event list")

    async def iter_events(
        self,
        job_id: str,
        *,
        after_event_id: str | None = None,
        page_size: int = DEFAULT_EVENTS_PAGE,
    ) -> AsyncIterator[Event]:
        """Events oldest to newest; with after_event_id, only those newer than it.

        Pages from the newest back until after_event_id (or the oldest event) is reached; an
        after_event_id that no longer appears yields every event.
        """
        newer: list[Event] = []
        cursor: str | None = None
        seen: set[str] = set()
        found = False
        while not found:
            page = await self.list_events(job_id, after=cursor, limit=page_size)
            for event in page.data:
                if event.id == after_event_id:
                    found = True
                    break
                if event.id not in seen:  # a server that repeats a page must not loop us
                    seen.add(event.id)
                    newer.append(event)
            if found or not page.has_more or not page.data or page.data[-1].id == cursor:
                break
            cursor = page.data[-1].id
        for event in reversed(newer):
            yield event

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """A job's checkpoints sorted by step (Nebius does not promise an order)."""
        data = await self._json("GET", f"fine_tuning/jobs/{job_id}/checkpoints")
        items = [self._parse(Checkpoint, item, "checkpoint") for item in self._list_data(data)]
        return sorted(items, key=lambda c: (c.step_number, c.created_at or 0))


def job_matches(job: Job, request: JobRequest, since: float) -> bool:
    """Whether `job` is the one `request` may have created at or after `since` (epoch s)."""
    if job.created_at is not None and job.created_at < since:
        return False
    if job.training_file != request.training_file:
        return False
    if (job.validation_file or None) != request.validation_file:
        return False
    if job.model != request.model and not (job.model or "").startswith(request.model):
        return False
    if request.suffix is not None and job.suffix not in (None, request.suffix):
        return False
    return not (request.seed is not None and job.seed not in (None, request.seed))
