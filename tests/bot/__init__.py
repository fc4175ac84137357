"""The bot's tests, grouped by level.

- `flows/`: the whole bot, end to end through Slack (the fake Slack and Bolt's own HTTP
  requests), one file per thing a person does: create, the form, deploy, compare, ...
- `blocks/`, `core/`, `console/`, `slack/`, `store/`: one module of `bot/` each, beside that
  module's mirror (`core/test_watcher.py` tests `bot/core/watcher.py`). The console's own
  end-to-end tests, which drive the bot through the terminal, are in `console/`.
- here: the modules at the top of `bot/` (`test_config.py`, `test_backends.py`, and
  `test_entry_point.py` for `bot/__main__.py`) and `manifest.yml` (`test_manifest.py`).

Where tests of two levels would share a file name, the module-level file names its level
(`blocks/test_blocks_compare.py`, `core/test_core_compare.py`,
`console/test_console_compare.py`) and the end-to-end one keeps the plain name
(`flows/test_compare.py`): no two test files in `tests/` share a name.

Not tests: `conftest.py` (the fixtures every level shares), `harness.py` (drives the Bolt
app with signed requests), `fake_slack.py` (Slack's Web API, faked), `fake_clock.py` (a clock
that moves only when slept on), `nebius_models.py` (Nebius's custom models, served through
respx), `watching.py` (Nebius's view of some jobs and a bot's watches, for the watcher's
tests in `core/` and `store/`).
"""
