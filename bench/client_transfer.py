"""Upload and download a large file through NebiusClient against a local streaming server.

Measures, for the client and for plain httpx streaming of the same file in the same run:
throughput (MB/s) and peak memory above the interpreter's baseline (each transfer runs in a
fresh process, so its peak RSS is its own). Goals: client memory < 64 MB above baseline, and
throughput within 10 % of plain httpx.

    .venv/bin/python -m bench.client_transfer            # 2 GB, one round
    .venv/bin/python -m bench.client_transfer --size 256M --repeat 3

The generated file and every downloaded copy are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BLOCK = 1024 * 1024
MEMORY_GOAL_MB = 64.0
SPEED_GOAL = 0.90  # client throughput / httpx throughput


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# ---------------------------------------------------------------------- the server


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int) -> None:
    """A minimal HTTP/1.1 server: POST bodies are read and dropped, file content is streamed."""
    block = os.urandom(BLOCK)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            received = 0
            if method == "POST":
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while length := int((await reader.readline()).split(b";")[0], 16):
                        while length:
                            piece = await reader.read(min(BLOCK, length))
                            if not piece:
                                return
                            length -= len(piece)
                            received += len(piece)
                        await reader.readline()  # the CRLF after each chunk
                    await reader.readline()  # the empty trailer
                else:
                    remaining = int(headers.get("content-length", "0"))
                    while remaining:
                        piece = await reader.read(min(BLOCK, remaining))
                        if not piece:
                            return
                        remaining -= len(piece)
                        received += len(piece)
                body = json.dumps(
                    {"id": "file-bench", "object": "file", "bytes": received, "status": "processed"}
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            elif path.endswith("/content"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    + f"Content-Length: {size}\r\n\r\n".encode()
                )
                sent = 0
                while sent < size:
                    n = min(BLOCK, size - sent)
                    writer.write(block[:n] if n < BLOCK else block)
                    sent += n
                    await writer.drain()
            else:
                body = b'{"error": {"message": "not found"}}'
                writer.write(
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(size: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, size), "127.0.0.1", 0, limit=BLOCK
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------------- one measured transfer


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _phase(kind: str, base_url: str, path: Path) -> dict[str, float]:
    interpreter = _rss_peak_mb()  # bare Python: nothing but the stdlib is imported yet
    import httpx

    from client import NebiusClient

    client = NebiusClient("bench-key", base_url, timeout=600)
    plain = httpx.AsyncClient(base_url=base_url, timeout=600)
    # Warm both connections so that neither measurement pays for setup or imports.
    await plain.get("warmup")
    await client._http.get("warmup")
    baseline = _rss_peak_mb()
    cpu_start = _cpu_seconds()
    started = time.perf_counter()
    if kind == "client-upload":
        moved = (await client.upload_file(path)).bytes or 0
    elif kind == "httpx-upload":
        with open(path, "rb") as fh:
            response = await plain.post(
                "files", files={"file": (path.name, fh)}, data={"purpose": "fine-tune"}
            )
        moved = response.json()["bytes"]
    elif kind == "client-download":
        moved = await client.download_file("file-bench", path)
    elif kind == "httpx-download":
        moved = 0
        with open(path, "wb") as out:
            async with plain.stream("GET", "files/file-bench/content") as response:
                async for chunk in response.aiter_raw():
                    out.write(chunk)
                    moved += len(chunk)
    else:
        raise ValueError(kind)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_start
    peak = _rss_peak_mb()
    await client.aclose()
    await plain.aclose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "bytes": moved,
        "interpreter_mb": interpreter,
        "baseline_mb": baseline,
        "peak_mb": peak,
    }


def _run_phase(kind: str, base_url: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.client_transfer", "--phase", kind,
         "--url", base_url, "--path", str(path)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- the benchmark


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(BLOCK)
    with open(path, "wb") as fh:
        for _ in range(size // BLOCK):
            fh.write(block)
        fh.write(block[: size % BLOCK])


def run(size: int, repeat: int, workdir: Path) -> int:
    source = workdir / "train.jsonl"
    target = workdir / "download.bin"
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.client_transfer", "--serve", "--size", str(size)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1/"
        _make_file(source, size)
        results: dict[str, list[dict[str, float]]] = {}
        for round_no in range(repeat):
            # Alternate which goes first, so that drift in machine load hits both alike.
            first, second = ("client", "httpx") if round_no % 2 == 0 else ("httpx", "client")
            kinds = [f"{who}-{what}" for what in ("upload", "download") for who in (first, second)]
            for kind in kinds:
                path = source if kind.endswith("upload") else target
                # Flush the page cache's dirty pages (the last download, the source file)
                # so that the next phase does not pay for an earlier one's writes.
                os.sync()
                result = _run_phase(kind, base_url, path)
                # An upload's count includes the multipart framing (a few hundred bytes).
                if not size <= result["bytes"] <= size + 4096:
                    print(f"{kind}: moved {result['bytes']} bytes, expected {size}")
                    return 1
                results.setdefault(kind, []).append(result)
                target.unlink(missing_ok=True)
    finally:
        server.terminate()
        server.wait()
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)

    def mbps(kind: str) -> float:
        return statistics.median(size / r["seconds"] / 1e6 for r in results[kind])

    def growth(kind: str) -> float:
        return statistics.median(r["peak_mb"] - r["baseline_mb"] for r in results[kind])

    def over_interpreter(kind: str) -> float:
        return statistics.median(r["peak_mb"] - r["interpreter_mb"] for r in results[kind])

    def cpu_per_gb(kind: str) -> float:
        return statistics.median(r["cpu_seconds"] / (size / 1e9) for r in results[kind])

    print(f"file: {size / 1e9:.2f} GB, rounds: {repeat}, loopback 127.0.0.1 (medians)")
    print(
        f"{'transfer':<9} {'client MB/s':>11} {'httpx MB/s':>10} {'ratio':>5} "
        f"{'client CPU s/GB':>15} {'httpx CPU s/GB':>14} {'client +MB':>10} {'httpx +MB':>9}"
    )
    ok = True
    for direction in ("upload", "download"):
        ours, theirs = mbps(f"client-{direction}"), mbps(f"httpx-{direction}")
        ratio = ours / theirs
        mem = growth(f"client-{direction}")
        ok = ok and ratio >= SPEED_GOAL and mem < MEMORY_GOAL_MB
        print(
            f"{direction:<9} {ours:11.0f} {theirs:10.0f} {ratio:5.2f} "
            f"{cpu_per_gb(f'client-{direction}'):15.2f} {cpu_per_gb(f'httpx-{direction}'):14.2f} "
            f"{mem:10.1f} {growth(f'httpx-{direction}'):9.1f}"
        )
    print(
        "+MB: peak RSS growth during the transfer (connection warm, libraries loaded); "
        "peak over bare Python (imports included): "
        f"client upload {over_interpreter('client-upload'):.1f} MB, "
        f"download {over_interpreter('client-download'):.1f} MB"
    )
    print(
        f"goals: client memory < {MEMORY_GOAL_MB:.0f} MB above baseline, "
        f"throughput >= {SPEED_GOAL:.0%} of httpx: {'met' if ok else 'NOT met'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.client_transfer", description=__doc__)
    parser.add_argument("--size", default="2G", help="file size, e.g. 2G, 256M (default 2G)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    parser.add_argument("--dir", default=None, help="where to write the file (default: temp)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = parse_size(args.size)
    if args.serve:
        asyncio.run(_serve(size))  # until the benchmark terminates it
        return 0
    if args.phase:
        print(json.dumps(asyncio.run(_phase(args.phase, args.url, Path(args.path)))))
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-transfer-") as tmp:
        return run(size, max(1, args.repeat), Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
