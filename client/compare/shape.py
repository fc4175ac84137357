"""The shape of the reference answers, and whether an answer has it.

- Every reference is a JSON object: the shape is "a JSON object with the keys all references
  share" (for XGenLens: `enhanced_prompt`, `negative_prompt`, `explanation`); extra keys are
  allowed, since the references may carry optional ones.
- Every reference is JSON, not all objects: the shape is "valid JSON".
- Otherwise (prose references, or some not JSON): the shape is not scored, and the table says
  so rather than showing a meaningless 0 %.

An answer is read strictly: the whole answer, surrounding whitespace aside, must parse. A JSON
answer wrapped in a Markdown code fence (```json ... ```) does not have the shape (a program
reading the model's answer as JSON fails on it), but it is counted apart as `fenced`, so that
a table can tell "close, wrapped in a fence" from "not JSON at all".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

ShapeKind = Literal["object", "json", "none"]

_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)\n?```\Z", re.S)


@dataclass(frozen=True)
class Shape:
    kind: ShapeKind
    keys: tuple[str, ...] = ()  # for "object": the keys every reference has, sorted

    @property
    def scored(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        if self.kind == "object":
            if not self.keys:
                return "a JSON object"
            return "JSON object with " + ", ".join(self.keys)
        if self.kind == "json":
            return "valid JSON"
        return "not scored (the references are not all JSON)"

    def matches(self, answer: str) -> bool:
        """Whether the answer, as it is, has the shape (False when the shape is not scored)."""
        return self._matches_value(_parse(answer))

    def matches_fenced(self, answer: str) -> bool:
        """Whether the answer has the shape once a surrounding ``` code fence is removed, and
        only then (an answer that has the shape as it is is not "fenced")."""
        found = _FENCE.match(answer.strip())
        return bool(found) and self._matches_value(_parse(found.group("body")))

    def _matches_value(self, value: Any) -> bool:
        if value is _INVALID or self.kind == "none":
            return False
        if self.kind == "object":
            return isinstance(value, dict) and all(key in value for key in self.keys)
        return True


_INVALID = object()


def _parse(text: str) -> Any:
    try:
        return json.loads(text.strip())
    except ValueError:
        return _INVALID


def reference_shape(references: Sequence[str]) -> Shape:
    """The shape the references share (see the module's docstring)."""
    values = [_parse(text) for text in references]
    if not values or any(value is _INVALID for value in values):
        return Shape("none")
    if all(isinstance(value, dict) for value in values):
        shared = set(values[0])
        for value in values[1:]:
            shared &= set(value)
        return Shape("object", tuple(sorted(shared)))
    return Shape("json")
