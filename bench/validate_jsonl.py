"""Benchmark: dataset validation throughput and peak memory.

Compares, on one generated ~100 MB chat JSONL and in one run (median of several):
- ours: `validate_file` with every check and statistic (one process per core for a large
  file), and ours-1proc: the same in a single process;
- plain: a `json.loads`-per-line loop doing only structural checks;
- together: the `together` package's `check_file` at version 2.14.0 (the `bench` extra).

Each measurement runs in its own process so peak memory is its own
(peak RSS minus the RSS once imports are done; "worker MB" is the largest RSS of a
forked worker process, shared pages included, when the checker uses several).

    .venv/bin/python -m bench.validate_jsonl [--size-mb 100] [--repeat 5]
"""

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

WORDS = (
    "light shadow mountain river city neon portrait dragon forest ocean castle "
    "cinematic detailed golden misty vivid soft dramatic ancient futuristic quiet "
    "café naïve façade São Paulo Zürich 東京 夜景 сказка ночь"
).split()

RUNNER = r"""
import json, resource, sys, time
def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
which, path = sys.argv[1], sys.argv[2]
if which == "ours":
    from client.validation import validate_file
    run = lambda: validate_file(path).valid
elif which == "ours-1proc":
    from client.validation import validate_file
    run = lambda: validate_file(path, workers=1).valid
elif which == "together":
    from together.lib.utils.files import check_file
    run = lambda: check_file(path)["is_check_passed"]
else:
    ROLES = {"system", "user", "assistant"}
    def run():
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                obj = json.loads(line)
                if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
                    return False
                for m in obj["messages"]:
                    if not isinstance(m, dict) or m.get("role") not in ROLES:
                        return False
                    if not isinstance(m.get("content"), str):
                        return False
        return True
base = rss_kb()
start = time.perf_counter()
ok = run()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"ok": bool(ok), "seconds": seconds, "peak_mb": max(0, peak - base) / 1024,
                  "child_mb": child / 1024}))
"""


def generate(path: Path, size_mb: int, seed: int = 7) -> int:
    """Writes a valid chat JSONL of about `size_mb` MB; returns the number of examples."""
    rng = random.Random(seed)
    target = size_mb * 1024 * 1024
    written = examples = 0
    with path.open("w", encoding="utf-8") as f:
        while written < target:
            turns = rng.randint(1, 3)
            messages = [{"role": "system", "content": "You enhance image prompts."}]
            for _ in range(turns):
                messages.append(
                    {"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(3, 20)))}
                )
                messages.append(
                    {
                        "role": "assistant",
                        "content": " ".join(rng.choices(WORDS, k=rng.randint(15, 70))),
                    }
                )
            if turns == 1 and rng.random() < 0.5:
                messages = messages[1:]  # some examples have no system prompt: 2 messages
            line = json.dumps({"messages": messages}, ensure_ascii=False) + "\n"
            f.write(line)
            written += len(line.encode("utf-8"))
            examples += 1
    return examples


def measure(which: str, path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, which, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{which} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.validate_jsonl")
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-together", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"chat_{args.size_mb}mb.jsonl"
    if not path.exists():
        examples = generate(path, args.size_mb)
        print(f"generated {path} ({examples:,} examples)")
    size_mb = path.stat().st_size / 1024 / 1024
    contenders = ["ours", "ours-1proc", "plain"]
    try:
        import together.lib.utils.files  # noqa: F401

        if not args.skip_together:
            contenders.append("together")
    except ImportError:
        print("together==2.14.0 not installed (pip install '.[bench]'): skipping it")
    results: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(args.repeat):  # interleaved, so machine noise hits all alike
        for name in contenders:
            result = measure(name, path)
            if not result["ok"]:
                print(f"{name} rejected the generated file")
                return 1
            results[name].append(result)
    print(f"\nfile: {size_mb:.1f} MB, median of {args.repeat} runs")
    print(
        f"{'checker':<10} {'seconds':>8} {'MB/s':>8} {'peak MB':>8} {'worker MB':>9} {'ours is':>8}"
    )
    ours = statistics.median(r["seconds"] for r in results["ours"])
    for name, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        child = max(r["child_mb"] for r in runs)
        print(
            f"{name:<10} {seconds:8.3f} {size_mb / seconds:8.1f} {peak:8.1f} {child:9.1f} "
            f"{seconds / ours:7.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
