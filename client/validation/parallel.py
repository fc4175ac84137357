"""Validating a large file with several processes, one part of the file each.

The file is cut at line boundaries; a first round counts each part's lines so that
every process numbers its lines as a single pass would, then each part is checked
and the parent merges the results in file order (duplicates across parts included).
Processes are forked, so they share the parent's hash seed (duplicate hashes agree)
and, without copying them, the training file's hashes when a validation file is checked.
"""

import itertools
import multiprocessing
import os
from typing import BinaryIO

from client.validation.checker import FileCheck, PartResult

# Below this, starting processes costs more than it saves.
MIN_BYTES = 16 * 1024 * 1024
COUNT_BLOCK = 4 * 1024 * 1024

# In a worker process only: the parent's checker, handed over by the pool's initializer
# (through the fork, not pickled: it may hold the training file's hashes).
_template: FileCheck | None = None


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


def _start_worker(template: FileCheck) -> None:
    global _template
    _template = template


def _count_lines(start: int, end: int) -> int:
    assert _template is not None
    count = 0
    with open(_template.path, "rb") as stream:
        view = _Range(stream, start, end)
        while block := view.read(COUNT_BLOCK):
            count += block.count(b"\n")
    return count


def _check_part(start: int, end: int, first_line: int) -> PartResult:
    assert _template is not None
    part = _template.part(first_line)
    with open(part.path, "rb") as stream:
        part.scan(_Range(stream, start, end), first_line=first_line)
    return part.result()


def scan(checker: FileCheck, workers: int, size: int) -> bool:
    """Checks the file in parallel into `checker`; False when it must be done in one pass."""
    ranges = cut_points(checker.path, size, workers)
    if len(ranges) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return False
    # Later parts need the file's format, which its first recognisable line decides.
    with open(checker.path, "rb") as stream:
        if not checker.learn_format(_Range(stream, *ranges[0])):
            return False
    context = multiprocessing.get_context("fork")
    with context.Pool(len(ranges), initializer=_start_worker, initargs=(checker,)) as pool:
        counts = pool.starmap(_count_lines, ranges[:-1])
        firsts = [1]
        for count in counts:
            firsts.append(firsts[-1] + count)
        parts = pool.starmap(
            _check_part, [(s, e, f) for (s, e), f in zip(ranges, firsts, strict=True)]
        )
    for part in parts:
        checker.merge(part)
    return True
