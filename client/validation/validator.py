"""`validate_file`: one streaming pass over a JSONL dataset.

Each line first tries the fast path (`fast.py`: msgspec types checked in C); a line
it rejects goes through the careful checks (`examples.py`), which decide and explain.
"""

import json
import os
import threading
from collections.abc import Callable
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import Any, BinaryIO, Literal

from client.validation import parallel
from client.validation.examples import check_example, detect_format
from client.validation.fast import DECODERS, REJECTED
from client.validation.findings import FindingLog
from client.validation.lines import BOM, Line, LineTooLong, iter_line_blocks
from client.validation.report import ValidationReport
from client.validation.stats import (
    DUPLICATE_TRACKING_LIMIT,
    TEMPLATE_TOKENS_PER_MESSAGE,
    StatsAccumulator,
)

# Nebius does not state a dataset size limit in its public docs that we could find;
# 5 GiB is a conservative default, configurable per call and with `--max-bytes`.
DEFAULT_MAX_BYTES = 5 * 1024**3
DEFAULT_MAX_LINE_BYTES = 32 * 1024**2
DEFAULT_CONTEXT_LENGTH = 8192
RECOMMENDED_MIN_EXAMPLES = 50
# Warnings about a file's use for training; the file's role is all that differs otherwise.
TRAINING_ONLY_WARNINGS = frozenset({"few_examples", "no_validation_file"})

_role = attrgetter("role")
_content = attrgetter("content")
_is_assistant = "assistant".__eq__
_PROMPT_COMPLETION = ["prompt", "completion"]
_TEXT = ["text"]


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
    training = _FileCheck(path, role, max_bytes, context_length, max_line_bytes, workers)
    report = training.run(expect_validation=validation_file is not None)
    if validation_file is not None:
        checker = _FileCheck(
            validation_file, "validation", max_bytes, context_length, max_line_bytes, workers
        )
        checker.training_lines = training.stats.first_line_of
        report.validation = checker.run(expect_validation=True)
        report.stats.validation_overlap = report.validation.stats.validation_overlap
    return report


def _worker_count(requested: int | None, size: int) -> int:
    if requested is not None:
        return max(1, requested)
    if size < parallel.MIN_BYTES or threading.active_count() > 1:
        return 1
    return len(os.sched_getaffinity(0))


