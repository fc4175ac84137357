"""Chat completions on the engine against plain transformers `generate`, built-in model.

The engine runs in this process (EmbeddedEngine) and answers a streamed, greedy
`POST /v1/chat/completions` over loopback HTTP; plain `generate` (greedy, the same
converted SmolLM2-135M-Instruct weights, the same chat-templated prompt, the same
max_new_tokens) runs in this process too, in the same round, so both see the same machine.
Measured per round: time to first token (the engine: from sending the request to the first
content chunk; `generate`: from the call to its streamer's first new token) and tokens per
second (completion tokens over the whole call). The first engine call loads the model and
is reported on its own; medians are over the rounds after it. Both answers are compared:
greedy decoding of the same weights must give the same text.

Then the batched row: `--batch` different prompts (5 by default) sent one after another, then
all at once (the engine decodes them together): total completion tokens per second of each,
and whether every concurrent answer is the same as its sequential one.

    .venv/bin/python -m bench.engine_chat [--rounds 5] [--max-tokens 64] [--batch 5]
"""

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench" / "out" / "engine-chat"
PROMPT = [
    {"role": "user", "content": "Write a short paragraph about the sea at night, for a child."}
]
BATCH_QUESTIONS = [
    "Write a short paragraph about the sea at night, for a child.",
    "Explain in a few sentences why the sky is blue.",
    "Give three tips for writing a clear email.",
    "Describe a cat sleeping in the sun.",
    "What is a good name for a small bakery? Explain why.",
    "Write two sentences about autumn leaves.",
    "List four fruits and their colours.",
    "How do you make a cup of tea?",
]


def _engine_round(sdk: Any, model: str, max_tokens: int) -> tuple[float, float, int, str]:
    """(seconds to first token, tokens per second, completion tokens, text), streamed."""
    start = time.perf_counter()
    first = None
    pieces: list[str] = []
    usage = None
    stream = sdk.chat.completions.create(
        model=model,
        messages=PROMPT,
        temperature=0,
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter() - start
            pieces.append(chunk.choices[0].delta.content)
    total = time.perf_counter() - start
    tokens = usage.completion_tokens if usage is not None else 0
    return first or total, tokens / total, tokens, "".join(pieces)


def _ask(sdk: Any, model: str, question: str, max_tokens: int) -> tuple[int, str]:
    answer = sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=max_tokens,
    )
    return answer.usage.completion_tokens, answer.choices[0].message.content


def _batched_row(sdk: Any, model: str, size: int, max_tokens: int) -> bool:
    """`size` prompts one by one, then all at once: tokens/s of each, and the same answers?"""
    questions = [BATCH_QUESTIONS[i % len(BATCH_QUESTIONS)] for i in range(size)]
    start = time.perf_counter()
    sequential = [_ask(sdk, model, q, max_tokens) for q in questions]
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=size) as pool:
        together = list(pool.map(lambda q: _ask(sdk, model, q, max_tokens), questions))
    at_once = time.perf_counter() - start
    tokens = sum(t for t, _ in sequential)
    same = [a[1] for a in together] == [a[1] for a in sequential]
    print(
        f"{size} requests, {tokens} tokens: one by one {one_by_one:.1f} s "
        f"({tokens / one_by_one:.1f} tok/s); at once {at_once:.1f} s "
        f"({sum(t for t, _ in together) / at_once:.1f} tok/s), "
        f"{one_by_one / at_once:.1f}x; same answers: {'yes' if same else 'NO'}",
        flush=True,
    )
    return same


def _generate_round(model: Any, tokenizer: Any, max_tokens: int) -> tuple[float, float, int, str]:
    import torch
    from transformers.generation.streamers import BaseStreamer

    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    marks: list[float] = []

    class FirstToken(BaseStreamer):
        def put(self, value: Any) -> None:  # the prompt first, then each new token
            marks.append(time.perf_counter())

        def end(self) -> None:
            pass

    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **inputs, max_new_tokens=max_tokens, do_sample=False, streamer=FirstToken()
        )
    total = time.perf_counter() - start
    new = out[0, inputs["input_ids"].shape[1] :]
    first = (marks[1] if len(marks) > 1 else time.perf_counter()) - start
    answer = tokenizer.decode(new, skip_special_tokens=True)
    return first, len(new) / total, len(new), answer


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.engine_chat")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=5, help="concurrent requests (0: none)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from openai import OpenAI
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.model_registry import BUILTIN_MODEL_ID, ensure_builtin
    from engine.server import EmbeddedEngine

    started = time.perf_counter()
    folder = ensure_builtin(DATA_DIR / "models")
    print(f"built-in model ready in {time.perf_counter() - started:.1f} s ({folder.name})")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    print(
        f"SmolLM2-135M-Instruct, float32, greedy, max {args.max_tokens} new tokens, "
        f"{torch.get_num_threads()} torch threads, {args.rounds} round(s)",
        flush=True,
    )

    rows: dict[str, list[tuple[float, float, int, str]]] = {"engine": [], "generate": []}
    with (
        EmbeddedEngine(DATA_DIR, device="cpu") as engine,
        OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0, timeout=600) as sdk,
    ):
        load_start = time.perf_counter()
        _engine_round(sdk, BUILTIN_MODEL_ID, 1)
        print(f"engine first call (loads the model): {time.perf_counter() - load_start:.2f} s")
        _generate_round(plain, tokenizer, 1)  # warms the same kernels
        for number in range(1, args.rounds + 1):
            rows["engine"].append(_engine_round(sdk, BUILTIN_MODEL_ID, args.max_tokens))
            rows["generate"].append(_generate_round(plain, tokenizer, args.max_tokens))
            e, g = rows["engine"][-1], rows["generate"][-1]
            print(
                f"round {number}: engine {e[0] * 1000:.0f} ms to first token, {e[1]:.1f} tok/s "
                f"({e[2]} tokens); generate {g[0] * 1000:.0f} ms, {g[1]:.1f} tok/s ({g[2]})",
                flush=True,
            )
        batched_same = (
            _batched_row(sdk, BUILTIN_MODEL_ID, args.batch, args.max_tokens) if args.batch else True
        )
    for name, results in rows.items():
        first = statistics.median(r[0] for r in results)
        rate = statistics.median(r[1] for r in results)
        print(f"{name:>8}: median {first * 1000:.0f} ms to first token, {rate:.1f} tokens/s")
    same = rows["engine"][-1][3] == rows["generate"][-1][3]
    print(f"same greedy answer from both: {'yes' if same else 'NO'}")
    return 0 if same and batched_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
