"""Byte sizes for people to read, as the bot and the command lines print them.

Two scales, each as its readers have always seen it: the bot counts in 1024s, as Slack
states its file limits (its 1 GB is 1024**3 bytes), and writes "bytes"; the command
lines count transfers in 1000s and write "B".
"""

_UNITS = ("KB", "MB", "GB")


def _scaled(value: float, base: int) -> tuple[float, str | None]:
    """`value` bytes in the largest unit it reaches, up to GB; None: under one KB."""
    unit = None
    for larger in _UNITS:
        if abs(value) < base:
            break
        value /= base
        unit = larger
    return value, unit


def human_size(size: int) -> str:
    """'512 bytes', '1.5 KB', '2.0 GB' in 1024s: the bot's messages."""
    value, unit = _scaled(float(size), 1024)
    return f"{int(value)} bytes" if unit is None else f"{value:.1f} {unit}"


def human_bytes(n: int | float | None) -> str:
    """'12 B', '1.5 KB', '2.5 MB' in 1000s, '?' when unknown: the command lines' output."""
    if n is None:
        return "?"
    value, unit = _scaled(float(n), 1000)
    return f"{value:.0f} B" if unit is None else f"{value:.1f} {unit}"
