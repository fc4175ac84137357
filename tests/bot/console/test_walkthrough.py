"""The README walkthrough, end to end: console mode on the local engine and the built-in model.

No Slack, no Nebius: upload the samples, create a job, wait for it, read its events and its
checkpoints, all through `--script`, as `make run` would show it to a person.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.console import main

BUILTIN = "HuggingFaceTB/SmolLM2-135M-Instruct"
CREATE_OPTIONS = "validation=sample_validation_data.jsonl epochs=1 batch_size=4 lora=true"


def training_script(folder: Path, samples_dir: Path, then: str) -> Path:
    """The README walkthrough's first lines, written as a `--script` file into `folder`:
    upload both samples, create a job on the built-in model and wait for it to end; then the
    lines `then`."""
    script = folder / "walkthrough.txt"
    script.write_text(
        f"""\
upload {samples_dir / "sample_training_data.jsonl"}
upload {samples_dir / "sample_validation_data.jsonl"}
/finetune create model={BUILTIN} training=sample_training_data.jsonl {CREATE_OPTIONS}
wait 900
{then}"""
    )
    return script


# Then the job's events, its checkpoints and its adapter.
THEN_READ_AND_DOWNLOAD = """\
/finetune events $JOB
/finetune checkpoints $JOB
/finetune download $JOB
"""


@pytest.mark.slow
def test_the_readme_walkthrough_trains_the_built_in_model_from_the_console(
    samples_dir: Path,
    tmp_path: Path,
    isolated_environment: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = training_script(tmp_path, samples_dir, THEN_READ_AND_DOWNLOAD)
    downloads = tmp_path / "downloads"
    code = main(["--script", str(script), "--no-warm-worker", "--downloads", str(downloads)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Nebius: the local engine at http://127.0.0.1:" in out.splitlines()[1]
    # The reports, in the threads of the uploads.
    assert "✅ sample_training_data.jsonl is a valid chat dataset: 10 examples" in out
    assert "✅ sample_validation_data.jsonl is a valid chat dataset: 5 examples" in out
    # The job's card, shown once and then updated in place.
    job_id = re.search(r"Fine-tuning job (ftjob-\w+)", out)
    assert job_id is not None, out
    assert f"Model: {BUILTIN}" in out
    assert f"(job {job_id.group(1)} has ended: succeeded)" in out
    # The watcher fills the job's thread while `wait` waits: events, the card, the summary.
    thread = out[out.index("xgenlens> wait") : out.index("xgenlens> /finetune events")]
    assert f"in the thread of #5 Fine-tuning job {job_id.group(1)}:" in thread
    assert "Training started on cpu" in thread
    assert "* Status: ✅ succeeded" in thread
    assert re.search(r"Step 3 ftckpt-\w+: step=3, train_loss=[\d.]+, valid_loss=[\d.]+", thread)
    assert re.search(r"\[\d+\] Download", thread)
    # The events, oldest first.
    events = out[out.index(f"Events of {job_id.group(1)}") :]
    assert events.index("Training started") < events.index("Step 3/3")
    assert "The job has successfully completed." in events
    # The checkpoint, with both losses.
    checkpoint = re.search(
        # (the engine adds more metrics after these: base_valid_loss)
        r"Step 3 ftckpt-\w+: step=3, train_loss=[\d.]+, valid_loss=[\d.]+(, \w+=[\d.]+)*"
        r" \(2 files\)",
        out,
    )
    assert checkpoint is not None, out
    # The adapter, downloaded into the thread: saved where the console said.
    adapter = downloads / job_id.group(1) / "adapter_model.safetensors"
    assert "adapter_model.safetensors (checkpoint" in out and f"saved to {adapter}" in out
    assert adapter.stat().st_size > 0
    assert json.loads((adapter.parent / "adapter_config.json").read_text())["r"] == 8
