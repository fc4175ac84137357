"""Byte sizes as people read them: the bot in 1024s, the command lines in 1000s."""

from client.sizes import human_bytes, human_size


def test_the_bots_sizes_count_in_1024s_as_slacks_limits_do() -> None:
    sizes = (0, 1023, 1024, 1536, 5 * 1024**2, 1024**3, 3 * 1024**4)
    assert [human_size(n) for n in sizes] == [
        "0 bytes",
        "1023 bytes",
        "1.0 KB",
        "1.5 KB",
        "5.0 MB",
        "1.0 GB",
        "3072.0 GB",
    ]


def test_the_command_lines_sizes_count_in_1000s() -> None:
    assert [human_bytes(n) for n in (None, 12.6, 999, 1000, 2_500_000, 3.2e12)] == [
        "?",
        "13 B",
        "999 B",
        "1.0 KB",
        "2.5 MB",
        "3200.0 GB",
    ]
