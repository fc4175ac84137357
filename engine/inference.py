"""Text generation with the engine's models, for chat completions and deployments.

Models load on first use and the `MAX_LOADED` most recently used stay in memory, so only
the first request for a model pays for loading it. Loading and generating run on one
thread of their own ("engine-inference"): the event loop never waits on torch, and two
generations never fight over the same CPU cores. torch is imported on that thread, on
first use, so the engine starts as fast without it.

Generation is continuous batching over a plain key/value-cached decode loop rather than
transformers' `generate`. Decoding a small model is bound by reading its weights, so one
step for several sequences costs little more than for one: requests for the same loaded
model are decoded together, a newcomer joining between two steps (its prompt is run on its
own, left-padded, and its cache merged into the batch's). Every sequence keeps its own
attention mask row and positions, so greedy decoding gives the same answer in a batch as
alone; it hands out text as it is decoded (streaming), ends at its own stop strings, EOS or
token limit without ever sending a piece of a stop string, draws from a seeded generator of
its own (the same seed, the same answer), and leaves the batch between two tokens when its
client goes away. A failure while picking or handing out one sequence's token ends that
sequence only.
"""

import asyncio
import contextlib
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.model_registry import Lineage, ModelNotFoundError, resolve_model

# Models kept loaded (LRU): a deployment and its base, side by side, without reloading.
MAX_LOADED = 2
# Characters of a load failure quoted in an answer or a deployment's status_reason.
REASON_CHARS = 500
# Shown instead of the engine's data folder in messages: callers need not see server paths.
DATA_DIR_LABEL = "<engine data>"
# Sequences decoded together for one model; more wait for a place.
MAX_BATCH = 8
# Rows times the longest row (prompt plus token limit): bounds a batch's key/value cache
# (SmolLM2-135M: about 46 kB a position, so at most about 750 MB). A lone sequence always runs.
MAX_BATCH_TOKENS = 16384
# How long an idle inference thread waits, once a generation arrives, for others to share
# its first step: requests sent together (a compare run) start as one batch.
GATHER_S = 0.01

# The longest close() waits for the thread to finish its step (a model load can take longer).
CLOSE_WAIT_S = 5.0

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


@dataclass(eq=False)  # compared by identity: one loaded copy, one batch
class Loaded:
    model: Any
    tokenizer: Any
    device: Any
    eos_ids: frozenset[int]
    context: int | None  # the most positions the model takes, when its config says
    keeps_last_logits: bool  # whether forward() takes logits_to_keep
    cache_arg: str  # forward()'s name for the key/value cache ("cache" since transformers 5.2x)


@dataclass(eq=False)
class _Sequence:
    """One request's generation: its prompt, its choices so far, and its answer to come."""

    loaded: Loaded
    prompt: list[int]
    limit: int  # tokens it may still add: its max_tokens within the model's context
    pick: Callable[[Any], int]
    text: "Text"
    cancelled: threading.Event | None
    future: "Future[Generation]"
    count: int = 0
    finish: str = "length"
    token: int = -1  # the last token picked: the next step's input
    position: int = 0  # that token's position (the prompt's padding not counted)

    @property
    def span(self) -> int:
        return len(self.prompt) + self.limit


@dataclass(eq=False)
class _Batch:
    """Sequences of one model decoded together: row i of the cache and mask is sequences[i].

    Each mask row is its sequence's left padding (0) then its own tokens (1), so a row's
    attention and positions are what they would be alone.
    """

    loaded: Loaded
    sequences: list[_Sequence]
    cache: Any
    mask: Any  # [rows, cached positions] int64


@dataclass(eq=False)
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: "Future[Any]" = field(default_factory=Future)


