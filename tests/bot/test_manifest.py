"""manifest.yml creates the app the code needs: the command, the events, exactly the scopes."""

from pathlib import Path

import yaml

from bot.blocks.notices import USAGE

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def load() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_the_finetune_command_has_a_usage_hint() -> None:
    (command,) = load()["features"]["slash_commands"]
    assert command["command"] == "/finetune"
    assert "create" in command["usage_hint"] and "status JOB" in command["usage_hint"]
    for verb in ("help", "models", "list", "events", "checkpoints", "cancel", "download", "watch"):
        assert verb in USAGE and verb in command["usage_hint"]


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
        "app_mention",
        "message.channels",
        "message.groups",
    }
