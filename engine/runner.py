"""The job queue and the worker processes: one process per job, FIFO, N at a time.

A worker speaks one JSON object per line on stdout (see `engine.training.worker`);
its stderr goes to `jobs/<id>/worker.log`. A worker that dies, is killed for memory or
hangs fails its own job only: the reason recorded is its exit code or signal and the
last line it logged, never a traceback.

A job's W&B API key (see `engine.jobs.wandb_keys`) reaches its worker only in the worker's
environment, as WANDB_API_KEY: never in the spec file, and anything the worker says is
scrubbed of it before it becomes an event or an error.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from engine.config import EngineConfig
from engine.ids import new_id, now
from engine.jobs import wandb_keys
from engine.models import Lineage
from engine.objects import event_object, file_object, fine_tuned_name
from engine.store import Store

log = logging.getLogger("engine.runner")

TERMINAL = ("succeeded", "failed", "cancelled")
# Longest stdout line read from a worker; the protocol's lines are far shorter.
LINE_LIMIT = 1024 * 1024
# Longest error message quoted from a worker's log.
REASON_CHARS = 500
# The variable W&B reads its API key from.
WANDB_KEY_ENV = "WANDB_API_KEY"
REDACTED = "[redacted]"


class _Run:
    """A job being trained right now."""

    def __init__(
        self,
        job_id: str,
        process: asyncio.subprocess.Process,
        log_path: Path,
        secret: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.process = process
        self.log_path = log_path
        # The job's W&B key: what the worker writes is scrubbed of it.
        self.secret = secret
        self.cancel_requested = False
        self.task: asyncio.Task[None] | None = None
        self.outcome: str | None = None  # the worker's own "succeeded" / "failed" line


class _Warm:
    """A worker started ahead: imports done, waiting for a spec path on stdin."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path


def _last_log_line(path: Path, secret: str | None = None) -> str | None:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    # Scrubbed before it is cut short, so no part of a key is left.
    return _scrub(lines[-1], secret)[:REASON_CHARS] if lines else None


def _exit_reason(returncode: int, log_path: Path, secret: str | None) -> tuple[str, str]:
    """(code, message) for a worker that ended without saying why."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGKILL:
            code = "worker_killed"
            what = (
                f"The training process was killed ({name}); "
                "the usual cause is running out of memory"
            )
        else:
            code = "worker_crashed"
            what = f"The training process was stopped by {name}"
    else:
        code = "worker_crashed"
        what = f"The training process exited with code {returncode} without finishing"
    last = _last_log_line(log_path, secret)
    return code, f"{what}. Last log line: {last}" if last else f"{what}."


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret else text


def _worker_env(wandb_key: str | None) -> dict[str, str] | None:
    """The environment of a job's worker: the engine's, plus the job's own W&B key."""
    if wandb_key is None:
        return None  # inherit
    return {**os.environ, WANDB_KEY_ENV: wandb_key}


