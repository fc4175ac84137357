"""Nebius's custom models (`/v0/models`) and chat, served through respx the way Nebius answers:
a generated full name on deploy, a first poll without a status, `error` with a
`status_reason`, a bare JSON array for the list, and chat answers that name their model."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
import respx

V0 = "https://nebius.test/v0/models"
# One model by its full name, which holds a "/" and a ":" as they are.
ONE_MODEL = r"^/v0/models/(?P<name>.+)$"
BASE = "meta-llama/Meta-Llama-3.1-8B-Instruct"
SYSTEM_PROMPT = "You turn short ideas into vivid image-generation prompts."
# The name Nebius gives the first deployment of succeeded_job's step-10 checkpoint.
FULL_NAME = f"{BASE}-LoRa:demo-1-step10-Ab1d"
TRAINING_LINES = [
    {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "a cat"},
            {"role": "assistant", "content": "A ginger cat on a sunlit windowsill, 35mm."},
        ]
    },
    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
]


def succeeded_job(*, lora: bool = True, **changes: object) -> dict:
    job = {
        "id": "ftjob-1",
        "object": "fine_tuning.job",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "status": "succeeded",
        "created_at": 1700000000,
        "finished_at": 1700003600,
        "training_file": "file-train",
        "validation_file": "file-valid",
        "suffix": "demo",
        "hyperparameters": {"n_epochs": 2, "batch_size": 8, "lora": lora},
        "trained_tokens": 500_000,
        "trained_steps": 20,
        "total_steps": 20,
    }
    job.update(changes)
    return job


# The lowest validation loss is at the first checkpoint, not the last.
CHECKPOINTS = [
    {"id": "cp-2", "step_number": 20, "metrics": {"train_loss": 0.9, "valid_loss": 1.30}},
    {"id": "cp-1", "step_number": 10, "metrics": {"train_loss": 1.1, "valid_loss": 1.20}},
]


@dataclass
class FakeModels:
    """Deployments as Nebius keeps them; `polls` are the states each GET answers in turn
    (None: an answer without a status), the last one repeated."""

    polls: list[str | None] = field(default_factory=lambda: [None, "validating", "active"])
    reason: str | None = None
    deployed: dict[str, dict] = field(default_factory=dict)
    posts: list[dict] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    chats: list[dict] = field(default_factory=list)
    gets: int = 0

    def route(self, router: respx.Router, job: dict | None = None) -> None:
        job = job or succeeded_job()
        router.get(f"fine_tuning/jobs/{job['id']}").respond(json=job)
        router.get(f"fine_tuning/jobs/{job['id']}/checkpoints").respond(json={"data": CHECKPOINTS})
        router.get(f"fine_tuning/jobs/{job['id']}/events").respond(
            json={"data": [], "has_more": False}
        )
        content = "\n".join(json.dumps(line) for line in TRAINING_LINES).encode()
        router.get("files/file-train/content").respond(content=content)
        router.post(V0).mock(side_effect=self._deploy)
        router.get(V0).mock(side_effect=self._list)
        # Added as they are: the router's base URL (`/v1/`) would be merged into a path regex.
        for method, answer in (("GET", self._get), ("DELETE", self._delete)):
            route = respx.Route(method=method, host="nebius.test", path__regex=ONE_MODEL)
            router.routes.add(route.mock(side_effect=answer))
        router.post("chat/completions").mock(side_effect=self._chat)

    def _deploy(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.posts.append(body)
        # Nebius generates the ending: it cannot be derived from the name asked for.
        name = f"{body['base_model']}-LoRa:{body['name']}-Ab{len(self.posts)}d"
        self.deployed[name] = {
            "name": name,
            "base_model": body["base_model"],
            "source": body["source"],
            "created_at": 1700004000,
            "status": "validating",
            "polls": list(self.polls),
        }
        return httpx.Response(
            200, json={k: v for k, v in self.deployed[name].items() if k != "polls"}
        )

    def _answer(self, name: str) -> dict:
        item = self.deployed[name]
        answer = {k: v for k, v in item.items() if k not in ("polls", "status")}
        answer["status"] = item["status"]
        return answer

    def _get(self, request: httpx.Request, name: str) -> httpx.Response:
        self.gets += 1
        item = self.deployed.get(name)
        if item is None:
            return httpx.Response(404, json={"detail": "not found"})
        polls = item["polls"]
        state = polls.pop(0) if len(polls) > 1 else polls[0]
        item["status"] = state
        answer = {"name": name} if state is None else self._answer(name)
        if state == "error":
            answer["status_reason"] = self.reason
        return httpx.Response(200, json=answer)

    def _list(self, request: httpx.Request) -> httpx.Response:
        listed = [self._answer(n) for n, d in self.deployed.items() if d["status"] != "deleted"]
        return httpx.Response(200, json=listed)

    def _delete(self, request: httpx.Request, name: str) -> httpx.Response:
        self.deletes.append(name)
        item = self.deployed.get(name)
        if item is None or item["status"] == "deleted":
            return httpx.Response(404, json={"detail": f"model {name} not found"})
        item["status"] = "deleted"
        return httpx.Response(200, json={"name": name, "status": "deleted"})

    def _chat(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.chats.append(body)
        return httpx.Response(
            200,
            json={
                "id": "chat-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"answer of {body['model']}"},
                        "finish_reason": "stop",
                    }
                ],
            },
        )
