"""`validate-jsonl FILE [FILE ...]`: check fine-tuning datasets before uploading them.

Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error or unreadable file.
"""

import argparse
import json
import sys

from client.validation import (
    DEFAULT_CONTEXT_LENGTH,
    DEFAULT_MAX_BYTES,
    DatasetUnreadable,
    ValidationReport,
    render_report,
    validate_file,
)

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="validate-jsonl",
        description=(
            "Check JSONL fine-tuning datasets (chat, prompt/completion or text format): "
            "errors with line numbers and fields, statistics, token estimates and "
            "best-practice warnings."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="training file(s) to check")
    parser.add_argument(
        "--validation",
        metavar="FILE",
        help="validation file: checked too, and compared with each training file",
    )
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument(
        "--context-length",
        type=_positive_int,
        default=DEFAULT_CONTEXT_LENGTH,
        metavar="TOKENS",
        help=f"count examples longer than this (default {DEFAULT_CONTEXT_LENGTH})",
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help=f"largest file accepted (default {DEFAULT_MAX_BYTES:,})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the last guard: a message, never a traceback
        print(f"validate-jsonl: unexpected error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    reports: list[ValidationReport] = []
    unreadable: list[str] = []
    for path in args.files:
        try:
            reports.append(
                validate_file(
                    path,
                    validation_file=args.validation,
                    max_bytes=args.max_bytes,
                    context_length=args.context_length,
                )
            )
        except DatasetUnreadable as error:
            unreadable.append(str(error))
            print(f"validate-jsonl: {error}", file=sys.stderr)
    if args.json:
        payload = {
            "valid": not unreadable and all(r.valid for r in reports),
            "files": [r.to_dict() for r in reports],
            "unreadable": unreadable,
        }
        print(json.dumps(payload, indent=2))
    else:
        print("\n\n".join(render_report(r) for r in reports))
    if unreadable:
        return EXIT_USAGE
    return EXIT_VALID if all(r.valid for r in reports) else EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
