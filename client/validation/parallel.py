"""Validating a large file with several processes, one part of the file each.

The file is cut at line boundaries; a first round counts each part's lines so that
every process numbers its lines as a single pass would, then each part is checked
and the parent merges the results in file order (duplicates across parts included).
Processes are forked, so they share the parent's hash seed (duplicate hashes agree)
and the training file's hashes when a validation file is checked.
"""

import itertools
import multiprocessing
import os
from typing import TYPE_CHECKING, BinaryIO

from client.validation.lines import iter_line_blocks

if TYPE_CHECKING:
    from client.validation.validator import _FileCheck

# Below this, starting processes costs more than it saves.
MIN_BYTES = 16 * 1024 * 1024
COUNT_BLOCK = 4 * 1024 * 1024

_parent: "_FileCheck | None" = None  # inherited by the forked processes


class _Range:
    """A read-only view of bytes [start, end) of a file."""

    def __init__(self, stream: BinaryIO, start: int, end: int) -> None:
        stream.seek(start)
        self.stream = stream
        self.left = end - start

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        return data


def cut_points(path: str | os.PathLike[str], size: int, parts: int) -> list[tuple[int, int]]:
    """Byte ranges of about equal size, each starting at the beginning of a line."""
    cuts = [0]
    with open(path, "rb") as stream:
        for index in range(1, parts):
            stream.seek(size * index // parts)
            stream.readline()
            position = stream.tell()
            if cuts[-1] < position < size:
                cuts.append(position)
    cuts.append(size)
    return list(itertools.pairwise(cuts))


def _count_lines(start: int, end: int) -> int:
    assert _parent is not None
    count = 0
    with open(_parent.path, "rb") as stream:
        view = _Range(stream, start, end)
        while block := view.read(COUNT_BLOCK):
            count += block.count(b"\n")
    return count


def _check_part(start: int, end: int, first_line: int) -> "_FileCheck":
    assert _parent is not None
    part = _parent.fresh()
    if first_line > 1:
        # Later parts need the file's format, which the first lines decided.
        part.format, part.format_line, part.decode = (
            _parent.format,
            _parent.format_line,
            _parent.decode,
        )
    with open(_parent.path, "rb") as stream:
        part.scan(_Range(stream, start, end), first_line=first_line)
    # Only what the parent merges travels back.
    part.decode = None
    part.training_lines = None
    return part


def scan(checker: "_FileCheck", workers: int, size: int) -> bool:
    """Checks the file in parallel into `checker`; False when it must be done in one pass."""
    global _parent
    ranges = cut_points(checker.path, size, workers)
    if len(ranges) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return False
    # The format comes from the first recognisable line; find it as one pass would.
    probe = checker.fresh()
    with open(checker.path, "rb") as stream:
        blocks = iter_line_blocks(_Range(stream, *ranges[0]), checker.max_line_bytes)
        for first, lines in blocks:
            probe.check_block(first, lines)
            if probe.format is not None:
                break
    if probe.format is None:
        return False
    checker.format, checker.format_line, checker.decode = (
        probe.format,
        probe.format_line,
        probe.decode,
    )
    _parent = checker
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(len(ranges)) as pool:
            counts = pool.starmap(_count_lines, ranges[:-1])
            firsts = [1]
            for count in counts:
                firsts.append(firsts[-1] + count)
            parts = pool.starmap(
                _check_part, [(s, e, f) for (s, e), f in zip(ranges, firsts, strict=True)]
            )
    finally:
        _parent = None
    checker.format = None  # taken again from the first part, with everything else
    for part in parts:
        checker.absorb(part)
    return True
