"""manifest.yml creates the app the code needs: the command, the events, exactly the scopes."""

from pathlib import Path

import yaml

from bot.core.commands import HELP, VERBS
from bot.listeners import events as event_listeners

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def load() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_the_finetune_command_has_a_usage_hint() -> None:
    (command,) = load()["features"]["slash_commands"]
    assert command["command"] == "/finetune"
    assert "create" in command["usage_hint"] and "status JOB" in command["usage_hint"]
    hint = command["usage_hint"].split(" | ")
    # Every verb of the bot's table is in Slack's hint (as typed, with its job id) and the help.
    for verb in VERBS:
        typed = f"{verb.name} JOB" if verb.needs_job else verb.name
        assert any(part.startswith(typed) for part in hint), verb.name
        assert f"/finetune {verb.name}" in HELP


def test_exactly_the_scopes_the_code_uses() -> None:
    scopes = set(load()["oauth_config"]["scopes"]["bot"])
    assert scopes == {
        "app_mentions:read",  # app_mention listener
        "channels:history",  # message.channels: files shared in public channels
        "groups:history",  # message.groups: files shared in private channels
        "commands",  # /finetune
        "chat:write",  # chat.postMessage, chat.update, chat.postEphemeral
        "files:read",  # files.info, url_private_download
        "files:write",  # files.getUploadURLExternal, files.completeUploadExternal
    }


def test_socket_mode_interactivity_and_events_are_on() -> None:
    settings = load()["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "app_home_opened",  # the Home tab is rebuilt on opening
        "app_mention",
        "message.channels",
        "message.groups",
    }


def test_the_home_tab_is_on_and_its_event_has_a_listener() -> None:
    home = load()["features"]["app_home"]
    # views.publish answers not_enabled without it.
    assert home["home_tab_enabled"] is True
    # The bot reads no direct messages (no im scopes), so it offers no Messages tab.
    assert home["messages_tab_enabled"] is False
    events = load()["settings"]["event_subscriptions"]["bot_events"]
    assert "app_home_opened" in events

    class Recorder:  # what register() asks of Bolt's app
        def __init__(self) -> None:
            self.events: list[object] = []

        def event(self, matcher: object):
            self.events.append(matcher)
            return lambda listener: listener

    app = Recorder()
    event_listeners.register(app)  # type: ignore[arg-type]
    assert "app_home_opened" in app.events
