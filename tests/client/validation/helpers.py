"""Builders for dataset files used by the validation tests."""

import json
from pathlib import Path
from typing import Any


def chat(user: str = "a cat", answer: str = "a fluffy cat", **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Enhance image prompts."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ],
        **extra,
    }


def write_lines(path: Path, lines: list[Any], newline: str = "\n") -> Path:
    """Writes each item as a line: dicts and lists as JSON, str and bytes as they are."""
    out = bytearray()
    for item in lines:
        if isinstance(item, bytes):
            out += item
        elif isinstance(item, str):
            out += item.encode("utf-8")
        else:
            out += json.dumps(item, ensure_ascii=False).encode("utf-8")
        out += newline.encode()
    path.write_bytes(bytes(out))
    return path


def many(count: int) -> list[dict[str, Any]]:
    return [chat(f"prompt number {i}", f"enhanced prompt number {i}") for i in range(count)]
