"""NebiusClient: the asyncio client for the Nebius fine-tuning API (see DESIGN.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from client._multipart import MultipartFile
from client._retry import RETRY_STATUSES, Clock, RetryPolicy, Sleep, backoff, jittered
from client.chat import ChatChunk, ChatCompletion, SSEError, sse_data
from client.config import resolve_price_config, resolve_settings
from client.constants import (
    CHAT_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    CREATE_DEDUPE_SCAN_LIMIT,
    CREATE_DEDUPE_SKEW_S,
    DEFAULT_EVENTS_PAGE,
    DEFAULT_JOBS_PAGE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    DEPLOY_DEDUPE_SKEW_S,
    DEPLOY_POLL_FACTOR,
    DEPLOY_POLL_INITIAL_S,
    DEPLOY_POLL_MAX_S,
    DEPLOY_WAIT_TIMEOUT_S,
    FILE_POLL_FACTOR,
    FILE_POLL_INITIAL_S,
    FILE_POLL_MAX_S,
    FILE_WAIT_TIMEOUT_S,
)
from client.cost import PriceCache, TrainingPrice, api_price_in, free_price, price_for
from client.deployments import (
    DELETED,
    Deployment,
    DeploymentFailed,
    DeploymentTimeout,
    deployment_path,
    requested_name_of,
    v0_root,
)
from client.errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    FileNotReadyError,
    FileProcessingError,
    NebiusError,
    NotFoundError,
    RateLimitError,
    RequestInfo,
    ServerError,
    UnprocessableEntityError,
    error_from_response,
    extract_error,
    is_not_ready_message,
    redact_text,
)
from client.events import RECENT_EVENTS, EventReader, FetchPage
from client.hyperparameters import LOCAL_ENGINE, JobRequest, RangeProfile, profile_for_base_url
from client.models import Checkpoint, Event, FileObject, Job, Model, Page

log = logging.getLogger("client")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
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
        range_profile: RangeProfile | None = None,
    ) -> None:
        settings = resolve_settings(api_key, base_url)
        self.base_url = settings.base_url
        # The hyperparameter ranges of this server, checked before uploading anything: the
        # local engine's on a loopback address unless the caller knows better.
        self.range_profile = range_profile or profile_for_base_url(self.base_url)
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
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """One call, retried on 429/5xx/connection failures when `retry`; raises NebiusError.
        `read_timeout`: this call's wait for the answer, instead of the client's."""
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if read_timeout is not None:
            timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT_S)
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
                timeout=timeout,
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
                detail = self._transport_detail(exc)
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
            info = self._info(method, path, kwargs.get("params"), kwargs.get("json"))
            raise self._not_json(response, info) from None

    def _not_json(self, response: httpx.Response, info: RequestInfo) -> NebiusError:
        return NebiusError(
            "the API answered with something that is not JSON",
            status_code=response.status_code,
            body=redact_text(response.text[:2000], self._secrets),
            request=info,
        )

    def _transport_detail(self, exc: httpx.TransportError) -> str:
        """What went wrong on the wire, with any secret the message echoes redacted."""
        return redact_text(str(exc) or type(exc).__name__, self._secrets)

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

        A file with `status: null` counts as usable and is returned after one look: Nebius
        always answers null (the field is deprecated), processes the file after the job is
        created (the job's events say "Dataset 'training' processed successfully"), and a job
        created too early is refused as "not ready", which `create_job` waits out.
        """

        def processed(file: FileObject) -> bool:
            if file.is_failed:
                reason = file.status_details or file.status
                raise FileProcessingError(f"Nebius could not process file {file_id}: {reason}")
            return file.is_ready

        return await self._poll(
            lambda: self.retrieve_file(file_id),
            processed,
            lambda file: f"file {file_id} is still '{file.status}'",
            FileNotReadyError,
            timeout=timeout,
            delays=backoff(FILE_POLL_INITIAL_S, FILE_POLL_FACTOR, FILE_POLL_MAX_S),
            on_progress=on_progress,
        )

    async def _poll(
        self,
        look: Callable[[], Awaitable[T]],
        finished: Callable[[T], bool],
        still: Callable[[T], str],
        timed_out: type[NebiusError],
        *,
        timeout: float,
        delays: Iterator[float],
        on_progress: Callable[[T, float], object] | None,
    ) -> T:
        """Looks until `finished` says so (it raises for a failure), waiting `delays` with
        jitter between looks; after `timeout` seconds raises `timed_out`, saying what the last
        look was `still`."""
        start = self._clock()
        while True:
            item = await look()
            elapsed = self._clock() - start
            if on_progress:
                on_progress(item, elapsed)
            if finished(item):
                return item
            remaining = timeout - elapsed
            if remaining <= 0:
                raise timed_out(f"{still(item)} after {elapsed:.0f}s (limit {timeout:g}s)")
            await self._sleep(min(jittered(next(delays), self._retry.rng), remaining))

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
        sent_at = self._wall()
        wait_start: float | None = None
        wait_delays = backoff(FILE_POLL_INITIAL_S, FILE_POLL_FACTOR, FILE_POLL_MAX_S)

        async def send() -> Job:
            nonlocal wait_start
            while True:
                try:
                    data = await self._json("POST", "fine_tuning/jobs", json=body, retry=False)
                    return self._parse(Job, data, "job")
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
                    # Bounded by time, not by max_retries: the file is on its way.
                    delay = min(jittered(next(wait_delays), self._retry.rng), file_wait_timeout)
                    log.info("file not ready yet; creating the job again in %.1fs", delay)
                    await self._sleep(delay)

        return await self._create_once(
            "job creation",
            send,
            lambda: self.find_created_job(request, sent_at=sent_at),
            lambda job: job.id,
            unchecked_hint=(
                "Job creation failed and the job list could not be checked: the job may "
                "exist. Run `finetune list` before trying again."
            ),
        )

    async def _create_once(
        self,
        what: str,
        send: Callable[[], Awaitable[T]],
        find: Callable[[], Awaitable[T | None]],
        name_of: Callable[[T], str],
        *,
        unchecked_hint: str,
    ) -> T:
        """Sends a create that must never make two (a second job would train and bill again).

        A 429 was refused, so it is sent again after Retry-After. After a 5xx or a dropped
        connection the object may exist: `find` looks for it before sending again, and when
        the list cannot be read the failure is raised with `unchecked_hint`, since sending
        blind could make a second one.
        """
        attempt = 0
        while True:
            try:
                return await send()
            except RateLimitError as err:
                if attempt >= self.max_retries:
                    raise
                delay = err.retry_after
                if delay is None:
                    delay = self._retry.delay(attempt)
            except (APIConnectionError, ServerError) as err:
                try:
                    existing = await find()
                except NebiusError:
                    err.hint = unchecked_hint
                    raise err from None
                if existing is not None:
                    log.warning("%s failed (%s) but created %s", what, err, name_of(existing))
                    return existing
                if attempt >= self.max_retries:
                    raise
                delay = self._retry.delay(attempt)
            log.warning("%s failed; retry %d/%d", what, attempt + 1, self.max_retries)
            await self._sleep(delay)
            attempt += 1

    async def find_created_job(
        self, request: JobRequest, *, sent_at: float, exclude: Collection[str] = ()
    ) -> Job | None:
        """The job that `request`, first sent at `sent_at` (epoch s), may have created, or
        None: for a create whose answer never came (a 5xx, a dropped connection, a crash of
        the caller). `exclude`: ids of jobs known to be someone else's. Raises NebiusError
        when the job list cannot be read."""
        since = sent_at - CREATE_DEDUPE_SKEW_S
        page = await self.list_jobs(limit=CREATE_DEDUPE_SCAN_LIMIT)
        for job in page.data:
            if job.id not in exclude and job_matches(job, request, since):
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
        """One page of events in the API's own order: newest first on OpenAI and our engine,
        oldest first on Nebius; `after` pages on in that order. Use iter_events for order."""
        data = await self._json(
            "GET", f"fine_tuning/jobs/{job_id}/events", params={"after": after, "limit": limit}
        )
        return self._parse(Page[Event], data, "event list")

    @cached_property
    def _events(self) -> EventReader:
        return EventReader()

    def _event_pages(self, job_id: str) -> FetchPage:
        async def fetch(after: str | None, limit: int) -> Page[Event]:
            return await self.list_events(job_id, after=after, limit=limit)

        return fetch

    async def iter_events(
        self,
        job_id: str,
        *,
        after_event_id: str | None = None,
        page_size: int = DEFAULT_EVENTS_PAGE,
    ) -> AsyncIterator[Event]:
        """Events oldest to newest, whichever order the API lists them in; with
        after_event_id, only those newer than it, each once, as they appear between calls.

        The order is recognised per response (see client.events). An after_event_id no longer
        listed gives the events provably newer than it when this client handed it out,
        otherwise only the newest event: the cursor moves on, nothing is posted again.
        """
        events = await self._events.newer(
            job_id, self._event_pages(job_id), after_event_id, page_size
        )
        for event in events:
            yield event

    async def recent_events(
        self, job_id: str, *, limit: int = RECENT_EVENTS, page_size: int = DEFAULT_EVENTS_PAGE
    ) -> list[Event]:
        """The job's newest `limit` events, oldest to newest, whichever order the API uses."""
        return await self._events.recent(self._event_pages(job_id), limit, page_size)

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """A job's checkpoints sorted by step (Nebius does not promise an order)."""
        data = await self._json("GET", f"fine_tuning/jobs/{job_id}/checkpoints")
        items = [self._parse(Checkpoint, item, "checkpoint") for item in self._list_data(data)]
        return sorted(items, key=lambda c: (c.step_number, c.created_at or 0))

    # ------------------------------------------------------------------ deployments

    @property
    def v0_url(self) -> str:
        """The root of the `/v0` calls, beside the `/v1` base URL."""
        return v0_root(str(self._http.base_url))

    def _deployments_url(self, full_name: str | None = None) -> str:
        # Absolute: `/v0` is outside the base URL, and a relative `Qwen3-LoRa:x` would read
        # as a URL scheme.
        url = self.v0_url + "models"
        return f"{url}/{deployment_path(full_name)}" if full_name else url

    async def deploy(
        self,
        job_id: str,
        checkpoint_id: str,
        *,
        name: str,
        base_model: str,
        description: str | None = None,
    ) -> Deployment:
        """Deploy a LoRA checkpoint as a custom model; Nebius answers `validating` with the
        full name it generated (keep `.name`: it cannot be derived).

        Never creates two: a 429 is sent again after Retry-After; after a 5xx or a dropped
        connection the deployment may exist, so the list is checked before sending again."""
        source = f"{job_id}:{checkpoint_id}"
        body: dict[str, Any] = {"name": name, "base_model": base_model, "source": source}
        if description is not None:
            body["description"] = description
        url = self._deployments_url()
        sent_at = self._wall()

        async def send() -> Deployment:
            data = await self._json("POST", url, json=body, retry=False)
            return self._parse(Deployment, data, "deployment")

        return await self._create_once(
            "deploy",
            send,
            lambda: self.find_deployment(source, name, since=sent_at),
            lambda deployment: deployment.name,
            unchecked_hint=(
                "Deploying failed and the list of custom models could not be checked: the "
                "model may exist. Run `finetune deployments` before trying again."
            ),
        )

    async def find_deployment(self, source: str, name: str, *, since: float) -> Deployment | None:
        """The deployment of `source` (`<job>:<checkpoint>`) asked for as `name` and created
        at or after `since` (epoch s), or None."""
        for deployment in await self.list_deployments():
            created = deployment.created_at
            if (
                deployment.origin == source
                and requested_name_of(deployment.name) == name
                and (created is None or created >= since - DEPLOY_DEDUPE_SKEW_S)
            ):
                return deployment
        return None

    async def get_deployment(self, full_name: str) -> Deployment:
        """One custom model by its full name; NotFoundError when there is none."""
        try:
            data = await self._json("GET", self._deployments_url(full_name))
        except NotFoundError as err:
            err.hint = _no_deployment_hint(full_name)
            raise
        if isinstance(data, dict) and not data.get("name"):
            data = {**data, "name": full_name}
        return self._parse(Deployment, data, "deployment")

    async def list_deployments(self) -> list[Deployment]:
        """The custom models (Nebius answers a bare JSON array; a wrapped list is accepted)."""
        data = await self._json("GET", self._deployments_url())
        return [self._parse(Deployment, item, "deployment") for item in self._list_data(data)]

    async def delete_deployment(self, full_name: str) -> Deployment:
        """Delete a custom model; its answer has `status: "deleted"`. A delete whose answer
        was lost and that then finds nothing counts as done."""
        url = self._deployments_url(full_name)
        try:
            try:
                data = await self._json("DELETE", url, retry=False)
            except (APIConnectionError, ServerError) as err:
                if self.max_retries <= 0:
                    raise
                await self._sleep(self._retry.delay(0))
                try:
                    data = await self._json("DELETE", url)
                except NotFoundError:
                    log.warning("delete of %s failed (%s), then found it gone", full_name, err)
                    data = {"status": DELETED}
        except NotFoundError as err:
            err.hint = _no_deployment_hint(full_name)
            raise
        if not isinstance(data, dict):
            data = {}
        return self._parse(
            Deployment, {"status": DELETED, **data, "name": data.get("name") or full_name}, "answer"
        )

    async def wait_for_deployment(
        self,
        full_name: str,
        *,
        timeout: float = DEPLOY_WAIT_TIMEOUT_S,
        on_progress: Callable[[Deployment, float], object] | None = None,
    ) -> Deployment:
        """Poll until the deployment is active (backoff with jitter), at most `timeout`
        seconds. An answer without a status means still validating. Raises DeploymentFailed
        (`error`, with Nebius's status_reason; or deleted meanwhile) or DeploymentTimeout."""

        def active(deployment: Deployment) -> bool:
            if deployment.is_active:
                return True
            if deployment.is_settled:
                reason = deployment.status_reason or "no reason given"
                if deployment.state == DELETED:
                    reason = "it was deleted while validating"
                raise DeploymentFailed(f"{full_name} could not be deployed: {reason}")
            return False

        return await self._poll(
            lambda: self.get_deployment(full_name),
            active,
            lambda deployment: f"{full_name} is still {deployment.state}",
            DeploymentTimeout,
            timeout=timeout,
            delays=backoff(DEPLOY_POLL_INITIAL_S, DEPLOY_POLL_FACTOR, DEPLOY_POLL_MAX_S),
            on_progress=on_progress,
        )

    # ------------------------------------------------------------------ chat

    @staticmethod
    def _chat_body(
        model: str, messages: list[dict[str, Any]], options: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": messages,
            **{k: v for k, v in options.items() if v is not None},
        }

    async def chat_completion(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        **extra: Any,
    ) -> ChatCompletion:
        """One answer (OpenAI's shape); `model` is a base model or a deployment's full name.
        Retried on 429/5xx like every call: a chat changes nothing on the server."""
        body = self._chat_body(
            model,
            messages,
            {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p, "stop": stop}
            | extra,
        )
        data = await self._json("POST", "chat/completions", json=body, read_timeout=CHAT_TIMEOUT_S)
        return self._parse(ChatCompletion, data, "chat completion")

    async def stream_chat_completion(
        self,
        model: str,
        messages: list[dict[str, Any]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        **extra: Any,
    ) -> AsyncIterator[ChatChunk]:
        """The answer as it is generated (`stream: true`, server-sent events). A server that
        answers with one JSON body instead gives one chunk holding the whole answer."""
        options = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
        body = self._chat_body(model, messages, options | {"stop": stop} | extra)
        body["stream"] = True
        info = self._info("POST", "chat/completions", None, body)
        response = await self._send(
            "POST", "chat/completions", json=body, stream=True, read_timeout=CHAT_TIMEOUT_S
        )
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                await response.aread()
                try:
                    whole = self._parse(ChatCompletion, response.json(), "chat completion")
                except ValueError:
                    raise self._not_json(response, info) from None
                yield ChatChunk.model_validate(
                    {
                        "id": whole.id,
                        "model": whole.model,
                        "choices": [
                            {"delta": {"content": whole.text}, "finish_reason": whole.finish_reason}
                        ],
                        "usage": whole.usage.model_dump() if whole.usage else None,
                    }
                )
                return
            try:
                async for event in sse_data(response.aiter_lines()):
                    if event.get("error"):
                        message, code, _ = extract_error(json.dumps(event))
                        raise NebiusError(f"the answer stopped: {message}", code=code, request=info)
                    yield self._parse(ChatChunk, event, "chat chunk")
            except SSEError as exc:
                raise NebiusError(str(exc), request=info) from None
            except httpx.TimeoutException:
                raise APITimeoutError("the streamed answer timed out", request=info) from None
            except httpx.TransportError as exc:
                detail = self._transport_detail(exc)
                raise APIConnectionError(
                    f"the streamed answer was cut off: {detail}", request=info
                ) from None
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ training prices

    @cached_property
    def _prices(self) -> PriceCache:
        # The overrides are read when a price is first needed: a typo in them fails the
        # commands that show a cost (ConfigError naming the variable), not every call.
        return PriceCache(resolve_price_config())

    async def _price_listing(self) -> Any:
        """`GET /v0/models`, once per client; None when it cannot give prices. Not retried,
        and a failure that may pass (connection, 5xx, 429) is not kept: a price must never
        hold up a job or a card, and the published rule stands in meanwhile."""
        cache = self._prices
        async with cache.lock:
            if cache.loaded:
                return cache.listing
            try:
                listing = await self._json("GET", self.v0_url + "models", retry=False)
            except (APIConnectionError, APITimeoutError, ServerError, RateLimitError) as err:
                log.warning("no training prices from the API for now (%s)", err)
                return None
            except NebiusError as err:  # 404, a refusal, not JSON: the rule stands in for good
                log.info("no training prices from the API (%s)", err)
                listing = None
            cache.listing, cache.loaded = listing, True
            return listing

    async def training_price(self, model: str) -> TrainingPrice:
        """What training `model` costs per million trained tokens (client.cost): free on
        the local engine; else the API's price for it when `GET /v0/models` gives one, else
        the configured or published price of its size band, else unknown."""
        if self.range_profile.key == LOCAL_ENGINE.key:
            return free_price(model)
        config = self._prices.config
        return price_for(model, config, api_price_in(await self._price_listing(), model))


def _no_deployment_hint(full_name: str) -> str:
    return (
        f"No custom model named {full_name!r}: `finetune deployments` lists them (give the "
        "full name Nebius generated, `<base>-LoRa:<name>-XXXX`)."
    )


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
