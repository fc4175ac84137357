"""Running the comparison: every prompt through every model, a few requests at a time.

- Greedy (temperature 0) so that a second run gives the same answers, and a token limit per
  example from its reference's length, so that a model that rambles costs bounded time.
- Bounded concurrency (default 2, 10 on the local engine, which batches): enough to overlap
  the network with the model's work, and gentle on a rate-limited account.
- Progress: `on_progress(done, total)` after each answer (a coroutine function is awaited).
- Cancellation: set the `cancel` event; requests in flight are dropped and the result holds
  what was answered so far, marked `cancelled`.
- A failure that concerns the whole model (it does not exist, the key may not use it, the
  server cannot be reached) stops the run with CompareModelError naming the model; any other
  failed completion counts as an empty answer with its error noted.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from client.chat import ChatCompletion
from client.compare.examples import CompareExample
from client.compare.results import (
    Answer,
    CompareModel,
    CompareResult,
    ExampleRow,
    ShapeInfo,
    score_answer,
    summarize,
)
from client.compare.shape import reference_shape
from client.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    NebiusError,
    NotFoundError,
    PermissionDeniedError,
)
from client.validation.stats import CHARS_PER_TOKEN

DEFAULT_CONCURRENCY = 2
# On the local engine (a loopback base URL), which decodes one model's concurrent requests
# together: every answer of a 5-example run of 2 models at once is 3x faster than 2 at a time
# (bench.compare, --max-tokens 64: 31 s against 91 s).
LOCAL_ENGINE_CONCURRENCY = 10
MAX_CONCURRENCY = 16
# The answer's token limit: its reference's estimated tokens times this, within the bounds.
MAX_TOKENS_FACTOR = 2.0
MAX_TOKENS_FLOOR = 32
MAX_TOKENS_CAP = 1024

ProgressCallback = Callable[[int, int], Any]


class ChatClient(Protocol):
    async def chat_completion(
        self, model: str, messages: list[dict[str, Any]], **options: Any
    ) -> ChatCompletion: ...


class CompareModelError(NebiusError):
    """A model cannot be used at all: the run stopped."""


@dataclass(frozen=True)
class CompareOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    temperature: float = 0.0
    # A fixed token limit for every answer; None: from each reference's length.
    max_tokens: int | None = None
    max_tokens_factor: float = MAX_TOKENS_FACTOR
    max_tokens_cap: int = MAX_TOKENS_CAP

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1–{MAX_CONCURRENCY}, got {self.concurrency}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")

    def token_limit(self, reference: str) -> int:
        if self.max_tokens is not None:
            return self.max_tokens
        estimate = math.ceil(len(reference) / CHARS_PER_TOKEN * self.max_tokens_factor)
        return max(MAX_TOKENS_FLOOR, min(self.max_tokens_cap, estimate))


def default_concurrency(base_url: str) -> int:
    """Requests at a time when the user did not say: more on the local engine."""
    from client.hyperparameters import LOCAL_ENGINE, profile_for_base_url

    local = profile_for_base_url(base_url) is LOCAL_ENGINE
    return LOCAL_ENGINE_CONCURRENCY if local else DEFAULT_CONCURRENCY


def is_model_failure(error: NebiusError) -> bool:
    """Whether an error says the model (or the server) cannot be used, not that this one
    request failed."""
    if isinstance(error, NotFoundError | AuthenticationError | PermissionDeniedError):
        return True
    if isinstance(error, APIConnectionError) and not isinstance(error, APITimeoutError):
        return True
    return error.code == "model_not_found" or error.param == "model"


def model_error(model: CompareModel, error: NebiusError) -> CompareModelError:
    return CompareModelError(
        f"the {model.label} model {model.model!r} cannot be used: {error.message}",
        status_code=error.status_code,
        body=error.body,
        request=error.request,
        hint=error.hint,
        code=error.code,
        param=error.param,
    )


def check_models(models: Sequence[CompareModel]) -> list[CompareModel]:
    chosen = list(models)
    if not chosen:
        raise ValueError("compare needs at least one model")
    labels = [m.label for m in chosen]
    if len(set(labels)) != len(labels):
        raise ValueError(f"each model needs its own label, got {labels}")
    return chosen


async def run_compare(
    client: ChatClient,
    examples: Sequence[CompareExample],
    models: Sequence[CompareModel],
    *,
    options: CompareOptions | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: asyncio.Event | None = None,
    source: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> CompareResult:
    """Every example's prompt through every model, scored against its reference."""
    options = options or CompareOptions()
    chosen = check_models(models)
    cancel = cancel or asyncio.Event()
    shape = reference_shape([e.reference for e in examples])
    rows = [ExampleRow(line=e.line, question=e.question, reference=e.reference) for e in examples]
    # Example by example, each model in turn: with concurrency 2 both answers to one prompt
    # come together, and a cancelled run keeps whole rows.
    work = iter([(i, m) for i in range(len(examples)) for m in chosen])
    total = len(examples) * len(chosen)
    done = 0
    started = clock()

    async def ask(example: CompareExample, model: CompareModel) -> Answer:
        begin = clock()
        try:
            completion = await client.chat_completion(
                model.model,
                example.prompt,
                temperature=options.temperature,
                max_tokens=options.token_limit(example.reference),
            )
        except NebiusError as error:
            if is_model_failure(error):
                raise model_error(model, error) from None
            return Answer(error=str(error), seconds=clock() - begin)
        usage = completion.usage
        return Answer(
            text=completion.text,
            completion_tokens=usage.completion_tokens if usage else None,
            finish_reason=completion.finish_reason,
            seconds=clock() - begin,
        )

    async def worker() -> None:
        nonlocal done
        while not cancel.is_set():
            try:
                index, model = next(work)
            except StopIteration:
                return
            answer = await ask(examples[index], model)
            rows[index].answers[model.label] = score_answer(
                answer, examples[index].reference, shape
            )
            done += 1
            if on_progress is not None:
                reported = on_progress(done, total)
                if inspect.isawaitable(reported):
                    await reported

    workers = [asyncio.create_task(worker()) for _ in range(min(options.concurrency, total))]
    cancelled = asyncio.create_task(cancel.wait())
    pending: set[asyncio.Task[Any]] = {*workers, cancelled}
    failure: BaseException | None = None
    try:
        while any(not w.done() for w in workers) and not cancel.is_set():
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # Every finished worker's exception is read, so none goes unretrieved.
            errors = [t.exception() for t in finished if t is not cancelled]
            failure = next((e for e in errors if e is not None), None)
            if failure is not None:
                break
    finally:
        # Cancelled, failed or done: drop whatever is still in flight.
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if failure is not None:
        raise failure
    summaries, completed = summarize(rows, chosen, shape)
    return CompareResult(
        source=source,
        models=chosen,
        shape=ShapeInfo.of(shape),
        rows=rows,
        summaries=summaries,
        total=len(examples),
        completed=completed,
        cancelled=cancel.is_set() and done < total,
        seconds=clock() - started,
        reference_mean_chars=(
            sum(len(e.reference) for e in examples) / len(examples) if examples else None
        ),
    )
