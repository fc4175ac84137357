"""`finetune`: the Nebius fine-tuning API as a command line.

Readable tables by default, `--json` for machines, progress on stderr, exit codes in
`client.cli._output`, and never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from client.api import NebiusClient
from client.checkpoints import CheckpointNotFound, choose_checkpoint
from client.cli._output import (
    EXIT_API,
    EXIT_INTERRUPTED,
    EXIT_INVALID_DATA,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ProgressBar,
    Status,
    human_bytes,
    human_time,
    print_json,
    report_error,
    table,
)
from client.constants import DEPLOY_WAIT_TIMEOUT_S
from client.cost import estimate_from_report, job_cost
from client.errors import ConfigError, NebiusError
from client.hyperparameters import (
    LOCAL_ENGINE,
    NEBIUS,
    SUFFIX_MAX_CHARS,
    HyperparameterError,
    Hyperparameters,
    JobRequest,
    RangeProfile,
    WandbIntegration,
    WandbSettings,
)
from client.models import Checkpoint, Event, FileObject, Job

if TYPE_CHECKING:
    from client.validation import ValidationReport

# Replaced in tests so that `events --follow` does not wait for real.
sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class UsageError(Exception):
    """Bad arguments or local input: exit 2 with the message."""


class InvalidDataset(Exception):
    """A dataset failed local validation: exit 3; the report was already printed."""


def build_client() -> NebiusClient:
    return NebiusClient.from_env()


# ---------------------------------------------------------------------- commands


async def cmd_models(client: NebiusClient, args: argparse.Namespace) -> int:
    models = await client.list_models()
    if args.json:
        print_json([m.model_dump(mode="json") for m in models])
    else:
        rows = [(m.id, m.owned_by, human_time(m.created)) for m in models]
        print(table(["MODEL", "OWNED BY", "CREATED"], rows))
    return EXIT_OK


def _hyperparameters(args: argparse.Namespace, profile: RangeProfile) -> Hyperparameters:
    return Hyperparameters.build(
        profile, **{name: getattr(args, name) for name in Hyperparameters.model_fields}
    )


def _job_request(
    args: argparse.Namespace, training: str, validation: str | None, profile: RangeProfile
) -> JobRequest:
    """The request, checked with `profile`'s ranges (HyperparameterError names each field)."""
    integrations = []
    if args.wandb_project:
        integrations.append(
            WandbIntegration(
                wandb=WandbSettings(
                    project=args.wandb_project,
                    name=args.wandb_name,
                    entity=args.wandb_entity,
                    api_key=os.environ.get("WANDB_API_KEY") or None,
                )
            )
        )
    return JobRequest.build(
        profile,
        model=args.model,
        training_file=training,
        validation_file=validation,
        hyperparameters=_hyperparameters(args, profile),
        suffix=args.suffix,
        seed=args.seed,
        integrations=integrations,
    )


def _is_local(value: str) -> bool:
    return Path(value).exists() or value.endswith((".jsonl", ".json")) or os.sep in value


def _validate_locally(
    args: argparse.Namespace, hyperparameters: Hyperparameters
) -> ValidationReport | None:
    """Check the local dataset files before uploading (together, so that examples shared
    by training and validation are caught); a Nebius file id is not checked here. Returns
    the report of valid files (None when nothing was checked)."""
    from client.validation import DatasetUnreadable, render_report, validate_file

    local = [v for v in (args.training_file, args.validation_file) if v and _is_local(v)]
    if not local or args.skip_validation:
        return None
    training_local = _is_local(args.training_file)
    checked = Path(local[0])
    try:
        report = validate_file(
            checked,
            validation_file=Path(local[1]) if len(local) == 2 else None,
            role="training" if training_local else "validation",
            context_length=hyperparameters.context_length,
        )
    except DatasetUnreadable as exc:
        raise UsageError(str(exc)) from None
    if report.valid:
        if not args.json:
            names = " and ".join(Path(v).name for v in local)
            print(f"{names}: valid ({report.format} format)", file=sys.stderr)
        return report
    if args.json:
        print_json({"error": {"type": "InvalidDataset", "report": report.to_dict()}})
    else:
        print(render_report(report), file=sys.stderr)
    raise InvalidDataset(" / ".join(local))