def _pid_is_worker(pid: int, markers: list[str]) -> bool:
    """Whether `pid` is still one of our workers (a pid may have been reused since)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return any(marker.encode() in cmdline for marker in markers if marker)


class JobRunner:
    def __init__(self, store: Store, config: EngineConfig) -> None:
        self.store = store
        self.config = config
        self.runs: dict[str, _Run] = {}
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._warm: _Warm | None = None
        self._warm_seq = 0
        self._stopping = False

    # Lifecycle

    async def start(self) -> None:
        self._recover()
        self._scheduler = asyncio.create_task(self._schedule(), name="engine-scheduler")
        if self.config.warm_worker:
            await self._start_warm()
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
            self._terminate(run.process)
        if self._warm is not None:
            self._terminate(self._warm.process)
            await self._reap(self._warm.process)
            self._warm.log_path.unlink(missing_ok=True)
            self._warm = None
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
            if isinstance(pid, int) and _pid_is_worker(pid, [job_id, command]):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)  # an orphan from an engine that died
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

    async def _spawn(
        self, args: list[str], log_path: Path, warm: bool, env: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            return await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE if warm else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                limit=LINE_LIMIT,
                env=env,
                # Its own session: a Ctrl-C in the engine's terminal reaches the engine, which
                # then stops its workers itself.
                start_new_session=True,
            )

    async def _start_warm(self) -> None:
        self._warm_seq += 1
        log_path = self.config.jobs_dir / f".warm-{os.getpid()}-{self._warm_seq}.log"
        log_path.unlink(missing_ok=True)
        process = await self._spawn(list(self.config.worker_command), log_path, warm=True)
        self._warm = _Warm(process, log_path)

    async def _take_warm(
        self, spec_path: Path, log_path: Path
    ) -> asyncio.subprocess.Process | None:
        warm, self._warm = self._warm, None
        if warm is None:
            return None
        if warm.process.returncode is not None or warm.process.stdin is None:
            log.warning(
                "the warm worker had exited (%s): %s",
                warm.process.returncode,
                _last_log_line(warm.log_path),
            )
            warm.log_path.unlink(missing_ok=True)
            return None
        try:
            warm.process.stdin.write(f"{spec_path}\n".encode())
            await warm.process.stdin.drain()
            warm.process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            warm.log_path.unlink(missing_ok=True)
            return None
        # Its log belongs to this job now; the worker keeps writing to the renamed file.
        warm.log_path.rename(log_path)
        return warm.process

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
        if self.config.warm_worker and wandb_key is None:
            process = await self._take_warm(spec_path, log_path)
        if process is None:
            args = [*self.config.worker_command, str(spec_path)]
            process = await self._spawn(args, log_path, warm=False, env=_worker_env(wandb_key))
        current = self.store.get_job(job_id)
        if current is None or current["status"] != "queued":
            # Cancelled while its worker was starting.
            self._terminate(process)
            await self._reap(process)
            return
        run = _Run(job_id, process, log_path, secret=wandb_key)
        self.runs[job_id] = run
        self.store.update_job(job_id, {"status": "running"}, {"pid": process.pid})
        run.task = asyncio.create_task(self._watch(run), name=f"engine-job-{job_id}")
        if self.config.warm_worker and self._warm is None and not self._stopping:
            await self._start_warm()

    def _wandb_key(self, job_id: str) -> str | None:
        """The job's W&B key, saying so on the job when an engine restart has lost it."""
        key = wandb_keys.get(job_id)
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
            code, message = _exit_reason(returncode, run.log_path, run.secret)
            if returncode == 0:
                code, message = (
                    "worker_crashed",
                    "The training process exited without reporting a result.",
                )
            self._finish(
                run.job_id, "failed", error={"code": code, "message": message, "param": None}
            )

    def _handle(self, run: _Run, message: dict[str, Any]) -> None:
        kind = message.get("type")
        job_id = run.job_id
        if run.cancel_requested:
            return
        if kind == "dataset":
            self._on_dataset(job_id, message)
        elif kind == "started":
            total = message.get("total_steps")
            self.store.update_job(job_id, {"total_steps": total})
            resumed = message.get("resumed_from_step")
            lineage = _lineage(self.store.job_internal(job_id))
            if lineage is not None:
                message = {**message, **lineage.public()}
            self._event(
                job_id,
                f"Training started on {message.get('device')} ({message.get('dtype')}): "
                f"{message.get('model')}"
                + (
                    f" (from {lineage.base_model}, {len(lineage.adapters)} LoRA adapter(s) merged)"
                    if lineage
                    else ""
                )
                + f", {message.get('trainable_parameters', 0):,} of "
                f"{message.get('total_parameters', 0):,} parameters trained, {total} steps over "
                f"{message.get('epochs')} epoch(s)"
                + (f", resumed from step {resumed}" if resumed else "")
                + ".",
                data=message,
            )
        elif kind == "progress":
            eta = message.get("eta_seconds")
            self.store.update_job(
                job_id,
                {
                    "trained_steps": message.get("step"),
                    "total_steps": message.get("total_steps"),
                    "trained_tokens": message.get("trained_tokens"),
                    "estimated_finish": int(time.time() + eta) if eta is not None else None,
                },
            )
            self._event(
                job_id,
                f"Step {message.get('step')}/{message.get('total_steps')}: "
                f"loss {_num(message.get('loss'))}, "
                f"learning rate {_num(message.get('learning_rate'))}, "
                f"{float(message.get('tokens_per_second') or 0):,.1f} tokens/s"
                + (f", about {_duration(eta)} left" if eta is not None else "")
                + ".",
                type="metrics",
                data=message,
            )
        elif kind == "epoch":
            valid = message.get("valid_loss")
            self._event(
                job_id,
                f"Epoch {message.get('epoch')} finished at step {message.get('step')}: "
                f"train loss {_num(message.get('train_loss'))}"
                + (f", validation loss {_num(valid)}" if valid is not None else "")
                + ".",
                type="metrics",
                data=message,
            )
        elif kind == "checkpoint":
            self._on_checkpoint(job_id, message)
        elif kind == "notice":
            level = "warn" if message.get("level") == "warn" else "info"
            self._event(job_id, str(message.get("message") or "")[:REASON_CHARS], level=level)
        elif kind == "succeeded":
            run.outcome = "succeeded"
            job = self.store.get_job(job_id) or {}
            checkpoints = self.store.list_checkpoints(job_id)
            self._finish(
                job_id,
                "succeeded",
                changes={
                    "trained_tokens": message.get("trained_tokens"),
                    "trained_steps": message.get("trained_steps"),
                    "estimated_finish": None,
                    "fine_tuned_model": fine_tuned_name(job["model"], job.get("suffix"), job_id),
                    "result_files": checkpoints[-1]["result_files"] if checkpoints else [],
                },
            )
        elif kind == "failed":
            run.outcome = "failed"
            reason = str(message.get("reason") or "training failed")[:REASON_CHARS]
            code = str(message.get("code") or "training_failed")
            self._finish(job_id, "failed", error={"code": code, "message": reason, "param": None})

    def _on_dataset(self, job_id: str, message: dict[str, Any]) -> None:
        self._event(
            job_id,
            f"Dataset tokenized: {message.get('examples', 0):,} training examples"
            f" ({message.get('validation_examples', 0):,} validation), "
            f"{message.get('tokens', 0):,} tokens.",
            data=message,
        )
        truncated = int(message.get("truncated") or 0)
        dropped = int(message.get("dropped") or 0)
        if truncated or dropped:
            detail = message.get("message") or ""
            self._event(
                job_id,
                f"{truncated:,} example(s) truncated and {dropped:,} dropped at the context "
                f"length of {message.get('context_length')} tokens."
                + (f" {detail}" if detail else ""),
                level="warn",
                data={k: message.get(k) for k in ("truncated", "dropped", "context_length")},
            )

    def _on_checkpoint(self, job_id: str, message: dict[str, Any]) -> None:
        job = self.store.get_job(job_id) or {}
        step = int(message.get("step") or 0)
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
        metrics = {"step": step, **(message.get("metrics") or {})}
        checkpoint = {
            "id": new_id("ftckpt"),
            "object": "fine_tuning.job.checkpoint",
            "created_at": now(),
            "fine_tuning_job_id": job_id,
            "step_number": step,
            "fine_tuned_model_checkpoint": (
                fine_tuned_name(job.get("model", ""), job.get("suffix"), job_id)
                + f":ckpt-step-{step}"
            ),
            "metrics": metrics,
            "result_files": file_ids,
        }
        self.store.add_checkpoint(checkpoint, path)
        self._event(
            job_id,
            f"Checkpoint saved at step {step} (epoch {message.get('epoch')}): "
            f"{len(file_ids)} file(s).",
            data={
                "step": step,
                "checkpoint": checkpoint["id"],
                "result_files": file_ids,
                "metrics": metrics,
            },
        )

    # Cancel

    async def cancel(self, job_id: str) -> None:
        """Stops the job's worker (SIGTERM, then SIGKILL after the grace period)."""
        run = self.runs.get(job_id)
        if run is None:
            self._finish(job_id, "cancelled")
            return
        run.cancel_requested = True
        self._terminate(run.process)
        await self._reap(run.process)
        if run.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    def _terminate(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    async def _reap(self, process: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(process.wait(), self.config.stop_grace_seconds)
        except TimeoutError:
            # Its whole process group: anything it started goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    # Records

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
        wandb_keys.drop(job_id)  # the job is over: nothing needs its key any more
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


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    return "n/a"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 90:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
