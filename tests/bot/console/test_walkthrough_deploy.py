"""The README walkthrough's second half, end to end: after training the built-in model in
console mode, deploy its best checkpoint, try it on one prompt and compare it with its base
model on the validation file, all through `python -m bot --script`, on the local engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.console import main
from tests.bot.console.test_walkthrough import BUILTIN, training_script

# The lines the README's walkthrough adds after the training (`max_tokens=64` keeps the
# built-in model's answers, and this test, short on a laptop CPU).
DEPLOY_TRY_COMPARE = """\
/finetune deploy $JOB
/finetune try $JOB What is the capital of France?
/finetune compare $JOB max_tokens=64
"""


@pytest.mark.slow
def test_the_readme_walkthrough_deploys_tries_and_compares_the_built_in_model(
    samples_dir: Path,
    tmp_path: Path,
    isolated_environment: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = training_script(tmp_path, samples_dir, DEPLOY_TRY_COMPARE)
    # Each line's answers are waited for (a slow CPU may take minutes over the comparison).
    code = main(["--script", str(script), "--no-warm-worker", "--settle", "600"])
    out = capsys.readouterr().out
    assert code == 0, out
    job = re.search(r"Fine-tuning job (ftjob-\w+)", out)
    assert job is not None, out
    job_id = job.group(1)
    assert f"(job {job_id} has ended: succeeded)" in out
    # The summary offers what comes next.
    assert re.search(r"\[\d+\] Deploy best checkpoint  \[\d+\] Compare", out), out

    deploy = out[out.index("xgenlens> /finetune deploy") : out.index("xgenlens> /finetune try")]
    deployed = re.search(rf"is deployed as ({re.escape(BUILTIN)}-LoRa:\S+)", deploy)
    assert deployed is not None, deploy
    assert re.search(r"\[\d+\] Try it  \[\d+\] Compare", deploy), deploy

    tried = out[out.index("xgenlens> /finetune try") : out.index("xgenlens> /finetune compare")]
    assert "What is the capital of France?" in tried
    assert f"Fine-tuned {deployed.group(1)}" in tried and f"Base {BUILTIN}" in tried

    compared = out[out.index("xgenlens> /finetune compare") :]
    # The best checkpoint's model (the local engine names it), in the job's thread.
    assert f"in the thread of #5 Fine-tuning job {job_id}:" in compared
    tuned = f"ft:{BUILTIN}:engine:{job_id}:ckpt-step-3"
    assert f"Comparing {tuned} (fine-tuned: best checkpoint: step 3" in compared
    assert "on 5 examples of sample_validation_data.jsonl: 0 of 10 answers (0%)." in compared
    assert re.search(r"\[\d+\] Cancel", compared)
    assert f"✅ Compared {tuned}" in compared
    # The table: both models and the references, each with a chrF from 0 to 100.
    table = compared[compared.index("Compare on 5 examples of sample_validation_data.jsonl") :]
    for label in ("base", "fine-tuned", "reference"):
        row = re.search(rf"^\s+{label}\s.*?\s(\d+\.\d)\s", table, re.M)
        assert row is not None and 0 <= float(row.group(1)) <= 100, table
    # (the model ids in full, cut at the table's width)
    assert f"fine-tuned: ft:{BUILTIN}:engine:{job_id}" in table and f"base: {BUILTIN}" in table
    # Three examples side by side, the first from the file's first line.
    assert "#1 (line 1)" in table and "#3 (line 3)" in table
    assert re.search(r"base\s+\| fine-tuned", table)
