"""`validate_file`: checks a JSONL dataset in one streaming pass, or in parts at once.

What the lines show is `checker.FileCheck`'s; this module opens the files, chooses
between one pass and several processes (`parallel.py`), and pairs a training file with
its validation file.
"""

import os
import threading
from typing import Literal

from client.validation import parallel
from client.validation.checker import TRAINING_ONLY_WARNINGS, FileCheck
from client.validation.report import ValidationReport

# Nebius does not state a dataset size limit in its public docs that we could find;
# 5 GiB is a conservative default, configurable per call and with `--max-bytes`.
DEFAULT_MAX_BYTES = 5 * 1024**3
DEFAULT_MAX_LINE_BYTES = 32 * 1024**2
DEFAULT_CONTEXT_LENGTH = 8192


def as_validation_file(report: ValidationReport) -> ValidationReport:
    """A training file's report as if the file had been checked as a validation file.

    The role only adds the training-only warnings, so this needs no second pass over the
    file (which may be gigabytes away, in Slack).
    """
    return report.model_copy(
        update={
            "role": "validation",
            "warnings": [w for w in report.warnings if w.code not in TRAINING_ONLY_WARNINGS],
            "warning_counts": {
                code: n
                for code, n in report.warning_counts.items()
                if code not in TRAINING_ONLY_WARNINGS
            },
        }
    )


class DatasetUnreadable(Exception):
    """The file cannot be read at all (missing, a folder, no permission)."""


def validate_file(
    path: str | os.PathLike[str],
    *,
    validation_file: str | os.PathLike[str] | None = None,
    role: Literal["training", "validation"] = "training",
    max_bytes: int = DEFAULT_MAX_BYTES,
    context_length: int = DEFAULT_CONTEXT_LENGTH,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    workers: int | None = None,
) -> ValidationReport:
    """Validates a dataset file and gathers its statistics.

    Never raises for bad data: every problem is a finding in the report. Raises
    `DatasetUnreadable` only when a file cannot be opened.

    `workers`: processes for a large file (None: one per core when the file is large
    and this process has a single thread, since forking a threaded process is unsafe).
    """
    training = FileCheck(
        path,
        role,
        max_bytes=max_bytes,
        context_length=context_length,
        max_line_bytes=max_line_bytes,
    )
    report = _run(training, workers, expect_validation=validation_file is not None)
    if validation_file is not None:
        checker = FileCheck(
            validation_file,
            "validation",
            max_bytes=max_bytes,
            context_length=context_length,
            max_line_bytes=max_line_bytes,
            training_lines=training.example_lines,
        )
        report.validation = _run(checker, workers, expect_validation=True)
        report.stats.validation_overlap = report.validation.stats.validation_overlap
    return report


def _worker_count(requested: int | None, size: int) -> int:
    """How many processes check a file of `size` bytes; 1 is a single pass."""
    if requested is not None:
        return max(1, requested)
    if size < parallel.MIN_BYTES or threading.active_count() > 1:
        return 1
    return len(os.sched_getaffinity(0))


def _run(checker: FileCheck, workers: int | None, *, expect_validation: bool) -> ValidationReport:
    path = checker.path
    try:
        size = path.stat().st_size
        stream = path.open("rb")
    except OSError as error:
        reason = error.strerror or str(error)
        raise DatasetUnreadable(f"cannot read {path}: {reason}") from None
    checker.check_size(size)
    count = _worker_count(workers, size)
    with stream:
        try:
            # `parallel.scan` declines (False) a file it cannot cut or whose format its
            # first part does not decide: one pass then, as for a small file.
            if count < 2 or not parallel.scan(checker, count, size):
                checker.scan(stream)
        except OSError as error:
            raise DatasetUnreadable(f"cannot read {path}: {error}") from None
    return checker.report(size, expect_validation=expect_validation)
