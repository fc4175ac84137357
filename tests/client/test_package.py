"""The `client` package: every public name is importable from it, and the pure modules the
engine takes (hyperparameters, validation) load without the HTTP client, so that each engine
process and training worker starts without httpx."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import client

PACKAGE = Path(client.__file__)


def _type_checking_imports() -> dict[str, str]:
    """What the `if TYPE_CHECKING:` block of client/__init__.py imports, name → module."""
    tree = ast.parse(PACKAGE.read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    return {
        alias.name: statement.module
        for statement in block.body
        if isinstance(statement, ast.ImportFrom) and statement.module
        for alias in statement.names
    }


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in client.__all__:
        home = importlib.import_module(client._HOMES[name])
        assert getattr(client, name) is getattr(home, name), name
    namespace: dict[str, object] = {}
    exec("from client import *", namespace)
    assert set(client.__all__) <= set(namespace)


def test_the_names_for_type_checkers_are_those_loaded_at_run_time() -> None:
    assert _type_checking_imports() == client._HOMES


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        client.NoSuchThing  # noqa: B018
    except AttributeError as error:
        assert "NoSuchThing" in str(error)
    else:
        raise AssertionError("client.NoSuchThing did not raise")


def test_the_pure_modules_the_engine_takes_load_without_httpx() -> None:
    code = (
        "import sys; import client.hyperparameters, client.validation, engine.training.spec; "
        "print(sorted(m for m in ('httpx', 'client.api') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
