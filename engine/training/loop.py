"""One fine-tuning run: setup first, then a single loop that reads top to bottom.

The loss is the mean cross-entropy over the assistant tokens of a batch. Logits are
computed only at positions that have a target, which skips most of the vocabulary
projection (a fifth of this model's compute) for prompt tokens.
"""

import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from engine.model_registry import resolve_model
from engine.training import fused
from engine.training.adapters import merge_adapter
from engine.training.attention import ATTENTION_NAME
from engine.training.data import (
    IGNORE,
    DatasetStats,
    Example,
    collate_packed,
    collate_padded,
    load_dataset,
)
from engine.training.events import (
    BaseEvaluationEvent,
    CheckpointEvent,
    CheckpointMetrics,
    DatasetEvent,
    Emit,
    EpochEvent,
    ProgressEvent,
    StartedEvent,
    SucceededEvent,
)
from engine.training.families import is_plain_decoder
from engine.training.loss import linear_cross_entropy_sum
from engine.training.spec import Hyperparameters, TrainSpec
from engine.training.tracking import (
    base_metrics,
    epoch_metrics,
    open_tracker,
    progress_metrics,
)

STATE_FILE = "trainer_state.pt"
# Seconds between progress lines (the first and last step always report).
PROGRESS_EVERY_S = 5.0


@dataclass
class Run:
    """Everything the loop needs, built by `setup`."""

    model: Any
    tokenizer: Any
    device: torch.device
    autocast_dtype: torch.dtype | None
    train: list[Example]
    valid: list[Example]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    total_steps: int
    start_epoch: int
    start_step: int
    trained_tokens: int
    # The validation loss before the first step (see `evaluate_base`); a resumed run reads
    # it from its checkpoint. None without a validation file.
    base_valid_loss: float | None = None


