"""`finetune-engine serve`: starts, says where it listens, serves, stops on Ctrl-C."""

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.cli import main


def test_serve_prints_its_url_and_answers_there(tmp_path: Path) -> None:
    data_dir = tmp_path / "engine-data"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--no-warm-worker",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("finetune-engine listening on http://127.0.0.1:")
        url = first.split(" on ", 1)[1].strip()
        assert url.endswith("/v1")
        assert "API key: off" in process.stdout.readline()
        for _ in range(500):  # the socket is bound before the URL is printed
            try:
                response = httpx.get(f"{url}/models", timeout=5)
                break
            except httpx.TransportError:
                continue
        assert response.status_code == 200
        assert (data_dir / "engine.db").is_file()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    assert "Traceback" not in process.stderr.read()


def test_an_invalid_option_value_is_a_clear_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--data-dir", str(tmp_path), "--max-concurrent-jobs", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "invalid max_concurrent_jobs" in err
    assert "Traceback" not in err


def test_a_port_in_use_is_reported_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        code = main(["serve", "--port", str(port), "--data-dir", str(tmp_path)])
    finally:
        busy.close()
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
