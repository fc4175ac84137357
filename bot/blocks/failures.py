"""Why a job failed, in plain words, and the likely fix: one table for the local engine's
error codes and the patterns of Nebius's messages (Nebius documents no codes of its own).

The card and the summary of a failed job show `explain(job)`. A row matches by the error's
`code`, or else by a pattern in its message; the first match wins, so the specific rows come
before the general ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from client import Job

# "line 12" in a dataset error: said apart, so the user finds it at once.
_LINE = re.compile(r"\bline\s+(\d+)\b", re.IGNORECASE)
# A file named in the message ("train.jsonl: line 2: ..."), to say which file that line is in.
_FILE = re.compile(r"([\w.-]+\.jsonl)\b", re.IGNORECASE)

SMALLER_RUN = "Retry with a smaller `batch_size` or `context_length`, or with `lora=true`."


@dataclass(frozen=True)
class Failure:
    """One row of the table: what went wrong and what to do about it."""

    key: str  # the engine's code, or a name for a pattern's row
    what: str
    fix: str
    codes: tuple[str, ...] = ()
    pattern: str | None = None  # matched against the error's message, case-insensitively


# The troubleshooting table. README's rows say the same; keep them together.
FAILURES: tuple[Failure, ...] = (
    Failure(
        key="out_of_memory",
        codes=("out_of_memory", "oom", "cuda_out_of_memory"),
        pattern=r"out of memory|\bOOM\b|can't allocate memory|CUDA error: out of memory",
        what="Training ran out of memory.",
        fix=SMALLER_RUN,
    ),
    Failure(
        key="worker_killed",
        codes=("worker_killed",),
        what="The training process was killed, most often because it ran out of memory.",
        fix=SMALLER_RUN,
    ),
    Failure(
        key="file_error",
        codes=("file_error", "file_not_found"),
        pattern=r"file .*not (found|ready)|no such file",
        what="A file the job needed could not be read.",
        fix="Share the file again and retry; the bot uploads it afresh.",
    ),
    Failure(
        key="bad_dataset",
        codes=("bad_dataset", "invalid_file", "invalid_training_file", "invalid_dataset"),
        pattern=r"dataset|jsonl|invalid json|failed validation|chat template",
        what="The data could not be used for training.",
        fix="Fix that line (`validate-jsonl FILE` lists every problem), share the file again "
        "and start a new job with it.",
    ),
    Failure(
        key="context_too_long",
        codes=("context_length_exceeded",),
        pattern=r"context length|maximum context|too many tokens|sequence length",
        what="An example is longer than the context length the job was given.",
        fix="Raise `context_length`, or shorten the longest examples.",
    ),
    Failure(
        key="model_not_found",
        codes=("model_not_found",),
        pattern=r"model .*not (found|available|supported)|unknown model",
        what="The model is not available to fine-tune here.",
        fix="Pick a model from `/finetune models` (Edit and retry opens the form).",
    ),
    Failure(
        key="engine_restarted",
        codes=("engine_restarted",),
        what="The local engine stopped while the job ran, before its first checkpoint.",
        fix="Retry: the job starts again from the beginning.",
    ),
    Failure(
        key="worker_crashed",
        codes=("worker_crashed",),
        what="The training process stopped without finishing.",
        fix="Retry. If it stops again, the engine's `jobs/<job id>/worker.log` has the whole log.",
    ),
    Failure(
        key="bad_spec",
        codes=("bad_spec", "invalid_hyperparameters"),
        pattern=r"hyperparameter",
        what="A setting of the job was refused.",
        fix="Edit and retry with the setting the message names.",
    ),
    Failure(
        key="billing",
        codes=("insufficient_quota", "billing", "payment_required"),
        pattern=r"quota|insufficient (funds|balance|credits)|billing|payment",
        what="The account has no quota or credit left for this job.",
        fix="Top up or raise the limit in the Nebius console, then retry.",
    ),
    Failure(
        key="timeout",
        codes=("timeout",),
        pattern=r"timed? ?out|deadline exceeded",
        what="The job ran out of time on the server.",
        fix="Retry with fewer `n_epochs` or a smaller dataset.",
    ),
    Failure(
        key="internal_error",
        codes=("internal_error", "server_error"),
        pattern=r"internal (server )?error",
        what="The fine-tuning server failed with an error of its own.",
        fix="Retry. If it fails the same way again, tell Nebius support the job id.",
    ),
)
UNKNOWN = Failure(
    key="unknown",
    what="The server gave a reason this bot does not know.",
    fix="Read the message above; Retry runs the same job again.",
)
NO_REASON = Failure(
    key="no_reason",
    what="The server gave no reason.",
    fix="Retry runs the same job again; `/finetune events JOB` shows what it reported.",
)


@dataclass(frozen=True)
class Explanation:
    failure: Failure
    message: str | None  # the server's own words
    line: int | None = None  # the dataset line, when the message names one
    file: str | None = None

    @property
    def what(self) -> str:
        if self.line is None:
            return self.failure.what
        where = f"line {self.line}" + (f" of `{self.file}`" if self.file else "")
        return f"{self.failure.what} The problem is at {where}."


def explain_error(code: str | None, message: str | None) -> Explanation:
    """The row for an error {code, message}: by code, else by the message's words."""
    code_key = (code or "").strip().lower()
    text = message or ""
    found = next((f for f in FAILURES if code_key and code_key in f.codes), None)
    if found is None and text:
        found = next(
            (f for f in FAILURES if f.pattern and re.search(f.pattern, text, re.IGNORECASE)),
            None,
        )
    if found is None:
        found = UNKNOWN if (code_key or text) else NO_REASON
    line = file = None
    if found.key == "bad_dataset":
        if match := _LINE.search(text):
            line = int(match.group(1))
        if match := _FILE.search(text):
            file = match.group(1)
    return Explanation(found, message or code or None, line, file)


def explain(job: Job) -> Explanation | None:
    """Why a failed job failed; None for a job that did not fail."""
    if job.status != "failed":
        return None
    error = job.error
    return explain_error(error.code if error else None, error.message if error else None)


def failure_text(job: Job) -> str | None:
    """Two lines for a card or a summary: the reason in plain words, then the fix."""
    explanation = explain(job)
    if explanation is None:
        return None
    return f"*Why:* {explanation.what}\n*Fix:* {explanation.failure.fix}"
