"""Why a worker ended: the line of its log worth quoting, and the job's error for its exit.

The tails below are real stderr, captured from Python 3.11 with torch and transformers
(paths shortened); they are what a worker's log ends with when the OS kills it or it dies.
"""

import signal
from pathlib import Path

from engine.worker_messages import REASON_CHARS
from engine.worker_processes import (
    WANDB_KEY_ENV,
    exit_reason,
    meaningful_line,
    quoted_log_line,
    worker_env,
)

GRADIENT_CHECKPOINTING = (
    "`gradient_checkpointing_enable` is deprecated and will be removed in v6. "
    "Use `activation_checkpointing_enable` instead."
)
# A transformers deprecation warning: the source line Python echoes is `warnings.warn(`.
WARNINGS_WARN_TAIL = (
    "/opt/venv/lib/python3.11/site-packages/transformers/modeling_utils.py:3204: "
    f"FutureWarning: {GRADIENT_CHECKPOINTING}\n"
    "  warnings.warn(\n"
)
AUTOCAST_TAIL = (
    "/opt/venv/lib/python3.11/site-packages/torch/amp/autocast_mode.py:266: UserWarning: "
    "CUDA is not available or torch_xla is imported. Disabling autocast.\n"
    '  with torch.autocast("cuda"):\n'
)
CHAINED_TRACEBACK_TAIL = """\
/srv/engine/engine/training/loop.py:3: UserWarning: loading on cpu
  warnings.warn(
Traceback (most recent call last):
  File "/srv/engine/engine/training/loop.py", line 7, in load
    {}["weights"]
    ~~^^^^^^^^^^^
KeyError: 'weights'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/engine/engine/training/worker.py", line 10, in <module>
    load()
  File "/srv/engine/engine/training/loop.py", line 9, in load
    raise RuntimeError("could not load the model's weights") from exc
RuntimeError: could not load the model's weights

"""
MEMORY_ERROR_TAIL = """\
SystemError: deallocated bytearray object has exported buffers
Traceback (most recent call last):
  File "/srv/engine/engine/training/data.py", line 3, in <module>
    x = [grow() for _ in range(2)]
        ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/engine/engine/training/data.py", line 2, in grow
    return bytearray(10**6) * (10**7)
           ~~~~~~~~~~~~~~~~~^~~~~~~~~
MemoryError
"""


def test_a_warning_is_quoted_by_its_text_never_by_its_warnings_warn_source_line() -> None:
    assert meaningful_line(WARNINGS_WARN_TAIL) == f"FutureWarning: {GRADIENT_CHECKPOINTING}"
    assert meaningful_line(AUTOCAST_TAIL) == (
        "UserWarning: CUDA is not available or torch_xla is imported. Disabling autocast."
    )


def test_what_the_worker_logged_last_is_preferred_to_a_warning_after_it() -> None:
    tail = "Loading tiny-llama on cpu\nStep 3/40: loss 1.92\n" + WARNINGS_WARN_TAIL + "\n\n"
    assert meaningful_line(tail) == "Step 3/40: loss 1.92"


def test_the_error_ending_a_traceback_is_quoted_not_its_frames() -> None:
    assert meaningful_line(CHAINED_TRACEBACK_TAIL) == (
        "RuntimeError: could not load the model's weights"
    )
    assert meaningful_line(MEMORY_ERROR_TAIL) == "MemoryError"


def test_an_error_line_is_preferred_to_ordinary_lines_after_it() -> None:
    tail = (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "W&B: could not finish the run: timed out\n" + WARNINGS_WARN_TAIL
    )
    assert meaningful_line(tail) == (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    )


def test_a_shells_killed_line_counts_as_the_error() -> None:
    tail = (
        "Step 7/40: loss 1.52\n"
        "bash: line 1:  4242 Killed                  python -m engine.training.worker spec.json\n"
        "\n"
    )
    assert meaningful_line(tail) == (
        "bash: line 1:  4242 Killed                  python -m engine.training.worker spec.json"
    )
    assert meaningful_line("Killed\n") == "Killed"


def test_a_tail_with_nothing_to_say_quotes_nothing() -> None:
    assert meaningful_line("") is None
    assert meaningful_line("\n  \n\n") is None


def test_the_quoted_log_line_is_scrubbed_before_it_is_cut(tmp_path: Path) -> None:
    secret = "0123456789abcdef"
    log = tmp_path / "worker.log"
    # The key straddles the cut: cutting first would leave its first 5 characters.
    error = "wandb.errors.AuthenticationError: bad key "
    error += "x" * (REASON_CHARS - 5 - len(error)) + secret
    log.write_text(error + "\n" + WARNINGS_WARN_TAIL)
    quoted = quoted_log_line(log, secret)
    assert quoted is not None and len(quoted) == REASON_CHARS
    assert quoted.startswith("wandb.errors.AuthenticationError: bad key xxx")
    assert quoted.endswith("x[reda")
    assert secret[:5] not in quoted
    assert quoted_log_line(tmp_path / "missing.log") is None


def test_a_worker_killed_by_the_os_says_so_and_quotes_its_last_meaningful_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    log.write_text("Step 3/40: loss 1.92\n" + WARNINGS_WARN_TAIL)
    code, message = exit_reason(-signal.SIGKILL, quoted_log_line(log))
    assert code == "worker_killed"
    assert message == (
        "The training process was killed (SIGKILL); the usual cause is running out of memory. "
        "Last log line: Step 3/40: loss 1.92"
    )
    assert "warnings.warn(" not in message


def test_each_kind_of_exit_has_its_code_and_message() -> None:
    assert exit_reason(3, "RuntimeError: broke") == (
        "worker_crashed",
        "The training process exited with code 3 without finishing. "
        "Last log line: RuntimeError: broke",
    )
    assert exit_reason(-signal.SIGTERM, None) == (
        "worker_crashed",
        "The training process was stopped by SIGTERM.",
    )
    assert exit_reason(-200, None) == (
        "worker_crashed",
        "The training process was stopped by signal 200.",
    )
    # A clean exit without a result line is a crash too, whatever it logged.
    assert exit_reason(0, "all done") == (
        "worker_crashed",
        "The training process exited without reporting a result.",
    )


def test_only_a_job_with_its_own_key_gets_an_environment_of_its_own() -> None:
    assert worker_env(None) is None
    env = worker_env("key-1")
    assert env is not None and env[WANDB_KEY_ENV] == "key-1"
    assert "PATH" in env  # the engine's environment, plus the key
