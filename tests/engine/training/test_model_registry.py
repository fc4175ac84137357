"""Which models the engine offers and where it finds them (the built-in one is converted
in the end-to-end test: converting takes tens of seconds)."""

import shutil
from pathlib import Path

import pytest

from engine.model_registry import (
    BUILTIN_MODEL_ID,
    ModelNotFoundError,
    available_models,
    builtin_gguf_path,
    resolve_model,
)


@pytest.fixture
def local_models(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A folder holding two model folders and one folder that is not a model."""
    root = tmp_path / "local"
    shutil.copytree(tiny_model_dir, root / "tiny-a")
    shutil.copytree(tiny_model_dir, root / "tiny-b")
    (root / "notes").mkdir()
    return root


def test_the_built_in_model_ships_with_the_engine():
    gguf = builtin_gguf_path()
    assert gguf is not None and gguf.suffix == ".gguf"


def test_available_models_lists_the_built_in_model_and_local_folders(
    local_models: Path, tiny_model_dir: Path, tmp_path: Path
):
    models = available_models(tmp_path / "models", [local_models, tiny_model_dir])
    assert [m.id for m in models] == [BUILTIN_MODEL_ID, "tiny-a", "tiny-b", "tiny-llama"]
    assert models[0].path is None  # not converted yet
    assert models[1].path == (local_models / "tiny-a").resolve()
    assert {m.owned_by for m in models[1:]} == {"local"}


def test_a_local_model_resolves_to_its_folder(local_models: Path, tmp_path: Path):
    assert (
        resolve_model("tiny-b", tmp_path / "models", [local_models])
        == (local_models / "tiny-b").resolve()
    )


def test_an_unknown_model_says_what_is_available(local_models: Path, tmp_path: Path):
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("org/unknown-model", tmp_path / "models", [local_models])
    message = str(caught.value)
    assert "'org/unknown-model' not found" in message
    assert "HF_HUB_OFFLINE is set" in message  # the tests run offline
    assert f"available: {BUILTIN_MODEL_ID}, tiny-a, tiny-b" in message
