"""Client settings from the environment."""

import os
from dataclasses import dataclass

from client.constants import DEFAULT_BASE_URL
from client.errors import ConfigError

API_KEY_VAR = "NEBIUS_API_KEY"
BASE_URL_VAR = "NEBIUS_BASE_URL"

MISSING_KEY_MESSAGE = (
    f"{API_KEY_VAR} is not set. Create a key in the Nebius Token Factory console "
    f"(API keys), then run `export {API_KEY_VAR}=<your key>` "
    f"(and `export {BASE_URL_VAR}=<url>` to use another server, e.g. the local engine)."
)


@dataclass(frozen=True)
class Settings:
    api_key: str
    base_url: str = DEFAULT_BASE_URL

    def __repr__(self) -> str:  # never print the key
        return f"Settings(api_key='***', base_url={self.base_url!r})"


def normalize_base_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{BASE_URL_VAR} must start with http:// or https:// (got {url!r})")
    # A trailing slash makes relative paths join under /v1/ rather than replace it.
    return url if url.endswith("/") else url + "/"


def resolve_settings(api_key: str | None = None, base_url: str | None = None) -> Settings:
    """Explicit values win; otherwise the environment; a missing key is an error."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_VAR, "")
    key = key.strip()
    if not key:
        raise ConfigError(MISSING_KEY_MESSAGE)
    url = base_url or os.environ.get(BASE_URL_VAR, "").strip() or DEFAULT_BASE_URL
    return Settings(api_key=key, base_url=normalize_base_url(url))
