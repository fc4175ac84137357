"""A live engine on loopback whose workers are `fake_worker.py`, and helpers to drive it."""

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import app as engine_app
from engine.model_registry import BUILTIN_MODEL_ID
from engine.server import EmbeddedEngine

FAKE_WORKER = Path(__file__).with_name("fake_worker.py")
MODEL = BUILTIN_MODEL_ID
# Upper bound for a condition the engine reaches on its own; tests poll, they do not sleep.
WAIT_S = 20.0

CHAT_LINE = (
    '{"messages": [{"role": "user", "content": "Enhance: a cat"}, '
    '{"role": "assistant", "content": "A fluffy cat on a sunny windowsill, soft light"}]}\n'
)


def fake_worker(mode: str = "ok") -> list[str]:
    return [sys.executable, str(FAKE_WORKER), "--mode", mode]


def start_engine(data_dir: Path, mode: str = "ok", **settings: Any) -> EmbeddedEngine:
    settings.setdefault("warm_worker", False)
    settings.setdefault("stop_grace_seconds", 2.0)
    return EmbeddedEngine(data_dir, worker_command=fake_worker(mode), **settings).start()


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Api:
    """A thin httpx client for the engine, with the steps most tests share."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url + "/", headers=headers, timeout=30)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def upload(self, content: str | bytes, filename: str = "train.jsonl") -> dict[str, Any]:
        data = content.encode() if isinstance(content, str) else content
        response = self.http.post(
            "files", files={"file": (filename, data)}, data={"purpose": "fine-tune"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def file(self, file_id: str) -> dict[str, Any]:
        return self.http.get(f"files/{file_id}").json()

    def processed(self, content: str | bytes = CHAT_LINE * 10) -> dict[str, Any]:
        uploaded = self.upload(content)
        return wait_for(
            lambda: (f := self.file(uploaded["id"]))["status"] != "uploaded" and f,
            "the file to be processed",
        )

    def create_job(self, **body: Any) -> httpx.Response:
        body.setdefault("model", MODEL)
        return self.http.post("fine_tuning/jobs", json=body)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http.get(f"fine_tuning/jobs/{job_id}").json()

    def wait_status(self, job_id: str, *statuses: str) -> dict[str, Any]:
        return wait_for(
            lambda: (j := self.job(job_id))["status"] in statuses and j,
            f"job {job_id} to reach {statuses}",
        )

    def events(self, job_id: str, **params: Any) -> dict[str, Any]:
        return self.http.get(f"fine_tuning/jobs/{job_id}/events", params=params).json()

    def all_events(self, job_id: str) -> list[dict[str, Any]]:
        return self.events(job_id, limit=100)["data"]


@pytest.fixture
def engine_dir(tmp_path: Path) -> Path:
    return tmp_path / "engine"


@pytest.fixture
def validation_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """An uploaded file stays `uploaded` until the test sets this event (10 s at most): its
    validation waits for it, then runs as usual."""
    gate = threading.Event()
    real = engine_app.validate_dataset

    def held(path: Path, filename: str) -> tuple[bool, dict[str, Any], str | None]:
        gate.wait(10)
        return real(path, filename)

    monkeypatch.setattr(engine_app, "validate_dataset", held)
    yield gate
    gate.set()  # no validation left waiting once the test is over


@pytest.fixture
def engine(engine_dir: Path) -> Iterator[EmbeddedEngine]:
    server = start_engine(engine_dir)
    yield server
    server.stop()


@pytest.fixture
def api(engine: EmbeddedEngine) -> Iterator[Api]:
    with Api(engine.base_url) as client:
        yield client


# Chat: a tiny random model served by the engine, and real LoRA adapters for it

TINY = "tiny-llama"
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.engine.training.conftest import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("chat-models") / TINY)


def serving(model_dir: Path) -> dict[str, Any]:
    """The engine settings that serve the model at `model_dir` for chat, on the CPU."""
    return {"model_dirs": [model_dir.parent], "device": "cpu"}


@pytest.fixture
def chat_engine(engine_dir: Path, tiny_model: Path) -> Iterator[EmbeddedEngine]:
    """An engine that serves the tiny model for chat; its jobs still run on the fake worker."""
    server = start_engine(engine_dir, **serving(tiny_model))
    yield server
    server.stop()


@pytest.fixture
def chat_api(chat_engine: EmbeddedEngine) -> Iterator[Api]:
    with Api(chat_engine.base_url) as client:
        yield client


def write_adapter(folder: Path, model_dir: Path, seed: int = 1) -> Path:
    """A real LoRA adapter for the model at `model_dir`, saved in `folder` (overwriting).

    Its B matrices are random, not PEFT's zeros, so merging it changes what the model says.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in lora.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=1.0)
    folder.mkdir(parents=True, exist_ok=True)
    lora.save_pretrained(folder)
    return folder


def lora_job(api: Api, engine_dir: Path, model_dir: Path) -> dict[str, Any]:
    """A succeeded fake-worker LoRA job on the tiny model whose checkpoints hold real adapters."""
    created = api.create_job(
        model=TINY, training_file=api.processed()["id"], hyperparameters={"lora": True}
    )
    assert created.status_code == 200, created.text
    job = api.wait_status(created.json()["id"], "succeeded", "failed")
    assert job["status"] == "succeeded", job["error"]
    for step, folder in enumerate(
        sorted((engine_dir / "jobs" / job["id"] / "checkpoints").iterdir())
    ):
        write_adapter(folder, model_dir, seed=step + 1)
    return job