async def _upload(client: NebiusClient, value: str, args: argparse.Namespace) -> str:
    """A Nebius file id for `value`: a local path is uploaded (and waited for); anything
    else is taken as the id of a file already on Nebius."""
    if not _is_local(value):
        return value
    path = Path(value)
    show = None if args.progress else False
    bar = ProgressBar(f"uploading {path.name}", enabled=show)
    uploaded = await client.upload_file(path, on_progress=bar.update)
    bar.finish(f" -> {uploaded.id}")
    status = Status(enabled=show)

    def on_wait(file: FileObject, elapsed: float) -> None:
        if file.is_ready:  # Nebius's `status: null` included: nothing to wait for
            return
        status.show(f"waiting for Nebius to process {uploaded.id}: {file.status} ({elapsed:.0f}s)")

    ready = await client.wait_for_file(uploaded.id, timeout=args.wait_timeout, on_progress=on_wait)
    status.done(f"{uploaded.id} is {ready.status or 'uploaded'}")
    return uploaded.id


async def _print_estimate(
    client: NebiusClient, model: str, report: ValidationReport | None, epochs: int
) -> None:
    """The cost before anything is uploaded: the validator's token count × epochs."""
    price = await client.training_price(model)
    found = estimate_from_report(price, report, epochs) if report else None
    if found is not None:
        text = found.text
    elif price.is_free:
        text = price.text
    else:
        text = "none: the training file was not checked here (a file id, or --skip-validation)"
    print(f"cost estimate: {text}", file=sys.stderr)


async def cmd_create(client: NebiusClient, args: argparse.Namespace) -> int:
    # Check arguments and local files before spending time on uploads, with the ranges of
    # the server in use (the local engine's on a loopback NEBIUS_BASE_URL).
    profile = client.range_profile
    checked = _job_request(args, "file-check", None, profile)
    for value in (args.training_file, args.validation_file):
        if value and _is_local(value) and not Path(value).is_file():
            raise UsageError(f"{value}: no such file")
    report = _validate_locally(args, checked.hyperparameters)
    if not args.json:
        await _print_estimate(client, args.model, report, checked.hyperparameters.n_epochs)
    training = await _upload(client, args.training_file, args)
    validation = await _upload(client, args.validation_file, args) if args.validation_file else None
    job = await client.create_job(
        _job_request(args, training, validation, profile), file_wait_timeout=args.wait_timeout
    )
    if args.json:
        print_json(job.model_dump(mode="json"))
    else:
        print(job.id)
        print(
            f"created job {job.id} ({job.status}); "
            f"follow it with: finetune events {job.id} --follow",
            file=sys.stderr,
        )
    return EXIT_OK


def _progress(job: Job) -> str:
    if job.progress is None:
        return "-"
    return f"{job.progress * 100:.0f}% ({job.trained_steps}/{job.total_steps})"


async def cmd_list(client: NebiusClient, args: argparse.Namespace) -> int:
    jobs: list[Job] = []
    if args.all:
        async for job in client.iter_jobs():
            jobs.append(job)
    else:
        jobs = (await client.list_jobs(limit=args.limit)).data
    if args.json:
        print_json([j.model_dump(mode="json") for j in jobs])
    else:
        rows = [
            (j.id, j.status, j.model, human_time(j.created_at), _progress(j), j.fine_tuned_model)
            for j in jobs
        ]
        print(table(["JOB", "STATUS", "MODEL", "CREATED", "PROGRESS", "FINE-TUNED MODEL"], rows))
    return EXIT_OK


def _job_lines(job: Job, cost: str | None = None) -> list[str]:
    lines = [
        f"id:               {job.id}",
        f"status:           {job.status}",
        f"model:            {job.model or '-'}",
        f"training file:    {job.training_file or '-'}",
        f"validation file:  {job.validation_file or '-'}",
        f"created:          {human_time(job.created_at)}",
        f"finished:         {human_time(job.finished_at)}",
        f"progress:         {_progress(job)}",
        f"trained tokens:   {job.trained_tokens if job.trained_tokens is not None else '-'}",
    ]
    if cost is not None:
        lines.append(f"cost:             {cost}")
    if job.fine_tuned_model:  # OpenAI and the local engine; Nebius deploys checkpoints instead
        lines.append(f"fine-tuned model: {job.fine_tuned_model}")
    if job.suffix:
        lines.append(f"suffix:           {job.suffix}")
    hyperparameters = job.effective_hyperparameters  # top level, or under `method` (Nebius)
    if hyperparameters:
        hp = ", ".join(f"{k}={v}" for k, v in hyperparameters.items())
        lines.append(f"hyperparameters:  {hp}")
    if job.error and (job.error.message or job.error.code):
        lines.append(f"error:            {job.error.code or ''} {job.error.message or ''}".rstrip())
    return lines


