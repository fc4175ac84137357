"""`make bench`: run every benchmark module in this folder, one after another.

Each benchmark is a module `bench/<name>.py` with a `main()` that prints its figures;
`python -m bench NAME...` runs only those.
"""

import importlib
import pkgutil
import sys
from pathlib import Path


def benchmark_names() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        info.name for info in pkgutil.iter_modules([str(here)]) if not info.name.startswith("_")
    )


def main(argv: list[str]) -> int:
    names = argv or benchmark_names()
    unknown = sorted(set(names) - set(benchmark_names()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(benchmark_names())}")
        return 2
    failed = []
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        # Each benchmark parses its own options; run them with their defaults here.
        saved, sys.argv = sys.argv, [f"bench.{name}"]
        try:
            code = module.main()
        finally:
            sys.argv = saved
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
