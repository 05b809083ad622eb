"""Dataset load time: cold (parse the ARFF files) vs warm (parsed cache), side by side.

    python bench/load_speed.py spo_GO derisi_FUN

:func:`measure_load` is the measurement (bench/suite.py calls it too): the first load into an
empty parsed cache parses the files and writes the cache ("cold"); the next ``repeats`` loads
read the cache ("warm"). The dataset files themselves are found as usual (no download: a
dataset that is not at hand raises ``DatasetNotFoundError``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def parsed_cache(path: str | Path | None = None):
    """``$HMLEARN_CACHE`` pointed at ``path`` (a new empty folder, removed afterwards, when None).

    Datasets downloaded into the user cache stay findable: its ``hmc_data`` folder becomes
    ``$HMLEARN_DATA`` meanwhile, unless that is set already."""
    from hmlearn.data.store import cache_dir

    made = path is None
    folder = Path(tempfile.mkdtemp(prefix="hmlearn-bench-")) if made else Path(path)
    previous = {key: os.environ.get(key) for key in ("HMLEARN_CACHE", "HMLEARN_DATA")}
    os.environ["HMLEARN_DATA"] = previous["HMLEARN_DATA"] or str(cache_dir() / "hmc_data")
    os.environ["HMLEARN_CACHE"] = str(folder)
    try:
        yield folder
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if made:
            shutil.rmtree(folder, ignore_errors=True)


def load_all_splits(name: str) -> int:
    """Load every split file of dataset ``name``; returns the number of samples."""
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import load_dataset

    parts = load_dataset(name, get_spec(name).splits, download=False)
    return sum(len(part) for part in parts)


def measure_load(name: str, repeats: int = 5, download: bool = False) -> dict:
    """Seconds to load every split of ``name``: once into an empty parsed cache (cold: parse and
    write the cache), then ``repeats`` times from it (warm). Returns the raw times and their
    median and best. With ``download`` a missing file is fetched first (outside the timing)."""
    from hmlearn.data.registry import get_spec

    if download:
        from hmlearn.data.store import fetch

        fetch(name)
    with parsed_cache():
        started = time.perf_counter()
        samples = load_all_splits(name)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(repeats):
            started = time.perf_counter()
            load_all_splits(name)
            warm.append(time.perf_counter() - started)
    return {"dataset": name, "splits": list(get_spec(name).splits), "samples": samples, "cold_s": cold,
            "warm_s": warm, "warm_median_s": statistics.median(warm), "warm_best_s": min(warm)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("datasets", nargs="*", default=["spo_GO", "derisi_FUN"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from tabulate import tabulate

    rows = []
    for name in args.datasets:
        r = measure_load(name, args.repeats, download=True)
        rows.append({"dataset": name, "splits": "+".join(r["splits"]), "cold s": f"{r['cold_s']:.3f}",
                     "warm s (best)": f"{r['warm_best_s']:.3f}", "cold / warm": f"{r['cold_s'] / r['warm_best_s']:.1f}x"})
    print(tabulate(rows, headers="keys"))


if __name__ == "__main__":
    main()
