"""`test-api-connection`: can we reach Nebius with this key? One line per endpoint."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass

from client.api import NebiusClient
from client.cli._output import EXIT_API, EXIT_OK, print_json
from client.config import resolve_settings
from client.errors import ConfigError, NebiusError


@dataclass
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    count: str | None = None
    status_code: int | None = None
    reason: str | None = None
    hint: str | None = None


async def _count_models(client: NebiusClient) -> str:
    return f"{len(await client.list_models())} models"


async def _count_jobs(client: NebiusClient) -> str:
    page = await client.list_jobs(limit=100)
    return f"{len(page.data)}{'+' if page.has_more else ''} jobs"


async def _count_files(client: NebiusClient) -> str:
    return f"{len(await client.list_files())} files"


CHECKS: list[tuple[str, Callable[[NebiusClient], Awaitable[str]]]] = [
    ("models", _count_models),
    ("fine-tuning jobs", _count_jobs),
    ("files", _count_files),
]


async def run_checks(client: NebiusClient) -> list[CheckResult]:
    results = []
    for name, check in CHECKS:
        started = time.perf_counter()
        try:
            count = await check(client)
        except NebiusError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            results.append(
                CheckResult(
                    name,
                    False,
                    elapsed,
                    status_code=exc.status_code,
                    reason=exc.message,
                    hint=exc.hint,
                )
            )
        else:
            elapsed = (time.perf_counter() - started) * 1000
            results.append(CheckResult(name, True, elapsed, count=count))
    return results


def render(base_url: str, results: list[CheckResult]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"Nebius API at {base_url}"]
    for r in results:
        head = f"  {'OK' if r.ok else 'FAIL':<4}  {r.name:<{width}}  {r.latency_ms:7.0f} ms"
        if r.ok:
            lines.append(f"{head}  {r.count}")
        else:
            status = f"{r.status_code} " if r.status_code is not None else ""
            lines.append(f"{head}  {status}{r.reason}")
            if r.hint:
                lines.append(f"        hint: {r.hint}")
    failed = sum(not r.ok for r in results)
    lines.append(
        f"all {len(results)} checks passed"
        if not failed
        else f"{failed} of {len(results)} checks failed"
    )
    return "\n".join(lines)


async def _main(args: argparse.Namespace) -> int:
    settings = resolve_settings()
    # No retries: this is a diagnosis, and a retry would hide what went wrong.
    async with NebiusClient(
        settings.api_key, settings.base_url, timeout=args.timeout, max_retries=0
    ) as client:
        results = await run_checks(client)
    if args.json:
        print_json(
            {
                "base_url": settings.base_url,
                "ok": all(r.ok for r in results),
                "checks": [asdict(r) for r in results],
            }
        )
    else:
        print(render(settings.base_url, results))
    return EXIT_OK if all(r.ok for r in results) else EXIT_API


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="test-api-connection",
        description="Check the Nebius models, fine-tuning jobs and files endpoints "
        "(NEBIUS_API_KEY, NEBIUS_BASE_URL).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_API
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # never a traceback
        print(f"error: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_API


if __name__ == "__main__":
    sys.exit(main())
