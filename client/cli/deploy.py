"""`finetune deploy`, `deployments`, `undeploy` and `chat`: from a finished job to a model.

`deploy JOB [CHECKPOINT]` makes a LoRA checkpoint (the best one by default) a serverless model
and waits until it is active; `deployments [NAME]` lists them or shows one; `undeploy NAME`
deletes one (asks first); `chat MODEL PROMPT` asks a base model or a deployment.
"""

from __future__ import annotations

import argparse
import sys

from client.api import NebiusClient
from client.chat import messages_for
from client.checkpoints import CheckpointNotFound, choose_checkpoint
from client.cli._output import EXIT_OK, Status, human_time, print_json, table
from client.cli.finetune import UsageError  # exit 2 with the message
from client.deployments import (
    Deployment,
    check_name,
    default_name,
    inference_base,
    is_lora,
    not_lora_message,
)

YES = ("y", "yes")


def _status(args: argparse.Namespace) -> Status:
    return Status(enabled=None if args.progress else False)


async def run_deploy(client: NebiusClient, args: argparse.Namespace) -> int:
    job = await client.retrieve_job(args.job)
    # Refused before any deploy call: Nebius serves only LoRA adapters serverless.
    if is_lora(job) is False:
        raise UsageError(not_lora_message(job))
    if not (job.model or args.base_model):
        raise UsageError(f"job {job.id} does not name its model: give --base-model")
    checkpoints = await client.list_checkpoints(job.id)
    try:
        chosen = choose_checkpoint(checkpoints, args.checkpoint)
    except CheckpointNotFound as exc:
        if not exc.available:
            raise UsageError(
                f"job {job.id} has no checkpoints yet ({job.status}); deploy it when it has one"
            ) from None
        raise UsageError(str(exc)) from None
    try:
        name = check_name(args.name or default_name(job, chosen.step))
    except ValueError as exc:
        raise UsageError(f"--name: {exc}") from None
    base = inference_base(job.model or "", args.base_model)
    print(chosen.describe(), file=sys.stderr)
    print(f"deploying {job.id}:{chosen.id} onto {base} as {name!r}", file=sys.stderr)
    deployment = await client.deploy(
        job.id, chosen.id, name=name, base_model=base, description=args.description
    )
    # The full name is Nebius's to choose: keep the one it answered.
    full_name = deployment.name
    if args.wait:
        status = _status(args)

        def on_progress(current: Deployment, elapsed: float) -> None:
            status.show(f"{full_name}: {current.state} ({elapsed:.0f}s)")

        deployment = await client.wait_for_deployment(
            full_name, timeout=args.timeout, on_progress=on_progress
        )
        status.done(f"{full_name}: {deployment.state}")
    if args.json:
        print_json(
            {
                **deployment.model_dump(mode="json"),
                "checkpoint": {
                    "id": chosen.id,
                    "step": chosen.step,
                    "valid_loss": chosen.valid_loss,
                    "chosen_by": chosen.chosen_by,
                },
            }
        )
    else:
        print(full_name)
        if deployment.is_active:
            print(f'chat with it: finetune chat {full_name} "Hello"', file=sys.stderr)
        else:
            print(f"follow it with: finetune deployments {full_name}", file=sys.stderr)
    return EXIT_OK


def _deployment_lines(deployment: Deployment) -> list[str]:
    lines = [
        f"name:         {deployment.name}",
        f"status:       {deployment.state}",
        f"base model:   {deployment.base_model or '-'}",
        f"source:       {deployment.origin or '-'}",
        f"created:      {human_time(deployment.created_at)}",
    ]
    if deployment.description:
        lines.append(f"description:  {deployment.description}")
    if deployment.status_reason:
        lines.append(f"reason:       {deployment.status_reason}")
    return lines


async def run_deployments(client: NebiusClient, args: argparse.Namespace) -> int:
    if args.name:
        deployment = await client.get_deployment(args.name)
        if args.json:
            print_json(deployment.model_dump(mode="json"))
        else:
            print("\n".join(_deployment_lines(deployment)))
        return EXIT_OK
    deployments = await client.list_deployments()
    if args.json:
        print_json([d.model_dump(mode="json") for d in deployments])
    elif not deployments:
        print(
            "no custom models yet; deploy a checkpoint with: finetune deploy JOB", file=sys.stderr
        )
    else:
        rows = [
            (d.name, d.state, d.base_model, d.origin, human_time(d.created_at)) for d in deployments
        ]
        print(table(["NAME", "STATUS", "BASE MODEL", "SOURCE", "CREATED"], rows))
    return EXIT_OK


def confirm(question: str) -> bool:
    """Ask on stderr, read one line of stdin; only "y" or "yes" is a yes (end of input: no)."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in YES


async def run_undeploy(client: NebiusClient, args: argparse.Namespace) -> int:
    # Looked up first: an unknown name says so before any question.
    deployment = await client.get_deployment(args.name)
    if not args.yes:
        source = f", from {deployment.origin}" if deployment.origin else ""
        question = (
            f"Delete custom model {deployment.name} ({deployment.state}{source})? "
            "Chats that use it will fail."
        )
        if not confirm(question):
            print(f"kept {deployment.name}", file=sys.stderr)
            return EXIT_OK
    deleted = await client.delete_deployment(deployment.name)
    if args.json:
        print_json(deleted.model_dump(mode="json"))
    else:
        print(f"{deleted.name}: {deleted.state}")
    return EXIT_OK


def _prompt(value: str) -> str:
    text = sys.stdin.read() if value == "-" else value
    if not text.strip():
        raise UsageError("the prompt is empty" + (" (nothing on stdin)" if value == "-" else ""))
    return text


async def run_chat(client: NebiusClient, args: argparse.Namespace) -> int:
    messages = messages_for(_prompt(args.prompt), args.system)
    options = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    finish: str | None
    if args.json or not args.stream:
        completion = await client.chat_completion(args.model, messages, **options)
        if args.json:
            print_json(completion.model_dump(mode="json"))
            return EXIT_OK
        print(completion.text)
        finish = completion.finish_reason
    else:
        finish = None
        async for chunk in client.stream_chat_completion(args.model, messages, **options):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
            finish = next((c.finish_reason for c in chunk.choices if c.finish_reason), finish)
        sys.stdout.write("\n")
        sys.stdout.flush()
    if finish == "length":
        print("(the answer was cut off at the token limit: raise --max-tokens)", file=sys.stderr)
    return EXIT_OK
