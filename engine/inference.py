"""Text generation with the engine's models, for chat completions and deployments.

Models load on first use and the `MAX_LOADED` most recently used stay in memory, so only
the first request for a model pays for loading it. Loading and generating run on one
thread of their own ("engine-inference"), one at a time: the event loop never waits on
torch, and two generations never fight over the same CPU cores. torch is imported on that
thread, on first use, so the engine starts as fast without it.

Generation is a plain key/value-cached decode loop rather than transformers' `generate`:
it hands out text as it is decoded (streaming), ends at stop strings without ever sending
a piece of one, draws from a seeded generator of its own (the same seed, the same answer),
and stops between two tokens when its client goes away.
"""

import asyncio
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.model_registry import Lineage, ModelNotFoundError, resolve_model

# Models kept loaded (LRU): a deployment and its base, side by side, without reloading.
MAX_LOADED = 2
# Characters of a load failure quoted in an answer or a deployment's status_reason.
REASON_CHARS = 500
# Shown instead of the engine's data folder in messages: callers need not see server paths.
DATA_DIR_LABEL = "<engine data>"

T = TypeVar("T")


class ModelLoadError(Exception):
    """A model or adapter that could not be loaded; the message says why (no traceback)."""


class PromptError(ValueError):
    """Messages the model cannot take (no chat template, longer than its context)."""


@dataclass(frozen=True)
class Weights:
    """Which weights to load: a model (id or folder) with LoRA adapters merged, in order.

    Hashable: two names for the same weights (a job's fine_tuned_model and a deployment
    of its last checkpoint) share one loaded copy.
    """

    load: str
    adapters: tuple[str, ...] = ()

    @classmethod
    def of(cls, lineage: Lineage) -> "Weights":
        return cls(lineage.load, tuple(str(a) for a in lineage.adapters))


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0  # 0: greedy, always the most likely token
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" (end of turn or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    device: Any
    eos_ids: frozenset[int]
    context: int | None  # the most positions the model takes, when its config says
    keeps_last_logits: bool  # whether forward() takes logits_to_keep
    cache_arg: str  # forward()'s name for the key/value cache ("cache" since transformers 5.2x)


