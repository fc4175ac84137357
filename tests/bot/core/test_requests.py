"""Reading `/finetune` words (bot/core/requests.py): verb, positional arguments, options."""

import pytest

from bot.core.requests import CommandSyntaxError, parse_command


def test_empty_text_means_help() -> None:
    assert parse_command("  ").verb == "help"


def test_options_and_arguments_are_separated_and_quotes_respected() -> None:
    parsed = parse_command('CREATE model=m training="my data.jsonl" epochs=2 extra')
    assert parsed.verb == "create"
    assert parsed.options == {"model": "m", "training": "my data.jsonl", "epochs": "2"}
    assert parsed.args == ["extra"]


def test_an_option_without_a_name_is_an_error() -> None:
    with pytest.raises(CommandSyntaxError, match="`=3` has no name"):
        parse_command("create =3")


def test_an_unclosed_quote_is_an_error() -> None:
    with pytest.raises(CommandSyntaxError, match="could not read"):
        parse_command('create training="oops')