async def cmd_status(client: NebiusClient, args: argparse.Namespace) -> int:
    job = await client.retrieve_job(args.job)
    if args.json:
        print_json(job.model_dump(mode="json"))
    else:
        price = await client.training_price(job.model or "")
        print("\n".join(_job_lines(job, job_cost(price, job).text)))
    return EXIT_OK


def _print_event(event: Event, as_json: bool) -> None:
    if as_json:
        import json

        print(json.dumps(event.model_dump(mode="json"), default=str), flush=True)
    else:
        level = (event.level or "info").upper()
        print(f"{human_time(event.created_at)}  {level:<7} {event.message}", flush=True)


async def cmd_events(client: NebiusClient, args: argparse.Namespace) -> int:
    last = args.after
    while True:
        async for event in client.iter_events(args.job, after_event_id=last):
            _print_event(event, args.json)
            last = event.id
        if not args.follow:
            return EXIT_OK
        job = await client.retrieve_job(args.job)
        if job.is_terminal:
            # Events written between our last page and the final status.
            async for event in client.iter_events(args.job, after_event_id=last):
                _print_event(event, args.json)
                last = event.id
            print(f"job {job.id} {job.status}", file=sys.stderr)
            return EXIT_OK if job.status == "succeeded" else EXIT_JOB_FAILED
        await sleep(args.interval)


def _loss(checkpoint: Checkpoint, key: str) -> str:
    value = checkpoint.metrics.get(key)
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


async def cmd_checkpoints(client: NebiusClient, args: argparse.Namespace) -> int:
    checkpoints = await client.list_checkpoints(args.job)
    if args.json:
        print_json([c.model_dump(mode="json") for c in checkpoints])
    elif not checkpoints:
        print(f"job {args.job} has no checkpoints yet", file=sys.stderr)
    else:
        rows = [
            (
                c.id,
                c.step_number,
                _loss(c, "train_loss"),
                _loss(c, "valid_loss"),
                ", ".join(c.result_files) or "-",
            )
            for c in checkpoints
        ]
        print(table(["CHECKPOINT", "STEP", "TRAIN LOSS", "VALID LOSS", "FILES"], rows))
    return EXIT_OK


async def cmd_download(client: NebiusClient, args: argparse.Namespace) -> int:
    checkpoints = await client.list_checkpoints(args.job)
    if checkpoints:
        try:
            chosen = choose_checkpoint(checkpoints, args.checkpoint)
        except CheckpointNotFound as exc:
            raise UsageError(str(exc)) from None
        # The default is the best checkpoint, not the last: say which one this is.
        print(chosen.describe(), file=sys.stderr)
        file_ids = chosen.checkpoint.result_files
    elif args.checkpoint:
        raise UsageError(f"job {args.job} has no checkpoints")
    else:
        file_ids = (await client.retrieve_job(args.job)).result_files
    files = [await client.retrieve_file(fid) for fid in file_ids]
    if args.file:
        files = [f for f in files if args.file in (f.id, f.clean_filename, f.filename)]
        if not files:
            raise UsageError(f"no result file {args.file!r} in this checkpoint")
    if not files:
        raise UsageError(f"job {args.job} has no result files to download yet")
    out_dir = Path(args.output)
    saved = []
    for file in files:
        dest = out_dir / file.clean_filename
        bar = ProgressBar(
            f"downloading {file.clean_filename}", enabled=None if args.progress else False
        )
        size = await client.download_file(file.id, dest, on_progress=bar.update)
        bar.finish()
        saved.append({"file_id": file.id, "path": str(dest), "bytes": size})
    if args.json:
        print_json(saved)
    else:
        for item in saved:
            print(f"{item['path']}  ({human_bytes(item['bytes'])})")
    return EXIT_OK


async def cmd_cancel(client: NebiusClient, args: argparse.Namespace) -> int:
    job = await client.cancel_job(args.job)
    if args.json:
        print_json(job.model_dump(mode="json"))
    else:
        print(f"job {job.id}: {job.status}")
    return EXIT_OK