class Inference:
    """The models loaded for chat, and the one thread that runs them."""

    def __init__(
        self, models_dir: Path, model_dirs: list[Path], device: str, capacity: int = MAX_LOADED
    ) -> None:
        self.models_dir = models_dir
        self.model_dirs = model_dirs
        self.device = device
        self.capacity = capacity
        self._loaded: OrderedDict[Weights, Loaded] = OrderedDict()  # touched on the pool only
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-inference")
        self._closing = threading.Event()
        self._hidden = str(models_dir.resolve().parent)

    def call(self, fn: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        """`fn(*args)` queued for the inference thread: await it without blocking the loop."""
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        """Ends a running generation at its next token and drops whatever waits."""
        self._closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def loaded(self) -> list[Weights]:
        """What is in memory now, most recently used last."""
        return list(self._loaded)

    # On the inference thread

    def load(self, weights: Weights) -> Loaded:
        """The loaded model for `weights`, loading it (and evicting the oldest) if needed."""
        if weights in self._loaded:
            self._loaded.move_to_end(weights)
            return self._loaded[weights]
        try:
            loaded = self._load(weights)
        except Exception as exc:  # any library's error: the caller gets one clear line
            raise ModelLoadError(self._reason(exc)) from exc
        self._loaded[weights] = loaded
        while len(self._loaded) > self.capacity:
            self._loaded.popitem(last=False)
        return loaded

    def _load(self, weights: Weights) -> Loaded:
        import inspect

        import torch
        from transformers.utils import logging as hf_logging

        from engine.training.loop import load_base, pick_device

        hf_logging.disable_progress_bar()  # a bar per load is noise in the server's log

        path = resolve_model(weights.load, self.models_dir, self.model_dirs)
        device = pick_device(self.device)
        adapters = [Path(a) for a in weights.adapters]
        model, tokenizer = load_base(path, device, adapters, attention="sdpa")
        model.eval()
        model.config.use_cache = True
        torch.set_grad_enabled(False)  # this thread only ever runs inference
        eos = {tokenizer.eos_token_id}
        configured = getattr(model.generation_config, "eos_token_id", None)
        eos.update(configured if isinstance(configured, list) else [configured])
        takes = inspect.signature(model.forward).parameters
        return Loaded(
            model=model,
            tokenizer=tokenizer,
            device=device,
            eos_ids=frozenset(i for i in eos if i is not None),
            context=getattr(model.config, "max_position_embeddings", None),
            keeps_last_logits="logits_to_keep" in takes,
            cache_arg="cache" if "cache" in takes else "past_key_values",
        )

    def _reason(self, exc: BaseException) -> str:
        from engine.training.adapters import AdapterError

        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not isinstance(exc, AdapterError | ModelNotFoundError):  # those say it all
            text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return text.replace(self._hidden, DATA_DIR_LABEL)[:REASON_CHARS]

    def encode(self, loaded: Loaded, messages: list[dict[str, str]]) -> list[int]:
        """The prompt's token ids: the messages through the model's chat template."""
        tokenizer = loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise PromptError("this model has no chat template, so it cannot take messages")
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The template writes any special tokens itself (a BOS included).
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if loaded.context is not None and len(ids) >= loaded.context:
            raise PromptError(
                f"the messages are {len(ids):,} tokens; this model takes at most "
                f"{loaded.context:,}, answer included"
            )
        return ids

    def generate(
        self,
        loaded: Loaded,
        prompt: list[int],
        sampling: Sampling,
        on_text: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> Generation:
        """The answer to `prompt`; `on_text` gets each new piece of it as it is decoded."""
        import torch

        model, tokenizer = loaded.model, loaded.tokenizer
        limit = sampling.max_tokens
        if loaded.context is not None:
            limit = min(limit, loaded.context - len(prompt))
        pick = _picker(sampling)
        text = Text(tokenizer, sampling.stop, on_text)
        finish = "length"
        count = 0
        extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
        with torch.inference_mode():
            inputs = torch.tensor([prompt], device=loaded.device)
            out = model(input_ids=inputs, use_cache=True, **extra)
            while count < limit:
                token = pick(out.logits[0, -1])
                count += 1
                if token in loaded.eos_ids:
                    finish = "stop"
                    break
                if text.add(token):
                    finish = "stop"
                    break
                stopping = self._closing.is_set() or (cancelled is not None and cancelled.is_set())
                if count == limit or stopping:
                    break
                cache = out[loaded.cache_arg]
                out = model(
                    input_ids=torch.tensor([[token]], device=loaded.device),
                    use_cache=True,
                    **{loaded.cache_arg: cache},
                )
        return Generation(text.finish(), finish, len(prompt), count)


def _picker(sampling: Sampling) -> Callable[[Any], int]:
    """Chooses the next token from the last position's logits."""
    import torch

    if sampling.temperature == 0:
        return lambda logits: int(logits.argmax())
    generator = torch.Generator(device="cpu")
    seed = sampling.seed if sampling.seed is not None else secrets.randbits(63)
    generator.manual_seed(seed % 2**63)

    def pick(logits: Any) -> int:
        probs = torch.softmax(logits.float().cpu() / sampling.temperature, dim=-1)
        if sampling.top_p < 1:
            # Nucleus: the most likely tokens whose probabilities reach top_p, the rest out.
            ordered, order = probs.sort(descending=True)
            before = ordered.cumsum(0) - ordered
            ordered[before >= sampling.top_p] = 0
            return int(order[torch.multinomial(ordered, 1, generator=generator)])
        return int(torch.multinomial(probs, 1, generator=generator))

    return pick


class Text:
    """The answer's text as tokens arrive: decoded, cut at stop strings, handed out safely.

    Text is handed out only once it is final: not while its last bytes are half a character
    (decoded as U+FFFD), and not while its end could be the start of a stop string.
    """

    def __init__(
        self, tokenizer: Any, stop: tuple[str, ...], on_text: Callable[[str], None] | None
    ) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.on_text = on_text
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0  # characters of self.text handed out

    def add(self, token: int) -> bool:
        """Takes one token; True when the text now holds a stop string (and ends before it)."""
        self.ids.append(token)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if self.text.endswith("\ufffd"):
            return False
        cut = min((i for i in (self.text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            self._send(cut)
            return True
        self._send(len(self.text) - self._held())
        return False

    def finish(self) -> str:
        self._send(len(self.text))
        return self.text

    def _held(self) -> int:
        """How many final characters could begin a stop string."""
        for length in range(min(len(self.text), max(map(len, self.stop), default=1) - 1), 0, -1):
            tail = self.text[-length:]
            if any(s.startswith(tail) for s in self.stop):
                return length
        return 0

    def _send(self, upto: int) -> None:
        if upto > self.sent:
            piece, self.sent = self.text[self.sent : upto], upto
            if self.on_text is not None:
                self.on_text(piece)
