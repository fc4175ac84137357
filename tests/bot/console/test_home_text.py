"""The console's `home`: the Home tab's view model as text, with the commands to type."""

from __future__ import annotations

import respx

from bot.backends import Backends
from bot.console.home_text import home_text
from bot.core.home import DeploymentRow, HomeView, JobRow
from tests.bot.console.conftest import job, run


def row(job_id: str, status: str, **more: object) -> JobRow:
    return JobRow(
        job_id=job_id,
        status=status,
        model="tiny-model",
        thread_url=None,
        channel="console",
        thread_ts="1.000001",
        **more,  # type: ignore[arg-type]
    )


def test_the_text_has_what_the_home_tab_has() -> None:
    home = HomeView(
        user="U-console",
        updated_at=1_700_000_000,
        running=[row("ftjob-run", "running", trained_steps=2, total_steps=8)],
        more_running=3,
        finished=[
            row(
                "ftjob-done",
                "succeeded",
                finished_at=1_700_000_100,
                best_checkpoint_id="c",
                best_step=8,
                best_valid_loss=3.51,
                cost_text="free on the local engine",
            )
        ],
        deployments=[
            DeploymentRow(
                name="tiny-LoRa:x-AB12",
                status="active",
                job_id="ftjob-done",
                base_model="tiny-model",
            )
        ],
        problems=["Nebius did not answer for job `ftjob-x`: busy"],
    )
    lines = home_text(home).splitlines()
    assert lines[0] == "Your fine-tuning jobs (updated 2023-11-14 22:13 UTC)"
    assert "⚠️ Nebius did not answer for job `ftjob-x`: busy" in lines
    assert "Running now (4)" in lines
    assert "  ftjob-run  ⚙️ running  tiny-model" in lines
    assert "    step 2 of 8 (25%)" in lines
    assert "    cancel: /finetune cancel ftjob-run" in lines
    assert "  … and 3 more running jobs (/finetune list)" in lines
    assert "  ftjob-done  ✅ succeeded  tiny-model  ended 2023-11-14 22:15 UTC" in lines
    assert "    best validation loss 3.51 (step 8); cost free on the local engine" in lines
    assert "  🟢 tiny-LoRa:x-AB12: active, from ftjob-done on tiny-model" in lines
    assert "    deploy: /finetune deploy ftjob-done c" in lines
    assert "    try: /finetune try tiny-LoRa:x-AB12 PROMPT" in lines


def test_an_empty_home_says_so() -> None:
    text = home_text(HomeView(user="U-console", updated_at=1_700_000_000))
    assert "Nothing running. Start a job with /finetune create." in text
    assert text.count("None") == 2  # no finished jobs, no deployments


async def test_home_in_a_script_shows_the_jobs_this_person_watches(
    backends: Backends, nebius: respx.Router
) -> None:
    nebius.get("fine_tuning/jobs/ftjob-1").respond(json=job())
    nebius.get("fine_tuning/jobs/ftjob-1/events").respond(
        json={"object": "list", "data": [], "has_more": False}
    )
    nebius.get("https://nebius.test/v0/models").respond(json=[])
    code, text = await run(backends, "/finetune watch ftjob-1\nhome\n")
    assert code == 0
    after = text[text.index("xgenlens> home") :]
    assert "Running now (1)" in after
    assert "ftjob-1  ⚙️ running  tiny-model" in after
    assert "step 2 of 8 (25%)" in after
    assert "cancel: /finetune cancel ftjob-1" in after
