"""Entry point of `make run` and `xgenlens-bot`."""

import sys


def main() -> int:
    # The Slack app and console mode land in their own issues; say so plainly.
    print(
        "xgenlens-bot: the Slack app and the console mode are not built yet.\n"
        "Available now: validate-jsonl FILE..., test-api-connection, finetune --help."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
