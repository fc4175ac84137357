"""The rules a create request is checked by come from the client, for command and form alike."""

from bot.core.jobs import seed_problem, suffix_problem
from client.hyperparameters import NEBIUS, SEED_MAX, SUFFIX_MAX_CHARS, suffix_error


def test_the_seed_is_a_whole_number_in_the_clients_range() -> None:
    assert seed_problem(None, NEBIUS) is None
    assert seed_problem(str(SEED_MAX), NEBIUS) is None
    for typed in (str(SEED_MAX + 1), "-1", "1.5", "abc"):
        problem = seed_problem(typed, NEBIUS)
        assert (
            problem == f"seed must be a whole number in [0, {SEED_MAX}] on Nebius (got {typed!r})"
        )


def test_the_suffix_limit_is_the_clients() -> None:
    assert suffix_problem("x" * SUFFIX_MAX_CHARS, NEBIUS) is None
    too_long = "x" * (SUFFIX_MAX_CHARS + 1)
    assert suffix_problem(too_long, NEBIUS) == suffix_error(len(too_long), NEBIUS)