Command = Callable[[NebiusClient, argparse.Namespace], Awaitable[int]]


def _run_from(module: str, function: str) -> Command:
    """The command `module.function`, imported when it runs: those modules import this one
    (for UsageError), and a command that is not run costs nothing at start."""

    async def command(client: NebiusClient, args: argparse.Namespace) -> int:
        run: Command = getattr(importlib.import_module(module), function)
        return await run(client, args)

    return command


cmd_chart = _run_from("client.cli.chart", "run_chart")
cmd_deploy = _run_from("client.cli.deploy", "run_deploy")
cmd_deployments = _run_from("client.cli.deploy", "run_deployments")
cmd_undeploy = _run_from("client.cli.deploy", "run_undeploy")
cmd_chat = _run_from("client.cli.deploy", "run_chat")
cmd_compare = _run_from("client.cli.compare", "run_compare_command")


# ---------------------------------------------------------------------- parser


def _range_help(name: str) -> str:
    """Nebius's range, and the local engine's where it differs."""
    text = f"{NEBIUS.hint(name)} on Nebius"
    if LOCAL_ENGINE.ranges[name] != NEBIUS.ranges[name]:
        text += f", {LOCAL_ENGINE.hint(name)} on the local engine"
    return text


def _add_hyperparameter_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "hyperparameters (Nebius defaults when left out)",
        "Checked before any upload against Nebius's ranges, or the local engine's when "
        "NEBIUS_BASE_URL is a loopback address (localhost, 127.0.0.1, ::1).",
    )
    defaults = Hyperparameters()
    kinds = {"int": int, "float": float}
    for name, field in Hyperparameters.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        if field.annotation is bool:
            group.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"(default {'on' if default else 'off'})",
            )
            continue
        kind = kinds[field.annotation.__name__]  # type: ignore[union-attr]
        group.add_argument(
            flag,
            dest=name,
            type=kind,
            default=None,
            metavar=kind.__name__.upper(),
            help=f"{_range_help(name)} (default {default:g})" if name in NEBIUS.ranges else None,
        )
    group.add_argument("--seed", type=int, default=None, help=f"random seed, {_range_help('seed')}")
    group.add_argument(
        "--suffix",
        default=None,
        help=f"added to the output model's name, at most {SUFFIX_MAX_CHARS} characters",
    )
    wandb = parser.add_argument_group("Weights & Biases (key from WANDB_API_KEY)")
    wandb.add_argument("--wandb-project", default=None)
    wandb.add_argument("--wandb-name", default=None)
    wandb.add_argument("--wandb-entity", default=None)


def build_parser() -> argparse.ArgumentParser:
    # Global options work before or after the command; SUPPRESS keeps a subcommand's
    # default from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for machines"
    )
    common.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=argparse.SUPPRESS,
        help="no progress bars on stderr",
    )
    parser = argparse.ArgumentParser(
        prog="finetune",
        description="Fine-tune models on Nebius (NEBIUS_API_KEY, NEBIUS_BASE_URL).",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", parents=[common], help="list the models you can use")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("create", parents=[common], help="validate, upload and start a job")
    p.add_argument("--model", required=True, help="base model id (see `finetune models`)")
    p.add_argument("--training-file", required=True, help="local JSONL file, or a Nebius file id")
    p.add_argument("--validation-file", default=None, help="local JSONL file, or a Nebius file id")
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for Nebius to process the files (default 600)",
    )
    p.add_argument("--skip-validation", action="store_true", help="upload without local checks")
    _add_hyperparameter_options(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("list", parents=[common], help="list fine-tuning jobs, newest first")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--all", action="store_true", help="every job, paging as needed")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("status", parents=[common], help="show one job")
    p.add_argument("job")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("events", parents=[common], help="a job's events, oldest first")
    p.add_argument("job")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    p.add_argument("--after", default=None, metavar="EVENT_ID", help="only events after this one")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between polls (follow)")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("checkpoints", parents=[common], help="a job's checkpoints by step")
    p.add_argument("job")
    p.set_defaults(func=cmd_checkpoints)

    p = sub.add_parser("download", parents=[common], help="download a checkpoint's files")
    p.add_argument("job")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint id or step (default: the best, lowest validation loss; the last one "
        "when the job has no validation file)",
    )
    p.add_argument("--file", default=None, help="only this result file (id or name)")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="where to save (default .)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("cancel", parents=[common], help="cancel a job")
    p.add_argument("job")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("chart", parents=[common], help="a job's loss chart as a PNG")
    p.add_argument("job")
    p.add_argument(
        "-o", "--output", default=None, metavar="PNG", help="where to save (default JOB-loss.png)"
    )
    p.set_defaults(func=cmd_chart)
    _add_deploy_commands(sub, common)
    _add_compare_command(sub, common)
    return parser


def _add_compare_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    from client.compare import DEFAULT_CONCURRENCY
    from client.compare.runner import LOCAL_ENGINE_CONCURRENCY

    p = sub.add_parser(
        "compare",
        parents=[common],
        help="score the base and the fine-tuned model on the validation prompts",
    )
    p.add_argument("job")
    p.add_argument(
        "file", nargs="?", default=None, help="a chat JSONL (default: the job's validation file)"
    )
    p.add_argument("--base-model", default=None, metavar="MODEL", help="default: the job's model")
    p.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="the fine-tuned model or deployment full name (default: the job's best "
        "checkpoint on the local engine, the job's active deployment on Nebius)",
    )
    p.add_argument("--checkpoint", default=None, help="checkpoint id or step (default: the best)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N examples")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help=f"requests at a time (default {DEFAULT_CONCURRENCY}; "
        f"{LOCAL_ENGINE_CONCURRENCY} on the local engine)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        metavar="N",
        help="token limit per answer (default: from each reference's length)",
    )
    p.add_argument(
        "--examples", type=int, default=3, metavar="K", help="examples shown side by side"
    )
    p.set_defaults(func=cmd_compare)


