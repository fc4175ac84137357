"""Block Kit to terminal text: what a person reads in console mode.

Only the block types the bot builds need to read well (sections with fields, context,
actions, code, headers, dividers, form inputs); anything else falls back to the message's
plain `text`, never to raw JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# The emoji the bot uses, as characters a terminal shows; others keep their :name:.
EMOJI = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔",
    "x": "❌",
    "warning": "⚠️",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "mag": "🔍",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "gear": "⚙️",
    "grey_question": "❔",
    "bulb": "💡",
    "construction": "🚧",
    "inbox_tray": "📥",
    "outbox_tray": "📤",
    "package": "📦",
    "tada": "🎉",
    "chart_with_upwards_trend": "📈",
    "floppy_disk": "💾",
    "bell": "🔔",
    "arrows_counterclockwise": "🔄",
    "rocket": "🚀",
    "speech_balloon": "💬",
    "link": "🔗",
    "stopwatch": "⏱️",
    "checkered_flag": "🏁",
    "wave": "👋",
    "memo": "📝",
    "robot_face": "🤖",
    "large_green_circle": "🟢",
    "red_circle": "🔴",
}

_EMOJI_RE = re.compile(r":([a-z0-9_+\-]+):")
_LINK_RE = re.compile(r"<([^<>|]+)(?:\|([^<>]+))?>")
_BOLD_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC_RE = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE_RE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")
_INLINE_CODE_RE = re.compile(r"`([^`\n]+)`")
_FENCE_RE = re.compile(r"```\n?(.*?)\n?```", re.S)

CODE_INDENT = "    "

# Numbers a button and returns its number (the console keeps what each number does).
ButtonNumberer = Callable[[dict[str, Any]], int]


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _link(match: re.Match[str], users: Callable[[str], str]) -> str:
    target, label = match.group(1), match.group(2)
    if target.startswith("@"):
        return users(target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        return "@" + (label or target[1:].split("^")[0])
    return f"{label} ({target})" if label and label != target else target


def _inline(text: str, users: Callable[[str], str]) -> str:
    """mrkdwn outside code: links, mentions, emphasis and emoji become plain text."""
    text = _LINK_RE.sub(lambda m: _link(m, users), text)
    text = _BOLD_RE.sub(r"\1", text)
    text = _ITALIC_RE.sub(r"\1", text)
    text = _STRIKE_RE.sub(r"\1", text)
    text = _EMOJI_RE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    return _unescape(text)


def mrkdwn_to_text(text: str, users: Callable[[str], str] | None = None) -> str:
    """Slack mrkdwn as plain terminal text; code blocks are indented, inline code kept as is."""
    who = users or (lambda user_id: "@" + user_id)
    lines: list[str] = []
    position = 0
    for fence in _FENCE_RE.finditer(text):
        prose = text[position : fence.start()]
        # The newline that separates prose from a fence is the line break itself.
        if prose.endswith("\n"):
            prose = prose[:-1]
        if prose:
            lines.extend(_prose(prose, who).split("\n"))
        code = _unescape(fence.group(1))
        lines.extend(CODE_INDENT + line for line in code.split("\n"))
        position = fence.end()
        if text.startswith("\n", position):
            position += 1
    if position < len(text) or position == 0:
        lines.extend(_prose(text[position:], who).split("\n"))
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _prose(text: str, users: Callable[[str], str]) -> str:
    # Inline code keeps its content verbatim: it is set aside while emphasis (which may wrap
    # it, as in *Job `x`*) and emoji are turned to plain text, then put back.
    codes: list[str] = []

    def keep(match: re.Match[str]) -> str:
        codes.append(_unescape(match.group(1)))
        return f"\x00{len(codes) - 1}\x00"

    plain = _inline(_INLINE_CODE_RE.sub(keep, text), users)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], plain)


def text_object(obj: dict[str, Any] | None, users: Callable[[str], str] | None = None) -> str:
    if not obj:
        return ""
    raw = str(obj.get("text", ""))
    if obj.get("type") == "plain_text":
        return _EMOJI_RE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), raw)
    return mrkdwn_to_text(raw, users)


def _element(element: dict[str, Any], number: ButtonNumberer, users: Callable[[str], str]) -> str:
    kind = element.get("type")
    if kind == "button":
        return f"[{number(element)}] {text_object(element.get('text'), users)}"
    if kind == "image":
        return f"({element.get('alt_text', 'image')})"
    if kind in ("mrkdwn", "plain_text"):
        return text_object(element, users)
    placeholder = text_object(element.get("placeholder"), users)
    return f"<{placeholder or kind}>"


def render_blocks(
    blocks: list[dict[str, Any]],
    number: ButtonNumberer,
    users: Callable[[str], str] | None = None,
) -> list[str]:
    """The lines of a message; buttons are numbered through `number`."""
    who = users or (lambda user_id: "@" + user_id)
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            if block.get("text"):
                lines.extend(text_object(block["text"], who).split("\n"))
            for field in block.get("fields") or []:
                lines.extend("  " + line for line in text_object(field, who).split("\n"))
            accessory = block.get("accessory")
            if accessory:
                lines.append("  " + _element(accessory, number, who))
        elif kind == "header":
            title = text_object(block.get("text"), who)
            lines.extend([title, "=" * min(len(title), 60)])
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "context":
            parts = [_element(e, number, who) for e in block.get("elements") or []]
            lines.extend("  " + line for line in "  ".join(parts).split("\n"))
        elif kind == "actions":
            lines.append("  ".join(_element(e, number, who) for e in block.get("elements") or []))
        elif kind == "input":
            label = text_object(block.get("label"), who)
            lines.append(f"{label}: {_element(block.get('element') or {}, number, who)}")
        elif kind == "image":
            lines.append(f"({block.get('alt_text', 'image')})")
        elif kind == "rich_text":
            lines.extend(_rich_text(block).split("\n"))
    return lines


def _rich_text(block: dict[str, Any]) -> str:
    """Rich text (what people type in Slack) reduced to its words."""
    out: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") in ("text", "link"):
            out.append(str(node.get("text") or node.get("url") or ""))
        elif node.get("type") == "emoji":
            out.append(EMOJI.get(str(node.get("name")), f":{node.get('name')}:"))
        for child in node.get("elements") or []:
            walk(child)

    walk(block)
    return "".join(out)


def render_message(
    text: str,
    blocks: list[dict[str, Any]],
    number: ButtonNumberer,
    users: Callable[[str], str] | None = None,
) -> list[str]:
    """A message's lines: its blocks when they say something, else its plain text."""
    lines = render_blocks(blocks, number, users) if blocks else []
    if not any(line.strip() for line in lines):
        lines = mrkdwn_to_text(text, users).split("\n")
    return lines
