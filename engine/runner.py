"""The job queue: one worker process per job, FIFO, N at a time; recovery and cancel.

A worker speaks one JSON object per line on stdout (see `engine.training.worker`); what
each line means for its job is `engine.worker_messages`, and starting, stopping and
explaining the end of a process is `engine.worker_processes`. A worker that dies, is
killed for memory or hangs fails its own job only: the reason recorded is its exit code or
signal and the line of its log worth quoting, never a traceback.

A job's W&B API key (held by the engine's `KeyVault`) reaches its worker only in the
worker's environment, as WANDB_API_KEY: never in the spec file, and anything the worker
says is scrubbed of it before it becomes an event or an error.
"""

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from engine import worker_messages as messages
from engine.config import EngineConfig
from engine.ids import new_id, now
from engine.jobs import KeyVault
from engine.model_registry import Lineage
from engine.objects import event_object, file_object
from engine.store import Store
from engine.worker_messages import REDACTED, Event, Update
from engine.worker_processes import (
    Process,
    WarmWorker,
    exit_reason,
    kill_orphan,
    quoted_log_line,
    reap,
    spawn,
    terminate,
    worker_env,
)

log = logging.getLogger("engine.runner")

TERMINAL = ("succeeded", "failed", "cancelled")


class _Run:
    """A job being trained right now."""

    def __init__(
        self, job_id: str, process: Process, log_path: Path, secret: str | None = None
    ) -> None:
        self.job_id = job_id
        self.process = process
        self.log_path = log_path
        # The job's W&B key: what the worker writes is scrubbed of it.
        self.secret = secret
        self.cancel_requested = False
        self.task: asyncio.Task[None] | None = None
        self.outcome: str | None = None  # the worker's own "succeeded" / "failed" line


