"""Statistics gathered in parts add up to the statistics of one pass."""

from client.validation.stats import StatsAccumulator, estimate_tokens


def _feed(stats: StatsAccumulator, examples: list[tuple[int, list[str], int]]) -> None:
    for line, roles, chars in examples:
        tokens = stats.add(roles, chars, chars // 2)
        assert tokens == estimate_tokens(chars, len(roles))
        stats.see(hash(("example", chars)), line)


def test_a_later_part_merges_into_the_same_statistics_as_one_pass() -> None:
    earlier = [(1, ["user", "assistant"], 10), (2, ["system", "user", "assistant"], 99)]
    later = [(3, ["user", "assistant"], 10), (4, ["text"], 7), (5, ["text"], 7)]
    whole = StatsAccumulator(context_length=20)
    _feed(whole, earlier + later)
    whole.add_blank_line()
    first, second = StatsAccumulator(context_length=20), StatsAccumulator(context_length=20)
    _feed(first, earlier)
    _feed(second, later)
    second.add_blank_line()

    repeats = first.merge(second)

    assert repeats == [(3, 1)]  # line 5 repeats line 4 inside the later part: counted there
    assert first.result() == whole.result()
    assert first.result().duplicates == 2
    assert first.result().over_context_length == 1
    assert first.result().blank_lines == 1


def test_token_estimates_round_each_text_up() -> None:
    assert [estimate_tokens(chars, 1) for chars in (0, 1, 4, 5)] == [4, 5, 5, 6]