class _FileCheck:
    def __init__(
        self,
        path: str | os.PathLike[str],
        role: Literal["training", "validation"],
        max_bytes: int,
        context_length: int,
        max_line_bytes: int,
        workers: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.workers = workers
        self.role = role
        self.max_bytes = max_bytes
        self.max_line_bytes = max_line_bytes
        self.errors = FindingLog()
        self.warnings = FindingLog()
        self.stats = StatsAccumulator(context_length)
        self.format: str | None = None
        self.format_line = 0
        self.decode: Callable[[bytes], Any] | None = None
        # For a validation file: the training file's examples, to measure overlap.
        self.training_lines: dict[int, int] | None = None
        self.overlap = 0

    def run(self, *, expect_validation: bool) -> ValidationReport:
        try:
            size = self.path.stat().st_size
            stream = self.path.open("rb")
        except OSError as error:
            reason = error.strerror or str(error)
            raise DatasetUnreadable(f"cannot read {self.path}: {reason}") from None
        if size > self.max_bytes:
            self.errors.add(
                "file_too_large",
                f"the file is {size:,} bytes; the limit is {self.max_bytes:,} bytes",
            )
        workers = _worker_count(self.workers, size)
        with stream:
            try:
                if workers < 2 or not parallel.scan(self, workers, size):
                    self.scan(stream)
            except OSError as error:
                raise DatasetUnreadable(f"cannot read {self.path}: {error}") from None
        self._file_level_findings(expect_validation)
        stats = self.stats.result()
        if self.training_lines is not None:
            stats.validation_overlap = self.overlap
        return ValidationReport(
            file=str(self.path),
            filename=self.path.name,
            role=self.role,
            size_bytes=size,
            format=self.format,
            errors=self.errors.kept,
            error_counts=self.errors.counts,
            warnings=self.warnings.kept,
            warning_counts=self.warnings.counts,
            stats=stats,
        )

    def fresh(self) -> "_FileCheck":
        """A checker with the same settings and nothing seen yet."""
        other = _FileCheck(
            self.path,
            self.role,
            self.max_bytes,
            self.stats.context_length,
            self.max_line_bytes,
            self.workers,
        )
        other.training_lines = self.training_lines
        return other

    def scan(self, stream: BinaryIO, first_line: int = 1) -> None:
        """Checks every line of the stream, numbering them from `first_line`."""
        for first, lines in iter_line_blocks(stream, self.max_line_bytes, first_line=first_line):
            if first == 1 and isinstance(lines[0], bytes) and lines[0].startswith(BOM):
                self.errors.add(
                    "bom",
                    "the file starts with a UTF-8 byte order mark (BOM); "
                    "save it as UTF-8 without BOM",
                    1,
                )
                lines[0] = lines[0][len(BOM) :]
            self.check_block(first, lines)

    def absorb(self, part: "_FileCheck") -> None:
        """Takes in what a checker of the next part of the same file found."""
        if self.format is None:
            self.format, self.format_line = part.format, part.format_line
        self.errors.merge(part.errors)
        self.warnings.merge(part.warnings)
        mine, theirs = self.stats, part.stats
        mine.examples += theirs.examples
        mine.blank_lines += theirs.blank_lines
        mine.role_counts.update(theirs.role_counts)
        mine.messages_hist.update(theirs.messages_hist)
        mine.tokens_hist.update(theirs.tokens_hist)
        mine.total_tokens += theirs.total_tokens
        mine.assistant_tokens += theirs.assistant_tokens
        mine.over_context += theirs.over_context
        mine.duplicate_count += theirs.duplicate_count
        self.overlap += part.overlap
        # Examples the chunk saw first may repeat ones from earlier chunks.
        for digest, line in theirs.first_line_of.items():
            repeated = mine.see(digest, line)
            if repeated is not None:
                self._repeated(line, repeated)

    def check_block(self, first: int, lines: list[Line]) -> None:
        """The hot loop: plainly valid lines never leave it, and cost a few C calls."""
        decode = self.decode
        fmt = self.format
        stats = self.stats
        context_length = stats.context_length
        first_line_of = stats.first_line_of
        first_line_get = first_line_of.get
        training_lines = self.training_lines
        block_roles: list[str] = []
        block_messages: list[int] = []
        block_tokens: list[int] = []
        assistant_tokens = 0
        for number, raw in enumerate(lines, first):
            if raw.__class__ is not bytes:
                self._too_long(number, raw)  # type: ignore[arg-type]
                continue
            if decode is None:
                self._careful(number, raw)  # type: ignore[arg-type]
                decode, fmt = self.decode, self.format
                continue
            try:
                example = decode(raw)
            except REJECTED:
                self._careful(number, raw)  # type: ignore[arg-type]
                continue
            if fmt == "chat":
                messages = example.messages
                roles = list(map(_role, messages))
                contents = list(map(_content, messages))
                if (
                    roles[-1] != "assistant"
                    or "user" not in roles
                    or any(map(str.isspace, contents))
                ):
                    self._careful(number, raw)  # type: ignore[arg-type]
                    continue
                chars = sum(map(len, contents))
                assistant_chars = sum(map(len, compress(contents, map(_is_assistant, roles))))
            elif fmt == "prompt_completion":
                roles = _PROMPT_COMPLETION
                if example.prompt.isspace() or example.completion.isspace():
                    self._careful(number, raw)  # type: ignore[arg-type]
                    continue
                assistant_chars = len(example.completion)
                chars = len(example.prompt) + assistant_chars
            else:
                roles = _TEXT
                if example.text.isspace():
                    self._careful(number, raw)  # type: ignore[arg-type]
                    continue
                chars = assistant_chars = len(example.text)
            count = len(roles)
            tokens = (chars + 3) // 4 + TEMPLATE_TOKENS_PER_MESSAGE * count
            block_roles += roles
            block_messages.append(count)
            block_tokens.append(tokens)
            assistant_tokens += (assistant_chars + 3) // 4
            if tokens > context_length:
                self._too_many_tokens(number, tokens)
            # CRLF files and LF files hold the same examples.
            digest = hash(raw[:-1] if raw.endswith(b"\r") else raw)  # type: ignore[union-attr]
            seen_on = first_line_get(digest)
            if seen_on is None:
                if len(first_line_of) < DUPLICATE_TRACKING_LIMIT:
                    first_line_of[digest] = number
            else:
                self._repeated(number, seen_on)
            if training_lines is not None and digest in training_lines:
                self._in_training(number, training_lines[digest])
        stats.add_batch(block_roles, block_messages, block_tokens, assistant_tokens)

    def _after_valid(self, number: int, raw: bytes, tokens: int) -> None:
        """What the hot loop does inline for each valid example, for the careful path."""
        if tokens > self.stats.context_length:
            self._too_many_tokens(number, tokens)
        digest = hash(raw[:-1] if raw.endswith(b"\r") else raw)
        seen_on = self.stats.see(digest, number)
        if seen_on is not None:
            self._repeated(number, seen_on)
        if self.training_lines is not None and digest in self.training_lines:
            self._in_training(number, self.training_lines[digest])

    def _too_many_tokens(self, number: int, tokens: int) -> None:
        self.warnings.add(
            "too_long",
            f"about {tokens:,} tokens, over the context length of "
            f"{self.stats.context_length:,}: it will be truncated or dropped",
            number,
        )

    def _repeated(self, number: int, first: int) -> None:
        self.stats.duplicate_count += 1
        self.warnings.add("duplicate", f"repeats the example on line {first}", number)

    def _in_training(self, number: int, training_line: int) -> None:
        self.overlap += 1
        self.warnings.add(
            "validation_overlap", f"also in the training file (line {training_line})", number
        )

    def _too_long(self, number: int, line: LineTooLong) -> None:
        self.errors.add(
            "line_too_long",
            f"the line is {line.size:,} bytes; the limit is {self.max_line_bytes:,}",
            number,
        )

    def _careful(self, number: int, raw: bytes) -> None:
        """Decides a line the fast path rejected, and says what is wrong with it."""
        if not raw.strip():
            self.stats.blank_lines += 1
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self.errors.add(
                "bad_utf8",
                f"byte 0x{raw[error.start]:02x} at column {error.start + 1} is not valid "
                "UTF-8; save the file as UTF-8",
                number,
            )
            return
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            self.errors.add(
                "invalid_json", f"invalid JSON: {error.msg} (column {error.colno})", number
            )
            return
        except RecursionError:
            self.errors.add("invalid_json", "invalid JSON: nested too deeply", number)
            return
        if not isinstance(obj, dict):
            kind = "an array" if isinstance(obj, list) else f"a {type(obj).__name__}"
            self.errors.add(
                "not_an_object", f"each line must be a JSON object, this one is {kind}", number
            )
            return
        fmt = detect_format(obj)
        if self.format is None:
            if fmt is None:
                self.errors.add(
                    "unknown_format",
                    "no 'messages', 'prompt'/'completion' or 'text' key: the format is not "
                    f"recognised (keys: {', '.join(sorted(obj)) or 'none'})",
                    number,
                )
                return
            self.format, self.format_line = fmt, number
            self.decode = DECODERS[fmt].decode
        elif fmt is not None and fmt != self.format:
            self.errors.add(
                "format_mismatch",
                f"this line is in the {fmt} format, but the file is in the {self.format} "
                f"format (from line {self.format_line})",
                number,
            )
            return
        measured = check_example(obj, self.format, number, self.errors)
        if measured is not None:
            tokens = self.stats.add(measured.roles, measured.chars, measured.assistant_chars)
            self._after_valid(number, raw, tokens)

    def _file_level_findings(self, expect_validation: bool) -> None:
        examples = self.stats.examples
        if examples == 0 and not self.errors:
            self.errors.add("empty_file", "the file has no examples")
        if self.role == "training" and 0 < examples < RECOMMENDED_MIN_EXAMPLES:
            self.warnings.add(
                "few_examples",
                f"only {examples} examples: at least {RECOMMENDED_MIN_EXAMPLES} are "
                "recommended, and a few hundred usually train better",
            )
        if self.role == "training" and not expect_validation and examples:
            self.warnings.add(
                "no_validation_file",
                "no validation file: add one to watch for overfitting",
            )
