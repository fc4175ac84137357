"""Terminal output helpers: tables, sizes, progress bars that stay off pipes."""

import io

from client.cli._output import ProgressBar, Status, human_bytes, table


def test_table_aligns_columns_and_shows_missing_as_dash() -> None:
    text = table(["JOB", "STATUS"], [("ftjob-1", "running"), ("j2", None)])
    assert text.splitlines() == ["JOB      STATUS", "ftjob-1  running", "j2       -"]


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (None, 12, 1500, 2_500_000, 3_200_000_000)] == [
        "?",
        "12 B",
        "1.5 KB",
        "2.5 MB",
        "3.2 GB",
    ]


def test_progress_bar_on_a_terminal_redraws_one_line() -> None:
    stream = io.StringIO()
    bar = ProgressBar("uploading train.jsonl", stream=stream, enabled=True)
    bar.update(0, 2_000_000)
    bar.update(2_000_000, 2_000_000)  # completion is always drawn
    bar.finish(" -> file-1")
    text = stream.getvalue()
    assert text.startswith("\ruploading train.jsonl [")
    assert "100% 2.0 MB/2.0 MB" in text
    assert "#" * ProgressBar.WIDTH in text
    assert text.endswith("uploading train.jsonl: 2.0 MB in 0.0s -> file-1\x1b[K\n")


def test_progress_bar_without_total_shows_bytes() -> None:
    bar = ProgressBar("downloading model.bin", stream=io.StringIO(), enabled=True)
    bar.update(1_000, None)
    assert bar.render().startswith("downloading model.bin 1.0 KB ")


def test_progress_bar_off_a_terminal_prints_only_a_summary() -> None:
    stream = io.StringIO()
    bar = ProgressBar("uploading x", stream=stream)  # StringIO is not a TTY
    for done in range(0, 10_001, 1_000):
        bar.update(done, 10_000)
    bar.finish()
    assert stream.getvalue().count("\n") == 1
    assert "\r" not in stream.getvalue()


def test_status_prints_each_change_once_off_a_terminal() -> None:
    stream = io.StringIO()
    status = Status(stream=stream)
    for text in ("pending", "pending", "running"):
        status.show(text)
    status.done("processed")
    assert stream.getvalue().splitlines() == ["pending", "running", "processed"]
