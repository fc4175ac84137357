"""Training throughput of the engine's trainer against TRL's SFTTrainer, on this machine.

    python -m bench.engine_training [--train-examples 48] [--rounds 1]

Same model (the built-in SmolLM2-135M-Instruct), same generated chat data (200
examples of 60-500 tokens; each run trains one epoch on the first --train-examples),
LoRA r=8 (alpha 16) on all linear layers, batch 4, lr 2e-4, loss on assistant tokens
only. Each configuration trains in its own subprocess, and the rounds interleave
them, so load from other processes on a shared machine hits all of them alike.

Figures per run: non-padding tokens per second while stepping, peak resident
memory of the process, and the final loss: the mean assistant-token loss of the
trained model on 16 held-out examples, computed by the same code for every run.
"""

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CONFIGS = ["ours", "trl-fastest", "trl-default"]
BASELINE = "trl-fastest"
HP = {"batch_size": 4, "learning_rate": 2e-4, "lora_r": 8, "lora_alpha": 16, "seed": 0}
EVAL_EXAMPLES = 16

WORDS = (
    "the a of light shadow city river mountain portrait soft warm cold golden hour lens "
    "wide angle close up cinematic moody vivid pastel neon forest street night morning "
    "rain fog texture detail sharp blurred background subject composition frame color "
    "palette contrast grain film digital painting watercolor oil sketch render studio "
    "natural window glow reflection glass metal stone wood silk velvet quiet busy calm "
    "dramatic gentle bright dark deep shallow focus depth field motion still figure face"
).split()


def generate(path: Path, n: int, tokenizer: Any, seed: int = 0) -> None:
    """n chat examples whose rendered length is between 60 and 500 tokens."""
    rng = random.Random(seed)
    with path.open("w") as out:
        for _ in range(n):
            target = rng.randint(60, 500)
            user = " ".join(rng.choices(WORDS, k=rng.randint(3, 20)))
            words = rng.choices(WORDS, k=target)
            while True:
                messages = [
                    {"role": "system", "content": "Enhance the image prompt."},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": " ".join(words)},
                ]
                length = len(tokenizer.apply_chat_template(messages, tokenize=True))
                if length <= target or len(words) <= 2:
                    break
                words = words[: max(2, len(words) - (length - target))]
            out.write(json.dumps({"messages": messages}) + "\n")


def _subset(data: Path, start: int, count: int, dest: Path) -> Path:
    lines = data.read_text().splitlines()[start : start + count]
    dest.write_text("\n".join(lines) + "\n")
    return dest


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(model_dir: Path, train: Path, work: Path, device: str) -> tuple[float, Any]:
    from engine.model_registry import BUILTIN_MODEL_ID
    from engine.training import loop
    from engine.training.events import ProgressEvent
    from engine.training.spec import TrainSpec

    spec = TrainSpec(
        job_id="bench",
        model=BUILTIN_MODEL_ID,
        models_dir=model_dir.parent,
        training_file=train,
        output_dir=work,
        hyperparameters={
            "batch_size": HP["batch_size"],
            "learning_rate": HP["learning_rate"],
            "n_epochs": 1,
            "lora": True,
            "lora_r": HP["lora_r"],
            "lora_alpha": HP["lora_alpha"],
            "context_length": 1024,
        },
        seed=HP["seed"],
        device=device,
    )
    events: list = []
    run = loop.train(spec, events.append)
    progress = [e for e in events if isinstance(e, ProgressEvent)][-1]
    return progress.tokens_per_second, run


