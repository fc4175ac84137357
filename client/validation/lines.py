"""Reading a JSONL file as numbered lines, in blocks, with flat memory."""

from collections.abc import Iterator
from typing import BinaryIO

BLOCK_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"


class LineTooLong:
    """Stands for a line longer than the limit; its bytes were skipped, never held."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


Line = bytes | LineTooLong


def iter_line_blocks(
    stream: BinaryIO, max_line_bytes: int, block_bytes: int = BLOCK_BYTES, first_line: int = 1
) -> Iterator[tuple[int, list[Line]]]:
    """Yields (number of the first line, lines) for each block read.

    Lines come without their "\\n" (a "\\r" of CRLF stays; JSON treats it as space).
    A line that spans blocks is joined once complete, so memory stays at one block
    plus the longest line; a line over `max_line_bytes` is counted, not kept.
    """
    next_line = first_line
    pending: list[bytes] = []  # the start of a line that spans blocks
    pending_size = 0
    while block := stream.read(block_bytes):
        pieces: list[Line] = list(block.split(b"\n"))
        tail = pieces.pop()  # after the last newline: not complete yet
        if pieces:
            head = pieces[0]
            assert isinstance(head, bytes)
            if pending_size:
                size = pending_size + len(head)
                pieces[0] = (
                    LineTooLong(size) if size > max_line_bytes else b"".join([*pending, head])
                )
            if max_line_bytes < block_bytes:
                pieces = [_cap(piece, max_line_bytes) for piece in pieces]
            elif isinstance(pieces[0], bytes):
                pieces[0] = _cap(pieces[0], max_line_bytes)
            pending, pending_size = [], 0
            yield next_line, pieces
            next_line += len(pieces)
        if tail:
            pending_size += len(tail)
            # Past the limit, only the size is kept.
            if pending_size <= max_line_bytes:
                pending.append(tail)
            else:
                pending = []
    if pending_size:
        last: Line = (
            LineTooLong(pending_size) if pending_size > max_line_bytes else b"".join(pending)
        )
        yield next_line, [last]


def _cap(piece: Line, max_line_bytes: int) -> Line:
    if isinstance(piece, bytes) and len(piece) > max_line_bytes:
        return LineTooLong(len(piece))
    return piece
