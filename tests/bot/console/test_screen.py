"""Background output while someone types: the half-typed line survives."""

from __future__ import annotations

import io

import pytest

from bot.console import screen as screen_module
from bot.console.screen import CLEAR_LINE, Screen, TerminalScreen


class FakeReadline:
    def __init__(self, typed: str) -> None:
        self.typed = typed

    def get_line_buffer(self) -> str:
        return self.typed


def test_output_while_typing_clears_the_line_then_redraws_prompt_and_typed_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(screen_module, "readline", FakeReadline("/finetune sta"))
    out = io.StringIO()
    terminal = TerminalScreen(out)
    terminal.input_started("xgenlens> ")
    terminal.show(["  ↳ #7 xgenlens, in the thread of #5:", "      Step 2/3: loss 4.01"])
    assert out.getvalue() == (
        CLEAR_LINE
        + "  ↳ #7 xgenlens, in the thread of #5:\n"
        + "      Step 2/3: loss 4.01\n"
        + "xgenlens> /finetune sta"
    )


def test_output_when_nobody_is_typing_is_plain_lines() -> None:
    out = io.StringIO()
    terminal = TerminalScreen(out)
    terminal.input_started("xgenlens> ")
    terminal.input_finished()
    terminal.show(["#1 xgenlens:"])
    assert out.getvalue() == "#1 xgenlens:\n"
    plain = io.StringIO()
    Screen(plain).show(["a", "b"])
    assert plain.getvalue() == "a\nb\n"
