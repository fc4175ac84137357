"""The engine's settings: where it keeps its data, how many jobs run at once, how workers start."""

import sys
from pathlib import Path

from pydantic import BaseModel, Field

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
# The real trainer; tests swap in a small script that speaks the same protocol.
DEFAULT_WORKER_COMMAND = [sys.executable, "-m", "engine.training.worker"]


class EngineConfig(BaseModel):
    data_dir: Path
    api_key: str | None = Field(default=None, repr=False)
    max_concurrent_jobs: int = Field(1, ge=1)
    model_dirs: list[Path] = Field(default_factory=list)
    max_upload_bytes: int = Field(DEFAULT_MAX_UPLOAD_BYTES, ge=1)
    worker_command: list[str] = Field(default_factory=lambda: list(DEFAULT_WORKER_COMMAND))
    # Keep one worker started ahead (its imports done, waiting for a spec on stdin), so a new
    # job reaches its first step without paying for `import torch`.
    warm_worker: bool = False
    # Seconds a cancelled worker gets after SIGTERM before SIGKILL.
    stop_grace_seconds: float = Field(5.0, gt=0)
    device: str = "auto"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "engine.db"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def prepare(self) -> None:
        for folder in (self.data_dir, self.files_dir, self.jobs_dir, self.models_dir):
            folder.mkdir(parents=True, exist_ok=True)