class Inference:
    """The models loaded for chat, and the one thread that runs them."""

    def __init__(
        self, models_dir: Path, model_dirs: list[Path], device: str, capacity: int = MAX_LOADED
    ) -> None:
        self.models_dir = models_dir
        self.model_dirs = model_dirs
        self.device = device
        self.capacity = capacity
        self._loaded: OrderedDict[Weights, Loaded] = OrderedDict()  # touched on the thread only
        self._hidden = str(models_dir.resolve().parent)
        self._closing = threading.Event()
        self._wake = threading.Condition()
        self._calls: deque[_Call] = deque()  # under _wake
        self._waiting: deque[_Sequence] = deque()  # under _wake
        self._batches: list[_Batch] = []  # on the thread only
        self._thread: threading.Thread | None = None
        # The most sequences in one forward pass so far: shows batching at work.
        self.widest_batch = 0

    def call(self, fn: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        """`fn(*args)` queued for the inference thread: await it without blocking the loop."""
        return asyncio.wrap_future(self.queue(fn, *args))

    def queue(self, fn: Callable[..., T], *args: Any) -> "Future[T]":
        """`fn(*args)` queued for the inference thread, from any thread."""
        job = _Call(fn, args)
        self._enqueue(lambda: self._calls.append(job))
        return job.future

    def submit(
        self,
        loaded: Loaded,
        prompt: list[int],
        sampling: Sampling,
        on_text: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> "asyncio.Future[Generation]":
        """The answer to `prompt`, decoded in a batch with the model's other requests.

        `on_text` gets each new piece of it as it is decoded, on the inference thread; setting
        `cancelled` ends it between two tokens with what it has so far.
        """
        limit = sampling.max_tokens
        if loaded.context is not None:
            limit = min(limit, loaded.context - len(prompt))
        sequence = _Sequence(
            loaded=loaded,
            prompt=prompt,
            limit=limit,
            pick=_picker(sampling),
            text=Text(loaded.tokenizer, sampling.stop, on_text),
            cancelled=cancelled,
            future=Future(),
        )
        self._enqueue(lambda: self._waiting.append(sequence))
        return asyncio.wrap_future(sequence.future)

    def close(self) -> None:
        """Ends running generations at their next token and drops whatever waits.

        Waits (a step at most, `CLOSE_WAIT_S` at worst) for the thread to end: torch's own
        threads must not still be working when the interpreter exits.
        """
        with self._wake:
            self._closing.set()
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(CLOSE_WAIT_S)

    def loaded(self) -> list[Weights]:
        """What is in memory now, most recently used last."""
        return list(self._loaded)

    def _enqueue(self, add: Callable[[], None]) -> None:
        with self._wake:
            if self._closing.is_set():
                raise RuntimeError("the engine is shutting down")
            add()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="engine-inference", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    # On the inference thread

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._calls or self._waiting or self._batches or self._closing.is_set()):
                    self._wake.wait()
                idle = not self._batches
                if self._closing.is_set():
                    break
            if idle and not self._calls:
                time.sleep(GATHER_S)  # let requests sent together arrive: one first step
            self._run_calls()
            self._admit()
            for batch in list(self._batches):
                self._step(batch)
        self._shut_down()

    def _run_calls(self) -> None:
        while True:
            with self._wake:
                if not self._calls:
                    return
                job = self._calls.popleft()
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(job.fn(*job.args))
            except BaseException as exc:  # handed to the awaiting request, as an executor would
                job.future.set_exception(exc)

    def _shut_down(self) -> None:
        # A running generation ends with what it has; nothing that waits starts.
        for batch in self._batches:
            for sequence in batch.sequences:
                self._resolve(sequence)
        self._batches.clear()
        with self._wake:
            for job in self._calls:
                job.future.cancel()
            for sequence in self._waiting:
                sequence.future.cancel()
            self._calls.clear()
            self._waiting.clear()

    def _admit(self) -> None:
        """Moves waiting sequences into their model's batch, as far as the bounds allow."""
        with self._wake:
            waiting, self._waiting = list(self._waiting), deque()
        held: list[_Sequence] = []
        groups: dict[int, list[_Sequence]] = {}
        for sequence in waiting:
            if sequence.cancelled is not None and sequence.cancelled.is_set():
                self._resolve(sequence)
                continue
            groups.setdefault(id(sequence.loaded), []).append(sequence)
        for group in groups.values():
            batch = next((b for b in self._batches if b.loaded is group[0].loaded), None)
            if batch is not None and not _mergeable(batch.cache):
                held.extend(group)  # its cache cannot take rows: they wait for it to end
                continue
            rows = list(batch.sequences) if batch is not None else []
            admitted: list[_Sequence] = []
            for sequence in group:
                if _fits([*rows, *admitted, sequence]):
                    admitted.append(sequence)
                else:
                    held.append(sequence)
            if admitted:
                self._start(admitted, batch)
        if held:
            with self._wake:
                self._waiting.extendleft(reversed(held))  # first come, first served

    def _start(self, sequences: list[_Sequence], batch: _Batch | None) -> None:
        """Runs the newcomers' prompts (together, else each alone) and adds them to `batch`."""
        try:
            started = self._prefill(sequences)
        except Exception as exc:
            if len(sequences) == 1:
                _fail(sequences[0], exc)
                return
            # One prompt's failure must not fail the others: each tries again on its own.
            for sequence in sequences:
                self._start([sequence], batch)
                batch = next((b for b in self._batches if b.loaded is sequence.loaded), None)
            return
        self._settle(started)
        if not started.sequences:
            return
        if batch is None:
            self._batches.append(started)
        else:
            _merge(batch, started)

    def _prefill(self, sequences: list[_Sequence]) -> _Batch:
        import torch

        loaded = sequences[0].loaded
        tokenizer = loaded.tokenizer
        pad = next(
            (i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0
        )
        self.widest_batch = max(self.widest_batch, len(sequences))
        width = max(len(s.prompt) for s in sequences)
        ids = [[pad] * (width - len(s.prompt)) + s.prompt for s in sequences]
        mask = [[0] * (width - len(s.prompt)) + [1] * len(s.prompt) for s in sequences]
        mask_t = torch.tensor(mask, device=loaded.device)
        # Positions count a row's own tokens only; padding gets 1, as transformers does.
        positions = (mask_t.cumsum(-1) - 1).masked_fill(mask_t == 0, 1)
        extra = {"logits_to_keep": 1} if loaded.keeps_last_logits else {}
        with torch.inference_mode():
            out = loaded.model(
                input_ids=torch.tensor(ids, device=loaded.device),
                attention_mask=mask_t,
                position_ids=positions,
                use_cache=True,
                **extra,
            )
        logits = out.logits[:, -1]
        batch = _Batch(loaded, list(sequences), out[loaded.cache_arg], mask_t)
        for row, sequence in enumerate(sequences):
            sequence.position = len(sequence.prompt)
            self._take(sequence, logits[row])
        return batch

    def _step(self, batch: _Batch) -> None:
        """One token for every sequence of `batch`."""
        import torch

        loaded = batch.loaded
        device = loaded.device
        self.widest_batch = max(self.widest_batch, len(batch.sequences))
        tokens = torch.tensor([[s.token] for s in batch.sequences], device=device)
        positions = torch.tensor([[s.position] for s in batch.sequences], device=device)
        mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.sequences), 1))], dim=1)
        try:
            with torch.inference_mode():
                out = loaded.model(
                    input_ids=tokens,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=True,
                    **{loaded.cache_arg: batch.cache},
                )
        except Exception as exc:  # the model itself failed: every sequence of it has to end
            for sequence in batch.sequences:
                _fail(sequence, exc)
            self._batches.remove(batch)
            return
        batch.cache, batch.mask = out[loaded.cache_arg], mask
        logits = out.logits[:, -1]
        for row, sequence in enumerate(batch.sequences):
            sequence.position += 1
            self._take(sequence, logits[row])
        self._settle(batch)
        if not batch.sequences:
            self._batches.remove(batch)

    def _take(self, sequence: _Sequence, logits: Any) -> None:
        """Picks `sequence`'s next token; its future is set when that ends it."""
        if sequence.future.done():  # its request went away (a cancelled future)
            return
        try:
            token = sequence.pick(logits)
            sequence.count += 1
            if token in sequence.loaded.eos_ids or sequence.text.add(token):
                sequence.finish = "stop"
            elif sequence.count < sequence.limit and not self._stopping(sequence):
                sequence.token = token
                return
            self._resolve(sequence)
        except Exception as exc:  # this sequence's failure (its callback, its sampling)
            _fail(sequence, exc)

    def _stopping(self, sequence: _Sequence) -> bool:
        cancelled = sequence.cancelled is not None and sequence.cancelled.is_set()
        return cancelled or self._closing.is_set()

    def _resolve(self, sequence: _Sequence) -> None:
        if sequence.future.done():
            return
        try:
            text = sequence.text.finish()
        except Exception as exc:
            _fail(sequence, exc)
            return
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile, by its request
            sequence.future.set_result(
                Generation(text, sequence.finish, len(sequence.prompt), sequence.count)
            )

    def _settle(self, batch: _Batch) -> None:
        """Drops the rows of ended sequences, and the padding no row needs any more."""
        keep = [i for i, s in enumerate(batch.sequences) if not s.future.done()]
        if len(keep) == len(batch.sequences):
            return
        batch.sequences = [batch.sequences[i] for i in keep]
        if not keep:
            return
        import torch

        index = torch.tensor(keep, device=batch.loaded.device)
        batch.mask = batch.mask[index]
        if not _mergeable(batch.cache):
            batch.cache.batch_select_indices(index)
            return
        # Every row is padding then tokens: the shortest padding is columns nobody attends.
        unused = int(batch.mask.argmax(dim=1).min())
        batch.mask = batch.mask[:, unused:]
        for layer in batch.cache.layers:
            layer.keys = layer.keys[index, :, unused:]
            layer.values = layer.values[index, :, unused:]

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


def _fail(sequence: _Sequence, exc: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):  # a request that went away needs no answer
        sequence.future.set_exception(exc)


def _fits(rows: list[_Sequence]) -> bool:
    """Whether these sequences may share a batch (one alone always may)."""
    if len(rows) <= 1:
        return True
    return len(rows) <= MAX_BATCH and len(rows) * max(r.span for r in rows) <= MAX_BATCH_TOKENS


def _mergeable(cache: Any) -> bool:
    """Whether rows can be added to `cache`: plain growing layers only (no sliding window)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _merge(batch: _Batch, newcomers: _Batch) -> None:
    """Appends `newcomers`' rows to `batch`, left-padding whichever is shorter."""
    import torch
    import torch.nn.functional as F

    old, new = batch.mask.shape[1], newcomers.mask.shape[1]
    width = max(old, new)

    def padded(tensor: Any, length: int) -> Any:  # zeros on the left of the position axis
        if length == width:
            return tensor
        return (
            F.pad(tensor, (0, 0, width - length, 0))
            if tensor.dim() == 4
            else F.pad(tensor, (width - length, 0))
        )

    batch.mask = torch.cat([padded(batch.mask, old), padded(newcomers.mask, new)])
    for mine, theirs in zip(batch.cache.layers, newcomers.cache.layers, strict=True):
        mine.keys = torch.cat([padded(mine.keys, old), padded(theirs.keys, new)])
        mine.values = torch.cat([padded(mine.values, old), padded(theirs.values, new)])
    batch.sequences.extend(newcomers.sequences)


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
