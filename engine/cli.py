"""`finetune-engine serve`: the local fine-tuning server."""

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from engine.config import DEFAULT_MAX_UPLOAD_BYTES, EngineConfig
from engine.server import base_url, bind_socket

DEFAULT_PORT = 8800


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-engine",
        description="A local fine-tuning server speaking the Nebius / OpenAI fine-tuning API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (Ctrl-C stops it)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="0 picks a free port (default: %(default)s)"
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="database, uploads, checkpoints (default: $XGENLENS_DATA_DIR/engine or data/engine)",
    )
    serve.add_argument(
        "--max-concurrent-jobs", type=int, default=1, help="jobs trained at once (default: 1)"
    )
    serve.add_argument(
        "--model-dir",
        type=Path,
        action="append",
        default=[],
        help="a local model folder, or a folder of them, offered by GET /v1/models (repeatable)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=int,
        default=DEFAULT_MAX_UPLOAD_BYTES // 1024**2,
        help="largest file accepted (default: %(default)s)",
    )
    serve.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    serve.add_argument(
        "--no-warm-worker",
        action="store_true",
        help="start each job's process from scratch instead of keeping one ready (saves memory)",
    )
    return parser


def _config(args: argparse.Namespace) -> EngineConfig:
    data_dir = args.data_dir or Path(os.environ.get("XGENLENS_DATA_DIR") or "data") / "engine"
    return EngineConfig(
        data_dir=data_dir,
        api_key=os.environ.get("ENGINE_API_KEY") or None,
        max_concurrent_jobs=args.max_concurrent_jobs,
        model_dirs=args.model_dir,
        max_upload_bytes=args.max_upload_mb * 1024**2,
        warm_worker=not args.no_warm_worker,
        device=args.device,
    )


def serve(config: EngineConfig, host: str, port: int) -> int:
    import uvicorn

    from engine.app import create_app

    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        print(f"finetune-engine: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    auth = "on (ENGINE_API_KEY)" if config.api_key else "off (set ENGINE_API_KEY to require one)"
    print(f"finetune-engine listening on {base_url(host, port)}", flush=True)
    print(f"  data folder: {config.data_dir.resolve()}; API key: {auth}", flush=True)
    if not config.api_key and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"  warning: listening on {host} with no ENGINE_API_KEY: anyone who can reach this "
            "address can train and download models",
            flush=True,
        )
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="info", lifespan="on"))
    asyncio.run(server.serve(sockets=[sock]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = _config(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"finetune-engine: invalid {where}: {first['msg']}", file=sys.stderr)
        return 2
    try:
        return serve(config, args.host, args.port)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
