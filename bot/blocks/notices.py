"""Short notices: usage, refusals, errors."""

from bot.blocks.common import code_block, context, section
from bot.chat import Message

USAGE = """\
/finetune help                          this help
/finetune models                        models you can fine-tune
/finetune create                        open the form (or give everything inline:)
/finetune create model=M training=FILE [validation=FILE] [epochs=3] [batch_size=8]
                 [learning_rate=1e-5] [lora=true] [suffix=S] [seed=N] ...
                 [wandb_project=P [wandb_name=N] [wandb_entity=E]]  (key: WANDB_API_KEY)
/finetune list                          recent jobs
/finetune status JOB                    a job's card
/finetune events JOB                    a job's latest events
/finetune checkpoints JOB               a job's checkpoints and metrics
/finetune download JOB [CHECKPOINT]     a checkpoint's files (default: the latest)
/finetune cancel JOB                    cancel a job (asks first)
/finetune watch JOB                     follow a job started elsewhere in a new thread
FILE is a Slack file id or the name of a recent .jsonl upload in this channel."""


def usage_message(problem: str | None = None) -> Message:
    blocks = []
    if problem:
        blocks.append(section(f":warning: {problem}"))
    blocks.append(code_block(USAGE))
    text = f"{problem}\n{USAGE}" if problem else USAGE
    return Message(text=text, blocks=blocks)


def refusal_message(reason: str) -> Message:
    text = f"Sorry, {reason}. Ask an admin of this bot to add you (XGENLENS_ALLOWED_USERS)."
    return Message(text=text, blocks=[section(f":no_entry: {text}")])


def error_message(what: str, detail: str, hint: str | None = None) -> Message:
    text = f"{what}: {detail}" + (f"\n{hint}" if hint else "")
    blocks = [section(f":x: *{what}*\n{detail}")]
    if hint:
        blocks.append(context(f":bulb: {hint}"))
    return Message(text=text, blocks=blocks)


def ignored_message(text: str) -> Message:
    return Message(text=text, blocks=[context(text)])


def mention_message(user: str | None) -> Message:
    who = f"<@{user}> " if user else ""
    text = (
        f"{who}Hi! Share a `.jsonl` dataset in this channel and I will check it; "
        "`/finetune help` lists what else I can do."
    )
    return Message(text=text, blocks=[section(text)])
