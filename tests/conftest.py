"""Fixtures shared by every test.

Each test gets its own data folder and an environment with no real secrets, so
no test depends on what is configured on the machine that runs it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

SECRET_VARS = (
    "NEBIUS_API_KEY",
    "NEBIUS_BASE_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "WANDB_API_KEY",
    "ENGINE_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = REPO_ROOT / "samples"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("XGENLENS_DATA_DIR", str(data_dir))
    # No test reaches a model hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield data_dir


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES
