"""`FileCheck`: what one file's lines show (findings, statistics), in one pass or in parts.

Each line first tries the fast path (`fast.py`: msgspec types checked in C); a line
it rejects goes through the careful checks (`examples.py`), which decide and explain.

A file checked in parts (`parallel.py`) uses only the public side: `learn_format` on
the parent, `part` and `scan` for each part, `result` to send a part back, and `merge`
to take the parts in, in file order.
"""

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import Any, BinaryIO, Literal

from client.validation.examples import check_example, detect_format
from client.validation.fast import DECODERS, REJECTED
from client.validation.findings import FindingLog
from client.validation.lines import BOM, Line, LineTooLong, iter_line_blocks
from client.validation.report import ValidationReport
from client.validation.stats import (
    CHARS_PER_TOKEN,
    DUPLICATE_TRACKING_LIMIT,
    TEMPLATE_TOKENS_PER_MESSAGE,
    StatsAccumulator,
)

RECOMMENDED_MIN_EXAMPLES = 50
# Warnings about a file's use for training; the file's role is all that differs otherwise.
TRAINING_ONLY_WARNINGS = frozenset({"few_examples", "no_validation_file"})

Role = Literal["training", "validation"]

_role = attrgetter("role")
_content = attrgetter("content")
_is_assistant = "assistant".__eq__
_PROMPT_COMPLETION = ["prompt", "completion"]
_TEXT = ["text"]


@dataclass(slots=True)
class PartResult:
    """What the checker of one part of a file found: all its parent needs to merge it."""

    format: str | None
    format_line: int
    errors: FindingLog
    warnings: FindingLog
    stats: StatsAccumulator
    overlap: int


