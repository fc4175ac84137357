"""Object ids in OpenAI's style: a prefix and a random part (`file-…`, `ftjob-…`)."""

import secrets
import time


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())
