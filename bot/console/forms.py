"""A Slack modal as a short sequence of prompts, answered with Slack's own `state.values`.

Each input block becomes one question showing its default; an empty answer keeps the
default. Selects list their options by number. The answers come back shaped exactly as a
`view_submission` carries them, so the core reads console and Slack forms the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.console.render import text_object

# Asks one question and returns the answer; None when the input has ended.
Ask = Callable[[str], Awaitable[str | None]]
Say = Callable[[list[str]], None]

SELECTS = {"static_select", "radio_buttons"}


class FormCancelled(Exception):
    """The person typed `cancel` (or the input ended) while filling the form."""


def _option_text(option: dict[str, Any]) -> str:
    return text_object(option.get("text"))


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def form_title(view: dict[str, Any]) -> str:
    return text_object(view.get("title")) or "Form"


async def fill_form(
    view: dict[str, Any], ask: Ask, say: Say, *, only: set[str] | None = None
) -> dict[str, Any]:
    """Asks the input blocks of `view` (those in `only`, when given: the ones to fix again);
    returns `state.values` as Slack would send it."""
    again = " again" if only else ""
    say([f"── {form_title(view)}{again} ── (Enter keeps the [default]; `cancel` stops)"])
    values: dict[str, dict[str, Any]] = {}
    for index, block in enumerate(view.get("blocks") or []):
        if block.get("type") != "input":
            if only is None:
                say(_notes(block))
            continue
        element = block.get("element") or {}
        block_id = str(block.get("block_id") or f"block{index}")
        if only is not None and block_id not in only:
            continue
        action_id = str(element.get("action_id") or f"action{index}")
        label = text_object(block.get("label"))
        optional = bool(block.get("optional"))
        hint = text_object(block.get("hint"))
        state = await _ask_element(element, label, optional, hint, ask, say)
        values.setdefault(block_id, {})[action_id] = state
    return values


def _notes(block: dict[str, Any]) -> list[str]:
    """What a form's other blocks say: headers, sections and context notes."""
    kind = block.get("type")
    if kind == "header":
        return [text_object(block.get("text")) + ":"]
    if kind == "section":
        return [text_object(block.get("text"))]
    if kind == "context":
        return [text_object(e) for e in block.get("elements") or [] if text_object(e)]
    return []


async def _answer(ask: Ask, prompt: str) -> str:
    answer = await ask(prompt)
    if answer is None or answer.strip().lower() == "cancel":
        raise FormCancelled
    return answer.strip()


async def _ask_element(
    element: dict[str, Any], label: str, optional: bool, hint: str, ask: Ask, say: Say
) -> dict[str, Any]:
    kind = str(element.get("type", "plain_text_input"))
    default = str(element.get("initial_value") or "")
    # "(optional)" only where leaving it empty means something: a default says enough.
    suffix = " (optional)" if optional and not default else ""
    about = f" ({hint})" if hint else ""
    if kind in SELECTS or kind == "checkboxes":
        return await _ask_choice(element, kind, label + suffix + about, optional, ask, say)
    while True:
        shown = f" [{default}]" if default else ""
        answer = await _answer(ask, f"  {label}{suffix}{about}{shown}: ") or default
        if answer or optional:
            return {"type": kind, "value": answer or None}
        say([f"  {label} is required."])


async def _ask_choice(
    element: dict[str, Any], kind: str, label: str, optional: bool, ask: Ask, say: Say
) -> dict[str, Any]:
    options = _options(element)
    many = kind == "checkboxes"
    if many:
        initial = [o.get("value") for o in element.get("initial_options") or []]
    else:
        initial = [(element.get("initial_option") or {}).get("value")]
    defaults = [i + 1 for i, o in enumerate(options) if o.get("value") in initial]
    say([f"  {label}:"] + [f"      {i}. {_option_text(o)}" for i, o in enumerate(options, 1)])
    default_text = ",".join(str(d) for d in defaults)
    what = "numbers, comma-separated" if many else "a number"
    while True:
        shown = f" [{default_text}]" if default_text else ""
        answer = await _answer(ask, f"    choose {what}{shown}: ") or default_text
        if not answer:
            if optional or many:
                return _choice_state(kind, [])
            say(["  Choose one of the numbers above."])
            continue
        picked = _pick(answer, options)
        if picked is None or (not many and len(picked) != 1):
            say([f"  `{answer}` is not {what} from 1 to {len(options)}."])
            continue
        return _choice_state(kind, picked)


def _pick(answer: str, options: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    picked = []
    for part in answer.replace(" ", "").split(","):
        if not part:
            continue
        by_value = [o for o in options if o.get("value") == part or _option_text(o) == part]
        if part.isdigit() and 1 <= int(part) <= len(options):
            picked.append(options[int(part) - 1])
        elif by_value:
            picked.append(by_value[0])
        else:
            return None
    return picked


def _choice_state(kind: str, picked: list[dict[str, Any]]) -> dict[str, Any]:
    if kind == "checkboxes":
        return {"type": kind, "selected_options": picked}
    return {"type": kind, "selected_option": picked[0] if picked else None}
