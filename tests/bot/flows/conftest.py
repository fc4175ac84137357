"""Fixtures of the end-to-end tests: a training file to share, a Nebius that takes it, and
Nebius's custom models."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from tests.bot.nebius_models import FakeModels


@pytest.fixture
def valid_bytes(samples_dir: Path) -> bytes:
    """The sample training file: a valid chat dataset of 10 examples."""
    return (samples_dir / "sample_training_data.jsonl").read_bytes()


@pytest.fixture
def nebius_files(nebius_api: respx.Router) -> respx.Route:
    """Nebius accepts uploads (as file-train) and says each file is processed; the upload
    route, to count the uploads."""
    nebius_api.get(url__regex=r"files/file-\w+$").respond(
        json={"id": "file-train", "object": "file", "status": "processed"}
    )
    return nebius_api.post("files").respond(
        json={"id": "file-train", "object": "file", "bytes": 10, "status": "uploaded"}
    )


@pytest.fixture
def models(nebius_api: respx.Router) -> FakeModels:
    """Nebius's custom models and chat, with succeeded_job (ftjob-1) to deploy from."""
    fake = FakeModels()
    fake.route(nebius_api)
    return fake