def _add_deploy_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "deploy",
        parents=[common],
        help="make a LoRA checkpoint a serverless model, and wait until it is active",
    )
    p.add_argument("job")
    p.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="checkpoint id or step (default: the best, lowest validation loss)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="what to call it (default: the job's suffix, id and step); Nebius adds a "
        "random ending to make the full name",
    )
    p.add_argument(
        "--base-model",
        default=None,
        metavar="MODEL",
        help="the inference model to deploy onto (default: the job's model, mapped to its "
        "inference id where that differs, e.g. meta-llama/Meta-Llama-3.1-8B-Instruct)",
    )
    p.add_argument("--description", default=None)
    p.add_argument(
        "--timeout",
        type=float,
        default=DEPLOY_WAIT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for it to become active (default {DEPLOY_WAIT_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--no-wait", dest="wait", action="store_false", help="print the full name, do not wait"
    )
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("deployments", parents=[common], help="list custom models, or show one")
    p.add_argument("name", nargs="?", default=None, help="a full name: show only this one")
    p.set_defaults(func=cmd_deployments)

    p = sub.add_parser("undeploy", parents=[common], help="delete a custom model (asks first)")
    p.add_argument("name", help="the full name (see `finetune deployments`)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_undeploy)

    p = sub.add_parser("chat", parents=[common], help="ask a model (base or deployed) something")
    p.add_argument("model", help="a model id or a deployment's full name")
    p.add_argument("prompt", help='what to ask ("-": read it from stdin)')
    p.add_argument("--system", default=None, metavar="TEXT", help="a system message")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None, metavar="N")
    p.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="print the answer when it is complete, not as it comes",
    )
    p.set_defaults(func=cmd_chat)


async def _run(args: argparse.Namespace) -> int:
    async with build_client() as client:
        return await args.func(client, args)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    # Not set_defaults: parent parsers share their actions, so a default set on the top
    # parser would overwrite a flag given after the command.
    args.json = getattr(args, "json", False)
    args.progress = getattr(args, "progress", True)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except (UsageError, HyperparameterError, ConfigError) as exc:
        message = exc.message if isinstance(exc, NebiusError) else str(exc)
        if args.json:
            print_json({"error": {"type": type(exc).__name__, "message": message}})
        else:
            print(f"error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidDataset as exc:
        if not args.json:
            print(f"error: {exc} is not a valid dataset (see the report above)", file=sys.stderr)
        return EXIT_INVALID_DATA
    except NebiusError as exc:
        report_error(exc, as_json=args.json)
        return EXIT_API
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: a message, never a traceback
        report_error(exc, as_json=args.json)
        return EXIT_API


if __name__ == "__main__":
    sys.exit(main())
