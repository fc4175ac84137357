"""The tables of verbs and buttons: every button the blocks make is handled, the help lists
every verb."""

from bot.blocks.ids import Actions
from bot.core.commands import BUTTONS_BY_ACTION, HELP, VERBS
from bot.core.home import HOME_TO_CARD


def test_every_button_the_blocks_make_has_a_handler() -> None:
    made = {value for name, value in vars(Actions).items() if not name.startswith("_")}
    # The Home tab's buttons stand for card buttons (the link to a thread only opens it).
    home = set(HOME_TO_CARD) | {Actions.HOME_OPEN_THREAD}
    assert made - home == set(BUTTONS_BY_ACTION)
    assert set(HOME_TO_CARD.values()) <= set(BUTTONS_BY_ACTION)


def test_the_help_has_each_verb_once_in_the_order_of_the_table() -> None:
    lines = HELP.splitlines()
    firsts = []
    for verb in VERBS:
        (first, *_) = [
            i for i, line in enumerate(lines) if line.startswith(f"/finetune {verb.name}")
        ]
        firsts.append(first)
    assert firsts == sorted(firsts)


def test_verbs_that_take_a_job_show_it_in_their_usage() -> None:
    for verb in VERBS:
        syntax = verb.usage[0][0]
        assert syntax.split()[0] == verb.name
        assert ("JOB" in syntax.split()) == verb.needs_job, verb.name
