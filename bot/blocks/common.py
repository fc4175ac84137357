"""Small Block Kit builders. Slack caps a section's text at 3,000 characters."""

from typing import Any

from bot.chat_interface import Message

SECTION_LIMIT = 3000


def clip(text: str, limit: int = SECTION_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 20].rstrip() + "\n… (shortened)"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def code_block(text: str) -> dict[str, Any]:
    # The fences count against the limit too.
    return section("```" + clip(text, SECTION_LIMIT - 6) + "```")


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text)}]}


def button(
    text: str,
    action_id: str,
    value: str,
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "elements": list(elements)}


def text_message(text: str) -> Message:
    """A message that is one section of text (and the same text for notifications)."""
    return Message(text=text, blocks=[section(text)])


def hinted_message(text: str, hint: str | None, metadata: dict[str, Any] | None = None) -> Message:
    """What happened, and under it what to do about it (`hint`, when there is one)."""
    blocks = [section(text)]
    if hint:
        blocks.append(context(f":bulb: {hint}"))
    return Message(text=text + (f"\n{hint}" if hint else ""), blocks=blocks, metadata=metadata)
