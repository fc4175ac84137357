"""`POST /v1/chat/completions`, OpenAI's shape, answered by the engine's own models.

`model` is a base model `GET /v1/models` lists, a succeeded job's `fine_tuned_model` (or
one of its checkpoints' `fine_tuned_model_checkpoint`), or an active deployment's full
name (`/v0/models`). Supported: messages (system, developer, user, assistant; text
content), temperature (0 is greedy), top_p, max_tokens (or max_completion_tokens), stop,
seed, stream with stream_options.include_usage. Other OpenAI fields are ignored, except
those whose answer would differ (n above 1, tools, logprobs), which are refused.
"""

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from engine import deployments
from engine.errors import ApiError
from engine.ids import new_id, now
from engine.inference import Generation, ModelLoadError, PromptError, Sampling, Weights
from engine.model_registry import FineTunedModelError, available_models, is_fine_tuned_id
from engine.model_registry import resolve_fine_tuned as fine_tuned_lineage

if TYPE_CHECKING:
    from engine.app import Engine

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 2048
MAX_STOP = 4  # OpenAI's limit on stop sequences


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # OpenAI's `developer` role is its newer name for `system`.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def template_form(self) -> dict[str, str]:
        text = (
            self.content
            if isinstance(self.content, str)
            else "".join(part.text for part in self.content)
        )
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    tools: list[Any] | None = Field(default=None, max_length=0)
    logprobs: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stop_sequences(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if len(value) > MAX_STOP:
                raise ValueError(f"at most {MAX_STOP} stop sequences")
            if not all(value):
                raise ValueError("a stop sequence cannot be empty")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("this engine does not return log probabilities")
        return value

    def sampling(self) -> Sampling:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Sampling(
            max_tokens=self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=tuple(s for s in stop if s),
            seed=self.seed,
        )


def parse_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_request")
    try:
        return ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        # A union's error location names the branch tried (`str`, `list[TextPart]`): drop it.
        parts = [str(p) for p in first["loc"] if not str(p).startswith(("str", "list["))]
        where = ".".join(parts)
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(
            400, f"Invalid value for '{where}': {message}.", param=where, code="invalid_value"
        ) from None


def resolve_weights(engine: "Engine", model_id: str) -> Weights:
    """The weights `model_id` names; 404 in the API's shape when it names nothing."""
    config = engine.config
    if model_id in {m.id for m in available_models(config.models_dir, config.model_dirs)}:
        return Weights(model_id)
    if is_fine_tuned_id(model_id):
        try:
            return Weights.of(fine_tuned_lineage(model_id, engine.db))
        except FineTunedModelError as exc:
            status = 404 if exc.code == "model_not_found" else 400
            raise ApiError(status, str(exc), param="model", code=exc.code) from None
    weights = deployments.weights_of(engine.db, model_id)
    if weights is None:
        raise ApiError(
            404,
            f"The model '{model_id}' does not exist on this engine: GET /v1/models lists the "
            "models it serves, GET /v0/models its deployments.",
            param="model",
            code="model_not_found",
        )
    return weights


def _completion(completion_id: str, created: int, model: str, result: Generation) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(result),
    }


def _usage(result: Generation) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (its body is read: what comes next is the end)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def chat_completions(request: Request) -> Response:
    from engine.app import json_body

    engine: Engine = request.app.state.engine
    chat = parse_request(await json_body(request))
    weights = resolve_weights(engine, chat.model)
    messages = [m.template_form() for m in chat.messages]
    inference = engine.inference

    def prepare() -> tuple[Any, list[int]]:
        loaded = inference.load(weights)
        return loaded, inference.encode(loaded, messages)

    try:
        loaded, prompt = await inference.call(prepare)
    except ModelLoadError as exc:
        raise ApiError(
            400,
            f"Model '{chat.model}' could not be loaded: {exc}",
            param="model",
            code="model_not_available",
        ) from None
    except PromptError as exc:
        raise ApiError(
            400, f"Invalid messages: {exc}.", param="messages", code="invalid_value"
        ) from None
    completion_id, created, sampling = new_id("chatcmpl"), now(), chat.sampling()
    if not chat.stream:
        gone = threading.Event()
        running = inference.submit(loaded, prompt, sampling, cancelled=gone)
        watching = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({running, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                # The client hung up (a timeout, a cancelled run): its place in the batch
                # goes to the others at the next token, instead of decoding for nobody.
                gone.set()
            result = await running
        finally:
            watching.cancel()
        return JSONResponse(_completion(completion_id, created, chat.model, result))
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        cancelled = threading.Event()
        head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
        }
        # OpenAI's rule: with include_usage every chunk carries "usage": null but the last.
        tail = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return _event({**head, "choices": [choice], **tail})

        def on_text(piece: str) -> None:  # on the inference thread
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        running = inference.submit(loaded, prompt, sampling, on_text, cancelled)
        # Scheduled after every piece the generation handed out, so it comes last.
        running.add_done_callback(lambda _f: pieces.put_nowait(None))
        try:
            yield chunk({"role": "assistant", "content": ""})
            while (piece := await pieces.get()) is not None:
                yield chunk({"content": piece})
            try:
                result = await running
            except Exception as exc:  # mid-stream, the status is sent: the error is an event
                yield _event(
                    ApiError(
                        500, f"Generation failed: {exc}", type="server_error", code="internal_error"
                    ).body()
                )
                return
            yield chunk({}, result.finish_reason)
            if include_usage:
                yield _event({**head, "choices": [], "usage": _usage(result)})
            yield "data: [DONE]\n\n"
        finally:
            cancelled.set()  # the client hung up: the generation stops at its next token

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
