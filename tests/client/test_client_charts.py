"""Loss charts: the curve read from engine and Nebius events and checkpoints, the best
checkpoint, the sparkline, and the PNG (its size and the series drawn, not its pixels)."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from typing import Any

import pytest

from client.charts import (
    HEIGHT_PX,
    SPARKLINE_WIDTH,
    WIDTH_PX,
    best_checkpoint,
    draw,
    draw_loss_chart,
    loss_curve,
    loss_sparkline,
    message_figures,
    sparkline,
)
from client.charts import curve as curve_module
from client.models import Checkpoint, Event, Job
from tests.client.loss_runs import (
    ENGINE_JOB_ID,
    ENGINE_MODEL,
    ENGINE_VALID,
    NEBIUS_LOSSES,
    engine_run,
    nebius_run,
)
from tests.client.nebius_objects import JOB_ID as NEBIUS_JOB_ID
from tests.client.nebius_objects import MODEL as NEBIUS_MODEL

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def objects(
    run: tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]],
) -> tuple[Job, list[Event], list[Checkpoint]]:
    job, events, checkpoints = run
    return (
        Job.model_validate(job),
        [Event.model_validate(e) for e in events],
        [Checkpoint.model_validate(c) for c in checkpoints],
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (which must come first)."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    return struct.unpack(">II", data[16:24])


def checkpoint(cid: str, step: int, **metrics: Any) -> Checkpoint:
    return Checkpoint(id=cid, step_number=step, metrics=metrics)


# ---------------------------------------------------------------------- the curve


def test_an_engine_run_gives_loss_by_step_validation_by_epoch_and_the_best_checkpoint() -> None:
    job, events, checkpoints = objects(engine_run())
    curve = loss_curve(job, events, checkpoints)

    assert [step for step, _ in curve.train_losses] == list(range(1, 61))
    assert len(curve.learning_rates) == 60
    assert curve.learning_rates[5][1] == pytest.approx(5e-5)  # the top of the warmup
    assert curve.learning_rates[-1][1] < curve.learning_rates[5][1]
    assert curve.valid_losses == [(20, 1.462), (40, 1.318), (60, 1.347)]
    assert [p.epoch for p in curve.epochs] == [1, 2, 3]
    assert [p.checkpoint_id for p in curve.epochs] == [c.id for c in checkpoints]
    # Epoch 2 has the lowest validation loss, not the last one.
    assert curve.best is not None
    assert (curve.best.id, curve.best.step, curve.best.valid_loss) == (
        checkpoints[1].id,
        40,
        1.318,
    )
    assert curve.best.chosen_by == "valid_loss"
    assert curve.total_steps == 60
    assert curve.missing == []


@pytest.mark.parametrize("with_data", [True, False])
def test_epoch_means_and_checkpoints_are_not_read_as_step_losses(with_data: bool) -> None:
    # Epoch-end events carry the epoch's mean loss at its last step (20, 40, 60), and
    # checkpoint events name that step too: neither is a step's loss.
    job, events, checkpoints = objects(engine_run(report_every=7))
    if not with_data:
        events = [e.model_copy(update={"data": None}) for e in events]
    curve = loss_curve(job, events, checkpoints)
    assert [step for step, _ in curve.train_losses] == [1, 7, 14, 21, 28, 35, 42, 49, 56, 60]
    assert [step for step, _ in curve.epoch_train_losses] == [20, 40, 60]


def test_figures_are_read_from_the_messages_when_the_data_has_none() -> None:
    job, events, _ = objects(engine_run())
    with_data = loss_curve(job, events, [])
    stripped = [e.model_copy(update={"data": None}) for e in events]
    from_text = loss_curve(job, stripped, [])

    assert [s for s, _ in from_text.train_losses] == [s for s, _ in with_data.train_losses]
    for (_, parsed), (_, exact) in zip(from_text.train_losses, with_data.train_losses, strict=True):
        assert parsed == pytest.approx(exact, rel=1e-3)  # the message rounds to 4 digits
    assert [lr for _, lr in from_text.learning_rates] == pytest.approx(
        [lr for _, lr in with_data.learning_rates], rel=1e-3
    )
    assert (
        from_text.valid_losses
        == with_data.valid_losses
        == list(zip((20, 40, 60), ENGINE_VALID, strict=True))
    )
    assert [p.epoch for p in from_text.epochs] == [1, 2, 3]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Step 10/60: loss 1.234, learning rate 2.5e-05, 2,400.0 tokens/s, about 8s left.",
            {"step": 10, "total_steps": 60, "loss": 1.234, "learning_rate": 2.5e-05},
        ),
        (
            "Epoch 2 finished at step 40: train loss 0.9512, validation loss 1.318.",
            {"step": 40, "epoch": 2, "loss": 0.9512, "valid_loss": 1.318},
        ),
        (
            "Step 10/100: training loss=1.5, lr=1e-05",
            {"step": 10, "total_steps": 100, "loss": 1.5, "learning_rate": 1e-05},
        ),
        ("step: 7 of 9, eval_loss: 2.0", {"step": 7, "total_steps": 9, "valid_loss": 2.0}),
        ("Checkpoint saved at step 20 (epoch 1): 2 file(s).", {"step": 20, "epoch": 1}),
        ("Training started on cpu: 60 steps over 3 epoch(s).", {}),
        ("Dataset 'training' processed successfully", {}),
        (
            "Step 3/9: loss nan, learning rate 1e-05.",
            {"step": 3, "total_steps": 9, "learning_rate": 1e-05},
        ),
    ],
)
def test_message_figures(message: str, expected: dict[str, float]) -> None:
    assert message_figures(message) == expected


def test_a_nebius_job_draws_from_its_checkpoints_and_says_what_is_missing() -> None:
    job, events, checkpoints = objects(nebius_run())
    curve = loss_curve(job, events, checkpoints)

    assert curve.train_losses == [] and curve.learning_rates == []
    steps = [20, 40, 60, 80, 100]
    assert curve.epoch_train_losses == list(zip(steps, [t for t, _ in NEBIUS_LOSSES], strict=True))
    assert curve.valid_losses == list(zip(steps, [v for _, v in NEBIUS_LOSSES], strict=True))
    assert [p.epoch for p in curve.epochs] == [1, 2, 3, 4, 5]  # one checkpoint per epoch
    assert curve.best is not None and curve.best.step == 100
    assert curve.missing == [
        curve_module.TRAINING_LOSS_PER_CHECKPOINT,
        curve_module.NO_LEARNING_RATE,
    ]


def test_a_nebius_job_without_a_validation_file_marks_its_last_checkpoint() -> None:
    job, events, checkpoints = objects(nebius_run(valid=False))
    curve = loss_curve(job, events, checkpoints)
    assert curve.valid_losses == []
    assert curve.best is not None
    assert (curve.best.step, curve.best.chosen_by) == (100, "last")
    assert curve_module.NO_VALIDATION_FILE in curve.missing
    assert curve_module.BEST_IS_LAST in curve.missing


def test_what_is_missing_before_any_figure() -> None:
    queued = Job(id="ftjob-1", status="queued", validation_file="file-valid")
    curve = loss_curve(queued, [Event(id="e1", message="Job is submitted")], [])
    assert curve.is_empty and curve.best is None
    assert curve.missing == [
        curve_module.NO_TRAINING_LOSS,
        curve_module.NO_VALIDATION_YET,
        curve_module.NO_LEARNING_RATE,
        curve_module.NO_CHECKPOINTS,
    ]
    job, events, checkpoints = objects(engine_run(until_step=25))
    running = loss_curve(job, events, checkpoints)
    assert len(running.train_losses) == 25 and running.valid_losses == [(20, 1.462)]
    assert running.total_steps == 60


def test_a_validation_file_without_validation_figures_says_so() -> None:
    job = Job(id="ftjob-1", status="succeeded", validation_file="file-valid")
    curve = loss_curve(job, [], [checkpoint("c1", 10, train_loss=1.0, valid_loss=None)])
    assert curve_module.NO_VALIDATION_REPORTED in curve.missing


def test_a_resumed_job_keeps_the_newest_figures_of_a_repeated_step() -> None:
    def progress(eid: str, step: int, loss: float) -> Event:
        data = {"type": "progress", "step": step, "loss": loss, "learning_rate": 1e-5}
        return Event(id=eid, type="metrics", message="", data=data)

    events = [
        progress("e1", 1, 2.0),
        progress("e2", 2, 1.9),
        progress("e3", 2, 1.7),  # resumed from step 1: step 2 ran again
        progress("e4", 3, 1.6),
    ]
    curve = loss_curve(Job(id="ftjob-1"), events, [])
    assert curve.train_losses == [(1, 2.0), (2, 1.7), (3, 1.6)]


def test_figures_that_are_not_numbers_are_left_out() -> None:
    events = [
        Event(id="e1", message="", data={"step": 1, "loss": float("nan"), "learning_rate": 1e-5}),
        Event(id="e2", message="", data={"step": 2, "loss": True}),
        Event(id="e3", message="", data={"step": "three", "loss": 1.0}),
        Event(id="e4", message="", data={"step": 4, "loss": "1.25"}),
        Event(id="e5", message="", data=["not", "a", "dict"]),
    ]
    curve = loss_curve(Job(id="ftjob-1"), events, [])
    assert curve.train_losses == [(4, 1.25)]
    assert curve.learning_rates == [(1, 1e-5)]


def test_best_checkpoint_rules() -> None:
    assert best_checkpoint([]) is None
    # The lowest validation loss; the earliest of equals; listed in any order.
    three = [
        checkpoint("c3", 30, train_loss=0.8, valid_loss=1.1),
        checkpoint("c1", 10, train_loss=1.2, valid_loss=1.3),
        checkpoint("c2", 20, train_loss=1.0, valid_loss=1.1),
    ]
    best = best_checkpoint(three)
    assert best is not None and (best.id, best.train_loss, best.valid_loss) == ("c2", 1.0, 1.1)
    # Nebius's full validation loss counts when the sampled one is missing.
    full = [
        checkpoint("c1", 10, valid_loss=None, full_valid_loss=1.4),
        checkpoint("c2", 20, valid_loss=None, full_valid_loss=1.5),
    ]
    assert best_checkpoint(full).id == "c1"  # type: ignore[union-attr]
    # None to choose by: the last.
    best = best_checkpoint([checkpoint("c2", 20, train_loss=0.9), checkpoint("c1", 10)])
    assert best is not None and (best.id, best.chosen_by, best.valid_loss) == ("c2", "last", None)


# ---------------------------------------------------------------------- the sparkline


def test_sparkline_is_bounded_and_runs_from_high_to_low() -> None:
    falling = [3.0 - i / 500 for i in range(1000)]
    line = sparkline(falling)
    assert len(line) == SPARKLINE_WIDTH
    assert line[0] == "█" and line[-1] == "▁"
    assert set(line) <= set("▁▂▃▄▅▆▇█")
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert sparkline([2.0, 2.0, 2.0]) == "▄▄▄"  # flat: a level line, not a drop to ▁
    assert sparkline([1.0, math.nan, 3.0, math.inf]) == "▁█"
    assert sparkline([]) == ""


def test_loss_sparkline_of_engine_and_nebius_jobs() -> None:
    curve = loss_curve(*objects(engine_run()))
    line = loss_sparkline(curve)
    assert line is not None
    first, last = curve.train_losses[0][1], curve.train_losses[-1][1]
    word, head, blocks, tail, count = line.split(" ", 4)
    assert (word, head, tail, count) == ("loss", f"{first:.4g}", f"{last:.4g}", "(60 steps)")
    assert 1 <= len(blocks) <= SPARKLINE_WIDTH and blocks[0] == "█"

    nebius = loss_sparkline(loss_curve(*objects(nebius_run())))
    assert nebius == "loss 3.364 ██▆▄▁ 3.148 (5 checkpoints)"
    assert loss_sparkline(loss_curve(Job(id="ftjob-1"), [], [])) is None


# ---------------------------------------------------------------------- the PNG


def test_an_engine_run_is_drawn_with_every_series() -> None:
    curve = loss_curve(*objects(engine_run()))
    chart = draw_loss_chart(curve)
    assert png_size(chart.png) == (WIDTH_PX, HEIGHT_PX) == (1000, 600)
    assert (chart.width, chart.height) == (1000, 600)
    assert chart.series == {
        draw.TRAINING: 60,
        draw.TRAINING_SMOOTHED: 60,
        draw.VALIDATION: 3,
        draw.BEST: 1,
        draw.LEARNING_RATE: 60,
    }
    assert chart.best == curve.best and chart.missing == []


def test_a_short_run_is_drawn_without_smoothing() -> None:
    chart = draw_loss_chart(loss_curve(*objects(engine_run(steps_per_epoch=4))))
    assert png_size(chart.png) == (1000, 600)
    assert chart.series == {
        draw.TRAINING: 12,
        draw.VALIDATION: 3,
        draw.BEST: 1,
        draw.LEARNING_RATE: 12,
    }


def test_a_nebius_job_is_drawn_from_its_checkpoints_without_a_rate_panel() -> None:
    curve = loss_curve(*objects(nebius_run()))
    chart = draw_loss_chart(curve)
    assert png_size(chart.png) == (1000, 600)
    assert chart.series == {draw.TRAINING_PER_CHECKPOINT: 5, draw.VALIDATION: 5, draw.BEST: 1}
    assert chart.missing == curve.missing != []


def test_a_job_without_figures_still_gives_a_chart_that_says_so() -> None:
    chart = draw_loss_chart(loss_curve(Job(id="ftjob-1", status="queued"), [], []))
    assert png_size(chart.png) == (1000, 600)
    assert chart.series == {}
    assert curve_module.NO_TRAINING_LOSS in chart.missing


def test_the_title_names_the_job_the_model_and_the_final_figures() -> None:
    head, figures = draw.title_lines(loss_curve(*objects(engine_run())))
    assert head == f"{ENGINE_JOB_ID} · {ENGINE_MODEL}"
    assert figures.startswith("succeeded · step 60/60 · final train loss ")
    assert figures.endswith("final valid loss 1.347 · best: step 40 (valid 1.318)")
    head, figures = draw.title_lines(loss_curve(*objects(nebius_run())))
    assert head == f"{NEBIUS_JOB_ID} · {NEBIUS_MODEL}"
    assert "final train loss 3.148" in figures and "best: step 100 (valid 2.253)" in figures
    _, figures = draw.title_lines(loss_curve(*objects(engine_run(until_step=33))))
    assert figures.startswith("running · step 33/60 · latest train loss ")
    assert "final" not in figures
    long = Job(id=ENGINE_JOB_ID, model="ft:" + "m" * 200)
    head, _ = draw.title_lines(loss_curve(long, [], []))
    assert len(head) == draw.TITLE_CHARS and head.startswith(ENGINE_JOB_ID) and head[-1] == "…"


def test_smoothing_follows_the_curve_without_lag() -> None:
    assert draw.smoothed([1.0, 2.0, 3.0, 4.0, 5.0]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    noisy = [1.0, 3.0] * 30
    assert all(1.5 <= v <= 2.5 for v in draw.smoothed(noisy)[2:-2])


def test_a_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    with pytest.raises(draw.ChartError, match=r"pip install 'matplotlib>=3.8'"):
        draw_loss_chart(loss_curve(Job(id="ftjob-1"), [], []))


def test_the_client_does_not_load_matplotlib_until_a_chart_is_drawn() -> None:
    code = (
        "import sys, client, client.charts, client.cli.finetune;"
        "assert 'matplotlib' not in sys.modules, 'loaded on import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
