"""Dataset load time: cold (parse the ARFF files) vs warm (parsed cache), side by side.

    python bench/load_speed.py spo_GO derisi_FUN
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from tabulate import tabulate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("datasets", nargs="*", default=["spo_GO", "derisi_FUN"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ["HMLEARN_CACHE"] = tempfile.mkdtemp(prefix="hmlearn-bench-")  # a cold cache to start from
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import load_dataset

    rows = []
    for name in args.datasets:
        splits = get_spec(name).splits
        started = time.perf_counter()
        load_dataset(name, splits)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            load_dataset(name, splits)
            warm.append(time.perf_counter() - started)
        best = min(warm)
        rows.append({"dataset": name, "splits": "+".join(splits), "cold s": f"{cold:.3f}", "warm s (best)": f"{best:.3f}",
                     "cold / warm": f"{cold / best:.1f}x"})
    print(tabulate(rows, headers="keys"))


if __name__ == "__main__":
    main()