class JobRunner:
    def __init__(self, store: Store, config: EngineConfig, keys: KeyVault) -> None:
        self.store = store
        self.config = config
        # The jobs' W&B keys, from the engine that created the jobs.
        self.keys = keys
        self.runs: dict[str, _Run] = {}
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._warm = (
            WarmWorker(list(config.worker_command), config.jobs_dir, config.stop_grace_seconds)
            if config.warm_worker
            else None
        )
        self._stopping = False

    # Lifecycle

    async def start(self) -> None:
        self._recover()
        self._scheduler = asyncio.create_task(self._schedule(), name="engine-scheduler")
        if self._warm is not None:
            await self._warm.start()
        self._wake.set()

    async def stop(self) -> None:
        """Stops every worker; their jobs stay `running` and resume on the next start."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        runs = list(self.runs.values())
        for run in runs:
            terminate(run.process)
        if self._warm is not None:
            await self._warm.stop()
        for run in runs:
            if run.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task

    def _recover(self) -> None:
        """Jobs left `running` by an engine that stopped: resume from a checkpoint, or fail."""
        # Cold workers carry the job id (spec path) in their command line; warm ones the module.
        command = " ".join(self.config.worker_command[1:])
        for job in self.store.jobs_with_status("running", "validating_files"):
            job_id = job["id"]
            pid = self.store.job_internal(job_id).get("pid")
            if isinstance(pid, int):
                kill_orphan(pid, [job_id, command])
            checkpoint = self.store.last_checkpoint_path(job_id)
            if job["status"] == "validating_files":
                self.store.update_job(job_id, {"status": "queued"})
            elif checkpoint is not None and checkpoint.is_dir():
                self.store.update_job(
                    job_id, {"status": "queued"}, {"resume_from": str(checkpoint), "pid": None}
                )
                self._event(
                    job_id,
                    f"The engine restarted while this job was running; it resumes from "
                    f"the checkpoint {checkpoint.name}.",
                    level="warn",
                    data={"resume_from": checkpoint.name},
                )
            else:
                self._finish(
                    job_id,
                    "failed",
                    error={
                        "code": "engine_restarted",
                        "message": "The engine stopped while this job was running, before its "
                        "first checkpoint was saved; create the job again.",
                        "param": None,
                    },
                )

    # Queue

    def wake(self) -> None:
        self._wake.set()

    async def _schedule(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while len(self.runs) < self.config.max_concurrent_jobs and not self._stopping:
                queued = [
                    j for j in self.store.jobs_with_status("queued") if j["id"] not in self.runs
                ]
                if not queued:
                    break
                try:
                    await self._launch(queued[0])
                except Exception as exc:  # a worker that cannot start fails its job, not the engine
                    log.exception("could not start a worker for %s", queued[0]["id"])
                    self._finish(
                        queued[0]["id"],
                        "failed",
                        error={
                            "code": "worker_start_failed",
                            "message": f"The training process could not be started: {exc}",
                            "param": None,
                        },
                    )

    def _spec(self, job: dict[str, Any], output_dir: Path) -> dict[str, Any]:
        internal = self.store.job_internal(job["id"])
        lineage = _lineage(internal)
        return {
            "job_id": job["id"],
            "model": job["model"],
            "models_dir": str(self.config.models_dir.resolve()),
            "extra_model_dirs": [
                str(Path(p).expanduser().resolve()) for p in self.config.model_dirs
            ],
            "training_file": internal["training_path"],
            "validation_file": internal.get("validation_path"),
            "output_dir": str(output_dir),
            "hyperparameters": job["hyperparameters"],
            "seed": job["seed"],
            "resume_from": internal.get("resume_from"),
            "device": self.config.device,
            # A fine-tuned model of this engine: what to load and which adapters to merge.
            "base_model": lineage.load if lineage else None,
            "merge_adapters": [str(p) for p in lineage.adapters] if lineage else [],
            # Project, name and entity only: the key goes in the worker's environment.
            "wandb": internal.get("wandb"),
        }

    async def _launch(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        output_dir = (self.config.jobs_dir / job_id).resolve()
        output_dir.mkdir(parents=True, exist_ok=True)
        spec_path = output_dir / "spec.json"
        spec_path.write_text(json.dumps(self._spec(job, output_dir), indent=2))
        log_path = output_dir / "worker.log"
        if log_path.exists():  # an earlier attempt's (before a restart): keep it beside
            log_path.rename(output_dir / f"worker.{int(time.time() * 1000)}.log")
        wandb_key = self._wandb_key(job_id)
        process = None
        # The warm worker was started before this job existed, with the engine's environment,
        # and an environment is set only when a process starts: a job with its own W&B key
        # gets a cold worker instead (the key is never written down for a warm one to read),
        # and the warm worker waits for the next job.
        if self._warm is not None and wandb_key is None:
            process = await self._warm.take(spec_path, log_path)
        if process is None:
            args = [*self.config.worker_command, str(spec_path)]
            process = await spawn(args, log_path, warm=False, env=worker_env(wandb_key))
        current = self.store.get_job(job_id)
        if current is None or current["status"] != "queued":
            # Cancelled while its worker was starting.
            terminate(process)
            await reap(process, self.config.stop_grace_seconds)
            return
        run = _Run(job_id, process, log_path, secret=wandb_key)
        self.runs[job_id] = run
        self.store.update_job(job_id, {"status": "running"}, {"pid": process.pid})
        run.task = asyncio.create_task(self._watch(run), name=f"engine-job-{job_id}")
        if self._warm is not None and not self._warm.ready and not self._stopping:
            await self._warm.start()

    def _wandb_key(self, job_id: str) -> str | None:
        """The job's W&B key, saying so on the job when an engine restart has lost it."""
        key = self.keys.get(job_id)
        if key is None and self.store.job_internal(job_id).get("wandb_key_given"):
            self._event(
                job_id,
                "The W&B API key sent with this job was kept in the engine's memory only and "
                "did not survive the engine's restart: from here on, metrics reach W&B only if "
                "the engine's own environment has a W&B login (WANDB_API_KEY).",
                level="warn",
            )
        return key

    # One worker

    async def _watch(self, run: _Run) -> None:
        assert run.process.stdout is not None
        try:
            while True:
                try:
                    line = await run.process.stdout.readline()
                except ValueError:  # a line over LINE_LIMIT: not the protocol
                    log.warning("job %s: worker wrote an overlong line", run.job_id)
                    continue
                if not line:
                    break
                if run.secret:
                    line = line.replace(run.secret.encode(), REDACTED.encode())
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("job %s: worker wrote a line that is not JSON", run.job_id)
                    continue
                if isinstance(message, dict):
                    try:
                        self._handle(run, message)
                    except Exception:  # one odd message must not stop the watch
                        log.exception(
                            "job %s: could not handle %s", run.job_id, message.get("type")
                        )
            returncode = await run.process.wait()
            self._ended(run, returncode)
        finally:
            self.runs.pop(run.job_id, None)
            self._wake.set()

    def _ended(self, run: _Run, returncode: int) -> None:
        job = self.store.get_job(run.job_id)
        if job is None or job["status"] in TERMINAL:
            return
        if run.cancel_requested:
            self._finish(run.job_id, "cancelled")
        elif self._stopping:
            self._event(
                run.job_id,
                "The engine is stopping; this job resumes when it starts again.",
                level="warn",
            )
        else:
            code, message = exit_reason(returncode, quoted_log_line(run.log_path, run.secret))
            self._finish(
                run.job_id, "failed", error={"code": code, "message": message, "param": None}
            )

    def _handle(self, run: _Run, message: dict[str, Any]) -> None:
        kind = message.get("type")
        job_id = run.job_id
        if run.cancel_requested:
            return
        if kind == "dataset":
            self._apply(job_id, messages.dataset(message))
        elif kind == "started":
            lineage = _lineage(self.store.job_internal(job_id))
            self._apply(job_id, messages.started(message, lineage))
        elif kind == "base_evaluation":
            self._apply(job_id, messages.base_evaluation(message))
        elif kind == "progress":
            self._apply(job_id, messages.progress(message, time.time()))
        elif kind == "epoch":
            self._apply(job_id, messages.epoch(message))
        elif kind == "checkpoint":
            self._on_checkpoint(job_id, message)
        elif kind == "notice":
            self._apply(job_id, messages.notice(message))
        elif kind == "succeeded":
            run.outcome = "succeeded"
            job = self.store.get_job(job_id) or {}
            checkpoints = self.store.list_checkpoints(job_id)
            changes = messages.succeeded(message, job_id, job, checkpoints)
            self._finish(job_id, "succeeded", changes=changes)
        elif kind == "failed":
            run.outcome = "failed"
            self._finish(job_id, "failed", error=messages.failed(message))

    def _on_checkpoint(self, job_id: str, message: dict[str, Any]) -> None:
        """Registers a checkpoint's files as result files, then the checkpoint itself."""
        output_dir = (self.config.jobs_dir / job_id).resolve()
        path = Path(str(message.get("path") or "")).resolve()
        if not path.is_relative_to(output_dir) or not path.is_dir():
            log.warning("job %s: checkpoint path %s is outside the job folder", job_id, path)
            return
        file_ids = []
        for name in message.get("files") or []:
            target = (path / str(name)).resolve()
            if not target.is_relative_to(path) or not target.is_file():
                continue
            file_id = new_id("file")
            label = f"{job_id}/{path.name}/{target.relative_to(path).as_posix()}"
            doc = file_object(
                file_id, label, target.stat().st_size, "fine-tune-results", "processed"
            )
            self.store.add_file(doc, target, owned=False)
            file_ids.append(file_id)
        record, event = messages.checkpoint(
            message,
            job_id,
            self.store.get_job(job_id) or {},
            file_ids,
            checkpoint_id=new_id("ftckpt"),
            created_at=now(),
        )
        self.store.add_checkpoint(record, path)
        self._record(job_id, event)

    # Cancel

    async def cancel(self, job_id: str) -> None:
        """Stops the job's worker (SIGTERM, then SIGKILL after the grace period)."""
        run = self.runs.get(job_id)
        if run is None:
            self._finish(job_id, "cancelled")
            return
        run.cancel_requested = True
        terminate(run.process)
        await reap(run.process, self.config.stop_grace_seconds)
        if run.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    # Records

    def _apply(self, job_id: str, update: Update) -> None:
        if update.changes:
            self.store.update_job(job_id, update.changes)
        for event in update.events:
            self._record(job_id, event)

    def _record(self, job_id: str, event: Event) -> None:
        self._event(job_id, event.message, level=event.level, type=event.type, data=event.data)

    def _event(self, job_id: str, message: str, **kwargs: Any) -> None:
        self.store.add_event(job_id, event_object(message, **kwargs))

    def _finish(
        self,
        job_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        changes: dict[str, Any] | None = None,
    ) -> None:
        self.keys.drop(job_id)  # the job is over: nothing needs its key any more
        self.store.update_job(
            job_id,
            {
                "status": status,
                "finished_at": now(),
                "error": error,
                "estimated_finish": None,
                **(changes or {}),
            },
            {"pid": None},
        )
        if status == "succeeded":
            self._event(job_id, "The job has successfully completed.")
        elif status == "cancelled":
            self._event(job_id, "The job was cancelled.", level="warn")
        else:
            message = (error or {}).get("message", "unknown reason")
            self._event(job_id, f"The job failed: {message}", level="error", data=error)


def _lineage(internal: dict[str, Any]) -> Lineage | None:
    """The lineage recorded when the job was created on a fine-tuned model, if it was."""
    recorded = internal.get("lineage")
    return Lineage.model_validate(recorded) if recorded else None
