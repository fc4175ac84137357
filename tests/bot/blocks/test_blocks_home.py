"""The Home tab's blocks: everything a person needs, never over Slack's limits."""

from __future__ import annotations

from bot.blocks.common import context, section
from bot.blocks.home import MAX_HOME_BLOCKS, Part, fit_sections, home_view
from bot.blocks.ids import Actions
from bot.core.home import DeploymentRow, HomeView, JobRow
from tests.bot.fake_slack import view_problem


def running(n: int, **changes: object) -> JobRow:
    fields: dict = dict(
        job_id=f"ftjob-run{n}",
        status="running",
        model="meta-llama/Llama-3.1-8B-Instruct",
        thread_url=f"https://example.slack.com/archives/C1/p{n}",
        channel="C1",
        thread_ts=f"1700000000.{n:06d}",
        trained_steps=40,
        total_steps=120,
        estimated_finish=1_700_003_600,
    )
    return JobRow(**{**fields, **changes})


def finished(n: int, **changes: object) -> JobRow:
    fields: dict = dict(
        job_id=f"ftjob-done{n}",
        status="succeeded",
        model="m-8B",
        thread_url=None,
        channel="C1",
        thread_ts=f"1700000001.{n:06d}",
        finished_at=1_700_000_000 + n,
        best_checkpoint_id=f"ftckpt_{n}",
        best_step=30,
        best_valid_loss=1.2345,
        cost_text="$0.09 (225,000 trained tokens)",
    )
    return JobRow(**{**fields, **changes})


def deployment(n: int) -> DeploymentRow:
    return DeploymentRow(
        name=f"m-8B-LoRa:mine-{n}", status="active", job_id=f"ftjob-done{n}", base_model="m-8B"
    )


def texts(blocks: list[dict]) -> str:
    out = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        for element in block.get("elements") or []:
            if isinstance(element.get("text"), dict):
                out.append(element["text"]["text"])
            elif isinstance(element.get("text"), str):
                out.append(element["text"])
    return "\n".join(out)


def buttons(blocks: list[dict]) -> list[dict]:
    found = [b["accessory"] for b in blocks if "accessory" in b]
    for block in blocks:
        if block["type"] == "actions":
            found.extend(block["elements"])
    return found


def test_a_running_job_shows_progress_eta_a_link_to_its_thread_and_cancel() -> None:
    view = home_view(HomeView(user="U1", updated_at=1_700_000_000, running=[running(1)]))
    assert view["type"] == "home"
    shown = texts(view["blocks"])
    assert "ftjob-run1" in shown and "step 40 of 120 (33%)" in shown
    assert "ETA 2023-11-14 23:13 UTC" in shown
    link, cancel = buttons(view["blocks"])
    assert link["url"] == "https://example.slack.com/archives/C1/p1"
    assert link["action_id"] == Actions.HOME_OPEN_THREAD
    assert cancel["action_id"] == Actions.HOME_CANCEL_JOB and cancel["value"] == "ftjob-run1"
    # The same confirmation as the card's Cancel: Slack asks before anything is sent.
    assert cancel["confirm"]["confirm"]["text"] == "Cancel job"
    assert view_problem({"user_id": "U1", "view": view}) is None


def test_a_finished_job_shows_its_status_best_validation_loss_and_cost() -> None:
    view = home_view(
        HomeView(
            user="U1",
            updated_at=1_700_000_000,
            finished=[
                finished(1),
                finished(
                    2,
                    status="failed",
                    best_checkpoint_id=None,
                    best_step=None,
                    best_valid_loss=None,
                    error="CUDA out of memory",
                ),
            ],
            deployments=[deployment(1)],
        )
    )
    shown = texts(view["blocks"])
    assert "ftjob-done1" in shown and "succeeded" in shown
    assert "best validation loss 1.234 (step 30)" in shown
    assert "cost $0.09 (225,000 trained tokens)" in shown
    assert "failed" in shown and "error: CUDA out of memory" in shown
    assert "`m-8B-LoRa:mine-1`: active, from `ftjob-done1`" in shown
    assert "Nothing running" in shown
    # No thread link, nothing to cancel: the best checkpoint of the succeeded job to deploy
    # (as the summary's button does) and the active deployment to try.
    assert [(b["action_id"], b["value"]) for b in buttons(view["blocks"])] == [
        (Actions.HOME_TRY, "ftjob-done1 m-8B-LoRa:mine-1"),
        (Actions.HOME_DEPLOY, "ftjob-done1:ftckpt_1"),
    ]


def test_many_jobs_fit_in_100_blocks_with_and_n_more_lines() -> None:
    home = HomeView(
        user="U1",
        updated_at=1_700_000_000,
        running=[running(n) for n in range(20)],
        more_running=40,
        finished=[finished(n) for n in range(10)],
        deployments=[deployment(n) for n in range(60)],
    )
    view = home_view(home)
    blocks = view["blocks"]
    assert len(blocks) <= MAX_HOME_BLOCKS
    assert view_problem({"user_id": "U1", "view": view}) is None
    shown = texts(blocks)
    # All 20 running (2 blocks each) fit, and the 40 not read are counted.
    assert all(f"ftjob-run{n}`" in shown for n in range(20))
    assert "… and 40 more running jobs" in shown
    assert all(f"ftjob-done{n}`" in shown for n in range(10))
    listed = sum(f"`m-8B-LoRa:mine-{n}`" in shown for n in range(60))
    assert 0 < listed < 60
    assert f"… and {60 - listed} more deployments" in shown


def test_each_part_keeps_its_heading_however_long_the_first_list() -> None:
    home = HomeView(
        user="U1",
        updated_at=1_700_000_000,
        running=[running(n) for n in range(80)],
        finished=[finished(1)],
        deployments=[deployment(1)],
    )
    blocks = home_view(home)["blocks"]
    assert len(blocks) <= MAX_HOME_BLOCKS
    shown = texts(blocks)
    listed = sum(f"ftjob-run{n}`" in shown for n in range(80))
    assert f"… and {80 - listed} more running jobs" in shown
    assert "*Recently finished*" in shown and "ftjob-done1" in shown
    assert "*Deployments* of your jobs" in shown and "mine-1" in shown


def test_fit_sections_adds_the_more_line_only_when_something_is_left_out() -> None:
    def items(n: int) -> list[list[dict]]:
        return [[section(f"item {i}")] for i in range(n)]

    exact = fit_sections([], [Part(heading=[section("h")], items=items(9), what="x")], limit=10)
    assert len(exact) == 10 and "more" not in texts(exact)
    over = fit_sections([], [Part(heading=[section("h")], items=items(10), what="x")], limit=10)
    assert len(over) == 10
    assert over[-1] == context("… and 2 more x")  # 8 items shown, the line, the heading


def test_a_huge_error_message_is_clipped_to_slack_s_section_limit() -> None:
    home = HomeView(
        user="U1",
        updated_at=1_700_000_000,
        finished=[finished(1, status="failed", error="x" * 10_000)],
        problems=["Nebius did not list the deployments: " + "y" * 5000],
    )
    view = home_view(home)
    assert view_problem({"user_id": "U1", "view": view}) is None
    assert "shortened" in texts(view["blocks"])


def test_without_nebius_the_home_says_so() -> None:
    view = home_view(HomeView(user="U1", updated_at=1_700_000_000, nebius_configured=False))
    assert "NEBIUS_API_KEY" in texts(view["blocks"])