def run_trl(
    model_dir: Path, train: Path, work: Path, fastest: bool, device: str
) -> tuple[float, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    if device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = []
    for line in train.read_text().splitlines():
        messages = json.loads(line)["messages"]
        # Prompt/completion form: TRL then computes the loss on the completion only, as we do.
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    options: dict[str, Any] = {"max_length": 1024}
    if fastest:
        # Padding-free TRL does not truncate; every example here is under 500 tokens anyway.
        options = {"padding_free": True, "gradient_checkpointing": False, "max_length": None}
    config = SFTConfig(
        output_dir=str(work),
        per_device_train_batch_size=HP["batch_size"],
        learning_rate=HP["learning_rate"],
        num_train_epochs=1,
        lr_scheduler_type="linear",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=HP["seed"],
        use_cpu=device == "cpu",
        **options,
    )
    timing: dict[str, float] = {}

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            timing.setdefault("start", time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            timing["end"] = time.perf_counter()

    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=HP["lora_r"],
            lora_alpha=HP["lora_alpha"],
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
        callbacks=[StepTimer()],
    )
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    trainer.train()
    model = trainer.model
    if getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    run = SimpleNamespace(model=model, tokenizer=tokenizer, device=torch.device(device))
    return tokens / (timing["end"] - timing["start"]), run


def flops_per_token(model_dir: Path, mean_length: float) -> float:
    """Model FLOPs to train on one token, as PaLM's MFU counts them.

    6 per weight of every matmul (the output projection included) plus the attention
    scores, 12 * layers * d_model * sequence length. LoRA skips the gradients of the
    frozen weights, so the hardware does about two thirds of this; MFU quoted with
    this count is the usual yardstick, not the work actually done.
    """
    config = json.loads((model_dir / "config.json").read_text())
    d, layers = config["hidden_size"], config["num_hidden_layers"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or d // heads
    attention = d * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * d * config["intermediate_size"]
    head = d * config["vocab_size"]
    return 6 * (layers * (attention + mlp) + head) + 12 * layers * d * mean_length


def _device_peak_tflops(name: str) -> float | None:
    """Dense bf16 peak of the GPUs these figures were taken on (vendor data sheets)."""
    for marker, tflops in (("H100", 989.4), ("H200", 989.4), ("A100", 312.0)):
        if marker in name:
            return tflops
    return None


def child(
    config: str, model_dir: Path, train: Path, evaluation: Path, result: Path, device: str
) -> None:
    import torch

    from engine.training import loop
    from engine.training.data import load_dataset
    from engine.training.spec import Hyperparameters

    resolved = loop.pick_device(device).type
    with tempfile.TemporaryDirectory() as work:
        if config == "ours":
            tps, run = run_ours(model_dir, train, Path(work), resolved)
        else:
            fastest = config == "trl-fastest"
            tps, run = run_trl(model_dir, train, Path(work), fastest, resolved)
        figures: dict[str, Any] = {"tokens_per_second": tps, "peak_rss_mb": _peak_rss_mb()}
        if resolved == "cuda":
            figures["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            figures["gpu_name"] = torch.cuda.get_device_name()
        # Every run is scored by the same code in the same precision.
        run.autocast_dtype = loop.pick_autocast(run.device, "auto")
        examples, _ = load_dataset(evaluation, run.tokenizer, 1024)
        hp = Hyperparameters(batch_size=HP["batch_size"], packing=True)
        figures["loss"] = loop.evaluate(run, examples, hp)
    result.write_text(json.dumps(figures))


def parent(train_examples: int, rounds: int, configs: list[str], device: str) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from engine.model_registry import ensure_builtin
    from engine.training.data import load_dataset
    from engine.training.loop import pick_device

    OUT.mkdir(parents=True, exist_ok=True)
    model_dir = ensure_builtin(OUT / "models")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = OUT / "engine_training_data.jsonl"
    generate(data, 200, tokenizer)
    train = _subset(data, 0, train_examples, OUT / "engine_training_train.jsonl")
    evaluation = _subset(
        data, 200 - EVAL_EXAMPLES, EVAL_EXAMPLES, OUT / "engine_training_eval.jsonl"
    )
    _, stats = load_dataset(train, tokenizer, 1024)
    per_token = flops_per_token(model_dir, stats.tokens / stats.examples)
    where = pick_device(device).type
    if where == "cpu":
        where = f"{len(os.sched_getaffinity(0))} CPU threads"
    print(
        f"SmolLM2-135M-Instruct, LoRA r={HP['lora_r']} all linear, batch {HP['batch_size']}, "
        f"{train_examples} training examples (60-500 tokens), 1 epoch, "
        f"{where}, {rounds} interleaved round(s)",
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for round_number in range(1, rounds + 1):
        for config in configs:
            result = OUT / f"engine_training_{config}.json"
            result.unlink(missing_ok=True)
            started = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "bench.engine_training", "--child", config,
                 str(model_dir), str(train), str(evaluation), str(result), device],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )  # fmt: skip
            if proc.returncode != 0 or not result.exists():
                tail = (proc.stderr or "").strip().splitlines()[-5:]
                print(f"  {config}: failed (exit {proc.returncode}): " + " | ".join(tail))
                continue
            figures = json.loads(result.read_text())
            results[config].append(figures)
            gpu = f"  GPU {figures['gpu_peak_mb']:7.0f} MB" if "gpu_peak_mb" in figures else ""
            print(
                f"  round {round_number} {config:12s} {figures['tokens_per_second']:7.1f} tok/s  "
                f"{figures['peak_rss_mb']:7.0f} MB{gpu}  loss {figures['loss']:.4f}  "
                f"({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    print_table(results, per_token)
    return 0 if all(results.values()) else 1


def print_table(results: dict[str, list[dict[str, Any]]], per_token: float) -> None:
    on_gpu = any("gpu_name" in r for runs in results.values() for r in runs)
    extra = " GPU peak MB | MFU |" if on_gpu else ""
    print(
        "\n| configuration | tokens/s (median) | peak RSS MB | final loss | speed vs TRL fastest |"
        + extra
    )
    print("| --- | --- | --- | --- | --- |" + (" --- | --- |" if on_gpu else ""))
    base = results.get(BASELINE) or []
    for config, runs in results.items():
        if not runs:
            print(f"| {config} | failed | | | |")
            continue
        tps = statistics.median(r["tokens_per_second"] for r in runs)
        rss = max(r["peak_rss_mb"] for r in runs)
        loss = statistics.median(r["loss"] for r in runs)
        # Paired per round: both ran back to back, under the same outside load.
        ratios = [
            r["tokens_per_second"] / b["tokens_per_second"]
            for r, b in zip(runs, base, strict=False)
        ]
        ratio = f"{statistics.median(ratios):.2f}x" if ratios else "n/a"
        row = f"| {config} | {tps:.1f} | {rss:.0f} | {loss:.4f} | {ratio} |"
        if on_gpu:
            peak = _device_peak_tflops(runs[0].get("gpu_name", ""))
            mfu = f"{100 * tps * per_token / (peak * 1e12):.2f}%" if peak else "n/a"
            row += f" {max(r['gpu_peak_mb'] for r in runs):.0f} | {mfu} |"
        print(row)
    if on_gpu:
        name = next(r["gpu_name"] for runs in results.values() for r in runs)
        print(f"\nGPU: {name}; MFU at {per_token / 1e6:.0f} MFLOP per token (PaLM's count).")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_training", description=__doc__)
    parser.add_argument(
        "--train-examples", type=int, default=48, help="examples trained on (max 184)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every config")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: a GPU if any"
    )
    parser.add_argument("--child", nargs=6, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config, model_dir, train, evaluation, result, device = args.child
        child(config, Path(model_dir), Path(train), Path(evaluation), Path(result), device)
        return 0
    count = min(max(args.train_examples, HP["batch_size"]), 200 - EVAL_EXAMPLES)
    return parent(count, args.rounds, [c for c in args.configs.split(",") if c], args.device)


if __name__ == "__main__":
    sys.exit(main())
