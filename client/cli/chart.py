"""`finetune chart JOB [-o loss.png]`: a job's loss chart as a PNG, and its loss in one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client.api import NebiusClient
from client.charts import ChartError, draw_loss_chart, loss_curve, loss_sparkline
from client.cli._output import EXIT_OK, print_json
from client.cli.finetune import UsageError  # exit 2 with the message
from client.models import clean_filename


def default_output(job_id: str) -> Path:
    return Path(clean_filename(f"{job_id}-loss.png", fallback="loss.png"))


def output_path(value: str | None, job_id: str) -> Path:
    """Where the PNG goes: the path given (a folder gets the default name inside it)."""
    if not value:
        return default_output(job_id)
    path = Path(value).expanduser()
    return path / default_output(job_id) if path.is_dir() else path


async def run_chart(client: NebiusClient, args: argparse.Namespace) -> int:
    job = await client.retrieve_job(args.job)
    events = [event async for event in client.iter_events(args.job)]  # oldest first
    checkpoints = await client.list_checkpoints(args.job)
    curve = loss_curve(job, events, checkpoints)
    try:
        chart = draw_loss_chart(curve)
    except ChartError as exc:
        raise UsageError(str(exc)) from None
    path = output_path(args.output, job.id)
    try:
        path.write_bytes(chart.png)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    line = loss_sparkline(curve)
    if args.json:
        best = chart.best
        print_json(
            {
                "job": job.id,
                "path": str(path),
                "width": chart.width,
                "height": chart.height,
                "bytes": len(chart.png),
                "series": chart.series,
                "best_checkpoint": None
                if best is None
                else {
                    "id": best.id,
                    "step": best.step,
                    "train_loss": best.train_loss,
                    "valid_loss": best.valid_loss,
                    "chosen_by": best.chosen_by,
                },
                "sparkline": line,
                "missing": chart.missing,
            }
        )
        return EXIT_OK
    print(path)
    if line:
        print(line)
    for note in chart.missing:
        print(f"not shown: {note}", file=sys.stderr)
    return EXIT_OK
