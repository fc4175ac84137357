"""The dataset formats, and the names people see for them (reports, the bot)."""

FORMAT_NAMES = {"chat": "chat", "prompt_completion": "prompt/completion", "text": "text"}
UNRECOGNISED = "not recognised"
# The full report also names the key that marks a chat file; the other names already
# are their keys.
_MARKED_BY = {"chat": "messages"}


def format_name(fmt: str | None, *, with_key: bool = False) -> str:
    """'chat', 'prompt/completion', 'text', or 'not recognised' (no format or an unknown one).

    `with_key`: 'chat (messages)', as the full report writes it.
    """
    name = FORMAT_NAMES.get(fmt or "")
    if name is None:
        return UNRECOGNISED
    if with_key and fmt in _MARKED_BY:
        return f"{name} ({_MARKED_BY[fmt]})"
    return name
