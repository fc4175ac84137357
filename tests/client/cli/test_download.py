"""`finetune download` takes the best checkpoint by default (not the last) and says which."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from client.cli import finetune
from tests.client.conftest import file_json


def test_download_takes_the_best_checkpoint_by_default_and_says_so(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Newest first; the lowest validation loss is at step 40, not at the last step.
    losses = {"c3": (60, 1.4), "c2": (40, 1.318), "c1": (20, 1.5)}
    data = [
        {"id": c, "step_number": step, "metrics": {"valid_loss": v}, "result_files": [f"f{c[1]}"]}
        for c, (step, v) in losses.items()
    ]
    api.get("fine_tuning/jobs/j/checkpoints").respond(json={"data": data})
    api.get("files/f2").respond(json=file_json("f2", filename="j/step-40/adapter.safetensors"))
    content = api.get("files/f2/content").respond(content=b"best")
    last = api.get("files/f3").respond(json=file_json("f3"))

    code = finetune.main(["download", "j", "-o", str(tmp_path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "adapter.safetensors").read_bytes() == b"best"
    assert content.call_count == 1 and last.call_count == 0
    assert "best checkpoint: step 40, valid loss 1.318" in err
    assert out.strip().startswith(str(tmp_path / "adapter.safetensors"))