def pick_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_autocast(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 mixed precision (float32 weights, bf16 matmuls) or None for plain float32."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    # Native bf16 dot products: faster matmuls and half the activation memory.
    cpu_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    if device.type == "cpu" and cpu_bf16():
        return torch.bfloat16
    return None


def load_base(
    model_path: Path,
    device: torch.device,
    merge_adapters: list[Path] | None = None,
    name: str | None = None,
    attention: str = ATTENTION_NAME,
) -> tuple[Any, Any]:
    """The model and tokenizer at `model_path`, with `merge_adapters` merged in, in order.

    `name` replaces the model's recorded origin, which a LoRA adapter trained on it saves as
    `base_model_name_or_path`: a merged model is no longer the folder it was loaded from.
    `attention`: training's default attends within each packed example only (see
    engine.training.attention); generation, which reads a key/value cache, needs "sdpa".
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=torch.float32, attn_implementation=attention
    )
    for adapter in merge_adapters or []:
        model = merge_adapter(model, adapter)
    if name is not None:
        model.name_or_path = name
    model.to(device)
    model.config.use_cache = False
    return model, tokenizer


def add_lora(model: Any, hp: Hyperparameters) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def cast_frozen_linears(model: Any, dtype: torch.dtype) -> None:
    """Store frozen linear weights in the autocast dtype.

    Autocast would cast them to it at every use anyway, so the numbers are the same;
    this skips a copy of every base weight each step and halves their memory. Weights
    shared with the embedding (tied output layers) stay as they are.
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (
            isinstance(module, torch.nn.Linear)
            and not weight.requires_grad
            and id(weight) not in embeddings
        ):
            module.to(dtype)


def lr_lambda(total_steps: int, warmup_ratio: float):
    """Linear warmup over warmup_ratio of the steps, then linear decay to zero."""
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's shuffled example order, the same for the same seed and epoch."""
    order = list(range(n))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _decoder_and_head(model: Any) -> tuple[Any, torch.Tensor] | None:
    """The decoder stack and the output weight, when logits are hidden @ weight.T."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = causal_lm.get_output_embeddings()
    decoder = getattr(causal_lm, causal_lm.base_model_prefix, None)
    if (
        not is_plain_decoder(causal_lm)
        or decoder is None
        or type(head) is not torch.nn.Linear
        or head.bias is not None
    ):
        return None
    return decoder, head.weight


def batch_loss(run: "Run", batch: list[Example], packing: bool) -> tuple[torch.Tensor, int]:
    """(sum of token losses, number of target tokens) for one batch."""
    pad_id = run.tokenizer.pad_token_id or 0
    extra: dict[str, Any] = {}
    if packing:
        tensors, extra["segment_bounds"] = collate_packed(batch)
    else:
        tensors = collate_padded(batch, pad_id)
    # Which positions carry a target is read here on the CPU, so no step waits on the GPU.
    targets = tensors.pop("targets")
    inputs = {k: v.to(run.device) for k, v in tensors.items()}
    dtype = run.autocast_dtype or torch.float32
    split = _decoder_and_head(run.model)
    with torch.autocast(run.device.type, dtype=dtype, enabled=bool(run.autocast_dtype)):
        if split is not None:
            # Only positions with a target need logits, made a chunk at a time.
            decoder, weight = split
            hidden = decoder(**inputs, **extra, use_cache=False).last_hidden_state
            flat = targets.reshape(-1)
            positions = (flat != IGNORE).nonzero().squeeze(1)
            picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions.to(run.device))
            wanted = flat[positions].to(run.device)
            return linear_cross_entropy_sum(picked, weight, wanted, dtype), len(positions)
        # Only positions with a target need logits; the same columns serve every row.
        columns = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
        logits = run.model(
            **inputs, **extra, logits_to_keep=columns.to(run.device), use_cache=False
        ).logits
    wanted = targets[:, columns]
    loss_sum = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        wanted.reshape(-1).to(run.device),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return loss_sum, int((wanted != IGNORE).sum())


@torch.no_grad()
def evaluate(run: Run, examples: list[Example], hp: Hyperparameters) -> float:
    """Mean loss per assistant token over `examples`."""
    was_training = run.model.training
    run.model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), hp.batch_size):
        loss_sum, n = batch_loss(run, examples[i : i + hp.batch_size], hp.packing)
        total += float(loss_sum)
        count += n
    run.model.train(was_training)
    return total / max(1, count)


def setup(spec: TrainSpec, emit: Emit) -> Run:
    hp = spec.hyperparameters
    device = pick_device(spec.device)
    if device.type == "cpu":
        # One intra-op thread per core; the default can be lower inside containers.
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    model_path = resolve_model(
        spec.base_model or spec.model, spec.models_dir, spec.extra_model_dirs
    )
    resume = spec.resume_from
    if resume is not None and not (resume / STATE_FILE).is_file():
        raise FileNotFoundError(2, f"no resumable checkpoint ({STATE_FILE} missing)", str(resume))
    # A full fine-tune resumes from the weights it saved; LoRA from the base plus its adapter.
    load_from = resume if (resume is not None and not hp.lora) else model_path
    # Saved full weights already hold the merged adapters.
    merge = spec.merge_adapters if load_from == model_path else []
    name = spec.model if spec.base_model else None
    model, tokenizer = load_base(load_from, device, merge, name)

    train, stats = load_dataset(spec.training_file, tokenizer, hp.context_length)
    valid: list[Example] = []
    vstats: DatasetStats | None = None
    if spec.validation_file is not None:
        valid, vstats = load_dataset(spec.validation_file, tokenizer, hp.context_length)
    message = stats.message(spec.training_file.name)
    if vstats is not None:
        message += "; " + vstats.message(spec.validation_file.name)
    emit(
        DatasetEvent(
            examples=stats.examples,
            validation_examples=vstats.examples if vstats else 0,
            tokens=stats.tokens,
            truncated=stats.truncated + (vstats.truncated if vstats else 0),
            dropped=stats.dropped + (vstats.dropped if vstats else 0),
            context_length=hp.context_length,
            message=message,
        )
    )

    torch.manual_seed(spec.seed)
    if hp.lora:
        model = add_lora(model, hp)
        if resume is not None:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(model, load_file(resume / "adapter_model.safetensors"))
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    steps_per_epoch = math.ceil(len(train) / hp.batch_size)
    total_steps = steps_per_epoch * hp.n_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, hp.warmup_ratio)
    )
    start_epoch = start_step = trained_tokens = 0
    base_valid_loss: float | None = None
    if resume is not None:
        state = torch.load(resume / STATE_FILE, map_location=device, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, start_step = state["epoch"], state["step"]
        trained_tokens = state["trained_tokens"]
        # Absent from checkpoints saved before the figure was kept: then the job has none.
        base_valid_loss = state.get("base_valid_loss")
    autocast_dtype = pick_autocast(device, spec.precision)
    if hp.lora and autocast_dtype is not None:
        cast_frozen_linears(model, autocast_dtype)
    fused.speed_up(model)
    emit(
        StartedEvent(
            device=device.type,
            dtype=str(autocast_dtype or torch.float32).removeprefix("torch."),
            model=spec.model,
            trainable_parameters=sum(p.numel() for p in trainable),
            total_parameters=sum(p.numel() for p in model.parameters()),
            total_steps=total_steps,
            epochs=hp.n_epochs,
            resumed_from_step=start_step if resume is not None else None,
        )
    )
    return Run(
        model=model,
        tokenizer=tokenizer,
        device=device,
        autocast_dtype=autocast_dtype,
        train=train,
        valid=valid,
        optimizer=optimizer,
        scheduler=scheduler,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        start_epoch=start_epoch,
        start_step=start_step,
        trained_tokens=trained_tokens,
        base_valid_loss=base_valid_loss,
    )


def save_checkpoint(run: Run, spec: TrainSpec, step: int, epoch: int) -> tuple[Path, list[str]]:
    """Write the result files and the resume state; the folder appears whole or not at all."""
    final = spec.output_dir / "checkpoints" / f"step-{step}"
    work = final.with_name(f".step-{step}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run.model.save_pretrained(work)
    if spec.hyperparameters.lora:
        files = ["adapter_model.safetensors", "adapter_config.json"]
        (work / "README.md").unlink(missing_ok=True)  # PEFT's model card template
    else:
        run.tokenizer.save_pretrained(work)
        files = sorted(p.name for p in work.iterdir() if p.is_file())
    state = {
        "step": step,
        "epoch": epoch,
        "trained_tokens": run.trained_tokens,
        "base_valid_loss": run.base_valid_loss,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
    }
    torch.save(state, work / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return final, files


def evaluate_base(run: Run, spec: TrainSpec, emit: Emit) -> float | None:
    """The validation loss of the model before its first step, measured and reported once.

    The same evaluation as each epoch's end, so "3.57 before training, 3.51 after epoch 3"
    compares like with like. A resumed run's model is already trained: it keeps the figure
    its checkpoint recorded (`setup`) and measures nothing. Returns the figure measured now,
    None when nothing was.
    """
    if not run.valid or spec.resume_from is not None:
        return None
    run.base_valid_loss = evaluate(run, run.valid, spec.hyperparameters)
    emit(BaseEvaluationEvent(valid_loss=run.base_valid_loss))
    return run.base_valid_loss


def train(spec: TrainSpec, emit: Emit) -> Run:
    """Run the job to the end; returns the trained run (benchmarks evaluate it)."""
    hp = spec.hyperparameters
    run = setup(spec, emit)
    tracker = open_tracker(spec, emit)
    optimizer, scheduler = run.optimizer, run.scheduler
    trainable = optimizer.param_groups[0]["params"]
    step = run.start_step
    train_time = 0.0
    tokens_timed = 0
    last_report = 0.0
    base_valid_loss = evaluate_base(run, spec, emit)
    if base_valid_loss is not None:
        tracker.log(base_metrics(base_valid_loss), step)

    for epoch in range(run.start_epoch + 1, hp.n_epochs + 1):
        # Reseeded each epoch so a resumed run draws the same dropout masks as an unbroken one.
        torch.manual_seed(spec.seed * 1_000 + epoch)
        # Summed on the device; read (a wait for the GPU) only when reported.
        epoch_loss = torch.zeros((), device=run.device)
        epoch_targets = 0
        batches = epoch_batches(len(run.train), hp.batch_size, spec.seed, epoch)
        for number, indices in enumerate(batches, start=1):
            batch = [run.train[i] for i in indices]
            started = time.perf_counter()

            loss_sum, n_targets = batch_loss(run, batch, hp.packing)
            loss = loss_sum / n_targets
            loss.backward()
            if hp.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, hp.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            step += 1
            epoch_loss += loss_sum.detach()
            epoch_targets += n_targets
            now = time.monotonic()
            first = step == run.start_step + 1
            report = first or step == run.total_steps or now - last_report >= PROGRESS_EVERY_S
            # Reading the loss waits for the device, so it falls inside the timed span
            # and tokens per second stays true on a GPU, where steps run ahead.
            step_loss = loss.item() if report or number == len(batches) else None
            batch_tokens = sum(len(e.input_ids) for e in batch)
            run.trained_tokens += batch_tokens
            tokens_timed += batch_tokens
            train_time += time.perf_counter() - started
            if report:
                last_report = now
                steps_done = step - run.start_step
                progress = ProgressEvent(
                    step=step,
                    total_steps=run.total_steps,
                    epoch=epoch,
                    loss=step_loss,
                    learning_rate=lr,
                    tokens_per_second=tokens_timed / max(train_time, 1e-9),
                    trained_tokens=run.trained_tokens,
                    eta_seconds=train_time / steps_done * (run.total_steps - step),
                )
                emit(progress)
                tracker.log(progress_metrics(progress), step)

        train_loss = epoch_loss.item() / max(1, epoch_targets)
        valid_loss = evaluate(run, run.valid, hp) if run.valid else None
        ended = EpochEvent(epoch=epoch, step=step, train_loss=train_loss, valid_loss=valid_loss)
        emit(ended)
        tracker.log(epoch_metrics(ended), step)
        path, files = save_checkpoint(run, spec, step, epoch)
        emit(
            CheckpointEvent(
                step=step,
                epoch=epoch,
                path=str(path),
                files=files,
                metrics=CheckpointMetrics(
                    train_loss=train_loss,
                    valid_loss=valid_loss,
                    base_valid_loss=run.base_valid_loss,
                ),
            )
        )

    tracker.finish()
    emit(SucceededEvent(trained_tokens=run.trained_tokens, trained_steps=step))
    return run
