"""The whole bot, end to end through Slack.

Each test here drives the real Bolt app the way Slack does: signed HTTP requests for
commands, events, button clicks and modal submissions (`tests/bot/harness.py`), against a fake
Slack Web API that keeps what the bot posted (`tests/bot/fake_slack.py`), with Nebius mocked
by respx (`nebius_api` in `tests/bot/conftest.py`). The tests say what a person in Slack
sees: the answers, the threads, the cards, and what reaches Nebius, how often.

A module's own rules are tested beside that module's mirror instead (`tests/bot/blocks`,
`core`, `console`, `slack`, `store`).
"""
