"""`finetune compare JOB [FILE]`: the base and the fine-tuned model on the same prompts.

The prompts and reference answers come from FILE (a local chat JSONL) or the job's validation
file (downloaded). The table shows, per model, the share of answers with the references' shape,
chrF against the references and the mean length; a few examples follow side by side. Progress
goes to stderr; Ctrl-C stops the run and prints what was answered so far (exit 130).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from client.api import NebiusClient
from client.cli._output import EXIT_INTERRUPTED, EXIT_OK, Status, print_json
from client.cli.finetune import UsageError  # exit 2 with the message
from client.compare import (
    CompareDataError,
    CompareExample,
    CompareOptions,
    TargetError,
    find_targets,
    read_examples,
    render_side_by_side,
    render_table,
    run_compare,
)
from client.compare.runner import default_concurrency
from client.models import Job


@contextmanager
def _ctrl_c_sets(event: asyncio.Event) -> Iterator[None]:
    """The first Ctrl-C cancels the comparison (partial results are printed), not the process."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, event.set)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _examples(
    client: NebiusClient, job: Job, args: argparse.Namespace
) -> tuple[list[CompareExample], str]:
    try:
        if args.file:
            path = Path(args.file).expanduser()
            if not path.is_file():
                raise UsageError(f"{args.file}: no such file")
            return read_examples(path, limit=args.limit), path.name
        if not job.validation_file:
            raise UsageError(
                f"job {job.id} has no validation file: give a chat JSONL file to compare on "
                f"(finetune compare {job.id} FILE)"
            )
        file = await client.retrieve_file(job.validation_file)
        with tempfile.TemporaryDirectory(prefix="finetune-compare-") as folder:
            local = Path(folder) / file.clean_filename
            await client.download_file(file.id, local)
            return read_examples(local, limit=args.limit), file.clean_filename
    except CompareDataError as exc:
        raise UsageError(str(exc)) from None


async def run_compare_command(client: NebiusClient, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    try:
        concurrency = args.concurrency
        if concurrency is None:
            concurrency = default_concurrency(client.base_url)
        options = CompareOptions(concurrency=concurrency, max_tokens=args.max_tokens)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    job = await client.retrieve_job(args.job)
    try:
        targets = await find_targets(
            client, job, model=args.model, base_model=args.base_model, checkpoint=args.checkpoint
        )
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    examples, source = await _examples(client, job, args)
    status = Status(enabled=None if args.progress else False)
    if args.progress:
        print(f"{targets.tuned.label}: {targets.tuned.model} ({targets.how})", file=sys.stderr)
        print(f"{targets.base.label}: {targets.base.model}", file=sys.stderr)

    def on_progress(done: int, total: int) -> None:
        if args.progress:
            status.show(f"compare: {done}/{total} answers")

    cancel = asyncio.Event()
    with _ctrl_c_sets(cancel):
        result = await run_compare(
            client,
            examples,
            targets.models,
            options=options,
            on_progress=on_progress,
            cancel=cancel,
            source=source,
        )
    if args.progress:
        state = "cancelled" if result.cancelled else "done"
        status.done(f"compare: {state} in {result.seconds:.1f}s")
    if args.json:
        print_json(result.model_dump(mode="json"))
    else:
        print(render_table(result))
        if args.examples > 0 and result.completed:
            print()
            print(render_side_by_side(result, args.examples))
    return EXIT_INTERRUPTED if result.cancelled else EXIT_OK
