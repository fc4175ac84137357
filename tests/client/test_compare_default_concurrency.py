"""`finetune compare`'s default concurrency: higher on the local engine, which batches."""

import pytest

from client.compare import DEFAULT_CONCURRENCY
from client.compare.runner import LOCAL_ENGINE_CONCURRENCY, MAX_CONCURRENCY, default_concurrency


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8765/v1", "http://localhost:8000/v1", "http://[::1]:9000/v1"],
)
def test_a_loopback_engine_gets_every_answer_of_a_sample_run_at_once(base_url: str) -> None:
    assert default_concurrency(base_url) == LOCAL_ENGINE_CONCURRENCY
    # 5 sample examples x 2 models at once, within the allowed range.
    assert 10 <= LOCAL_ENGINE_CONCURRENCY <= MAX_CONCURRENCY


def test_nebius_keeps_the_gentle_default() -> None:
    assert default_concurrency("https://api.tokenfactory.nebius.com/v1") == DEFAULT_CONCURRENCY
    assert DEFAULT_CONCURRENCY < LOCAL_ENGINE_CONCURRENCY