class FileCheck:
    """Checks the lines of one file and keeps what they showed.

    `training_lines`: for a validation file, the training file's examples (hash: line),
    to find the examples both files hold.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        role: Role,
        *,
        max_bytes: int,
        context_length: int,
        max_line_bytes: int,
        training_lines: Mapping[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.role = role
        self.max_bytes = max_bytes
        self.max_line_bytes = max_line_bytes
        self._training_lines = training_lines
        self._errors = FindingLog()
        self._warnings = FindingLog()
        self._stats = StatsAccumulator(context_length)
        self._format: str | None = None
        self._format_line = 0
        self._decode: Callable[[bytes], Any] | None = None
        self._overlap = 0

    @property
    def format(self) -> str | None:
        """The file's format, once a line decided it."""
        return self._format

    @property
    def example_lines(self) -> Mapping[int, int]:
        """Each example seen (its hash) and its first line, to check a validation file with."""
        return self._stats.first_line_of

    def part(self, first_line: int) -> "FileCheck":
        """A checker with the same settings for the part of the file from `first_line`.

        It has seen nothing. A part after the first takes the format this checker decided
        (`learn_format`), since the first lines of the file decide it.
        """
        other = FileCheck(
            self.path,
            self.role,
            max_bytes=self.max_bytes,
            context_length=self._stats.context_length,
            max_line_bytes=self.max_line_bytes,
            training_lines=self._training_lines,
        )
        if first_line > 1:
            other._format, other._format_line, other._decode = (
                self._format,
                self._format_line,
                self._decode,
            )
        return other

    def learn_format(self, stream: BinaryIO) -> bool:
        """Decides the format from the first lines of the file, as one pass would.

        What those lines show is not kept: the part that holds them checks them again.
        False when the stream holds no line that decides it.
        """
        probe = self.part(1)
        for first, lines in probe._blocks(stream, 1):
            probe._check_block(first, lines)
            if probe._format is not None:
                self._format, self._format_line, self._decode = (
                    probe._format,
                    probe._format_line,
                    probe._decode,
                )
                return True
        return False

    def check_size(self, size: int) -> None:
        """Records an error when the file is larger than the limit (it is checked anyway)."""
        if size > self.max_bytes:
            self._errors.add(
                "file_too_large",
                f"the file is {size:,} bytes; the limit is {self.max_bytes:,} bytes",
            )

    def scan(self, stream: BinaryIO, first_line: int = 1) -> None:
        """Checks every line of the stream, numbering them from `first_line`."""
        for first, lines in self._blocks(stream, first_line):
            self._check_block(first, lines)

    def result(self) -> PartResult:
        """What a part found, for its parent's `merge` (the decoder and the training
        file's hashes stay behind: the parent has them)."""
        return PartResult(
            format=self._format,
            format_line=self._format_line,
            errors=self._errors,
            warnings=self._warnings,
            stats=self._stats,
            overlap=self._overlap,
        )

    def merge(self, part: PartResult) -> None:
        """Takes in what the checker of the next part of the same file found."""
        if self._format is None and part.format is not None:
            self._format, self._format_line = part.format, part.format_line
            self._decode = DECODERS[part.format].decode
        self._errors.merge(part.errors)
        self._warnings.merge(part.warnings)
        self._overlap += part.overlap
        # Examples the part saw first may repeat ones from earlier parts.
        for line, first in self._stats.merge(part.stats):
            self._repeated(line, first)

    def report(self, size: int, *, expect_validation: bool) -> ValidationReport:
        """The report once every line is checked, with the findings about the whole file."""
        self._file_level_findings(expect_validation)
        stats = self._stats.result()
        if self._training_lines is not None:
            stats.validation_overlap = self._overlap
        return ValidationReport(
            file=str(self.path),
            filename=self.path.name,
            role=self.role,
            size_bytes=size,
            format=self._format,
            errors=self._errors.kept,
            error_counts=self._errors.counts,
            warnings=self._warnings.kept,
            warning_counts=self._warnings.counts,
            stats=stats,
        )

    def _blocks(self, stream: BinaryIO, first_line: int) -> Iterator[tuple[int, list[Line]]]:
        """The stream's lines in blocks, without the file's byte order mark (reported)."""
        for first, lines in iter_line_blocks(stream, self.max_line_bytes, first_line=first_line):
            if first == 1 and isinstance(lines[0], bytes) and lines[0].startswith(BOM):
                self._errors.add(
                    "bom",
                    "the file starts with a UTF-8 byte order mark (BOM); "
                    "save it as UTF-8 without BOM",
                    1,
                )
                lines[0] = lines[0][len(BOM) :]
            yield first, lines

    def _check_block(self, first: int, lines: list[Line]) -> None:
        """The hot loop: plainly valid lines never leave it, and cost a few C calls."""
        decode = self._decode
        fmt = self._format
        stats = self._stats
        context_length = stats.context_length
        # Looked up inline rather than through `stats.see`: this runs for every line.
        first_line_of = stats.first_line_of
        first_line_get = first_line_of.get
        training_lines = self._training_lines
        # The token estimate of `stats.estimate_tokens`, inlined for the same reason.
        per_token = CHARS_PER_TOKEN
        per_message = TEMPLATE_TOKENS_PER_MESSAGE
        block_roles: list[str] = []
        block_messages: list[int] = []
        block_tokens: list[int] = []
        assistant_tokens = 0
        duplicates = 0
        for number, raw in enumerate(lines, first):
            if raw.__class__ is not bytes:
                self._too_long(number, raw)  # type: ignore[arg-type]
                continue
            if decode is None:
                self._careful(number, raw)  # type: ignore[arg-type]
                decode, fmt = self._decode, self._format
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
            tokens = -(-chars // per_token) + per_message * count
            block_roles += roles
            block_messages.append(count)
            block_tokens.append(tokens)
            assistant_tokens += -(-assistant_chars // per_token)
            if tokens > context_length:
                self._too_many_tokens(number, tokens)
            # CRLF files and LF files hold the same examples.
            digest = hash(raw[:-1] if raw.endswith(b"\r") else raw)  # type: ignore[union-attr]
            seen_on = first_line_get(digest)
            if seen_on is None:
                if len(first_line_of) < DUPLICATE_TRACKING_LIMIT:
                    first_line_of[digest] = number
            else:
                duplicates += 1
                self._repeated(number, seen_on)
            if training_lines is not None and digest in training_lines:
                self._in_training(number, training_lines[digest])
        stats.add_batch(block_roles, block_messages, block_tokens, assistant_tokens, duplicates)

    def _after_valid(self, number: int, raw: bytes, tokens: int) -> None:
        """What the hot loop does inline for each valid example, for the careful path."""
        if tokens > self._stats.context_length:
            self._too_many_tokens(number, tokens)
        digest = hash(raw[:-1] if raw.endswith(b"\r") else raw)
        seen_on = self._stats.see(digest, number)
        if seen_on is not None:
            self._repeated(number, seen_on)
        if self._training_lines is not None and digest in self._training_lines:
            self._in_training(number, self._training_lines[digest])

    def _too_many_tokens(self, number: int, tokens: int) -> None:
        self._warnings.add(
            "too_long",
            f"about {tokens:,} tokens, over the context length of "
            f"{self._stats.context_length:,}: it will be truncated or dropped",
            number,
        )

    def _repeated(self, number: int, first: int) -> None:
        """Reports a duplicate (the statistics count it where it is found)."""
        self._warnings.add("duplicate", f"repeats the example on line {first}", number)

    def _in_training(self, number: int, training_line: int) -> None:
        self._overlap += 1
        self._warnings.add(
            "validation_overlap", f"also in the training file (line {training_line})", number
        )

    def _too_long(self, number: int, line: LineTooLong) -> None:
        self._errors.add(
            "line_too_long",
            f"the line is {line.size:,} bytes; the limit is {self.max_line_bytes:,}",
            number,
        )

    def _careful(self, number: int, raw: bytes) -> None:
        """Decides a line the fast path rejected, and says what is wrong with it."""
        if not raw.strip():
            self._stats.add_blank_line()
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self._errors.add(
                "bad_utf8",
                f"byte 0x{raw[error.start]:02x} at column {error.start + 1} is not valid "
                "UTF-8; save the file as UTF-8",
                number,
            )
            return
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as error:
            self._errors.add(
                "invalid_json", f"invalid JSON: {error.msg} (column {error.colno})", number
            )
            return
        except RecursionError:
            self._errors.add("invalid_json", "invalid JSON: nested too deeply", number)
            return
        if not isinstance(obj, dict):
            kind = "an array" if isinstance(obj, list) else f"a {type(obj).__name__}"
            self._errors.add(
                "not_an_object", f"each line must be a JSON object, this one is {kind}", number
            )
            return
        fmt = detect_format(obj)
        if self._format is None:
            if fmt is None:
                self._errors.add(
                    "unknown_format",
                    "no 'messages', 'prompt'/'completion' or 'text' key: the format is not "
                    f"recognised (keys: {', '.join(sorted(obj)) or 'none'})",
                    number,
                )
                return
            self._format, self._format_line = fmt, number
            self._decode = DECODERS[fmt].decode
        elif fmt is not None and fmt != self._format:
            self._errors.add(
                "format_mismatch",
                f"this line is in the {fmt} format, but the file is in the {self._format} "
                f"format (from line {self._format_line})",
                number,
            )
            return
        measured = check_example(obj, self._format, number, self._errors)
        if measured is not None:
            tokens = self._stats.add(measured.roles, measured.chars, measured.assistant_chars)
            self._after_valid(number, raw, tokens)

    def _file_level_findings(self, expect_validation: bool) -> None:
        examples = self._stats.examples
        if examples == 0 and not self._errors:
            self._errors.add("empty_file", "the file has no examples")
        if self.role == "training" and 0 < examples < RECOMMENDED_MIN_EXAMPLES:
            self._warnings.add(
                "few_examples",
                f"only {examples} examples: at least {RECOMMENDED_MIN_EXAMPLES} are "
                "recommended, and a few hundred usually train better",
            )
        if self.role == "training" and not expect_validation and examples:
            self._warnings.add(
                "no_validation_file",
                "no validation file: add one to watch for overfitting",
            )
