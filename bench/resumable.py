"""Shared by the benchmarks: run jobs in worker processes, one JSON line per finished job.

A job is a dict of keyword arguments; it is done when a stored row carries the same values
for those keys, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def run_resumable(jobs: list[dict], work: Callable[..., dict], path: Path, n_jobs: int,
                  describe: Callable[[dict], str]) -> list[dict]:
    """Run the jobs not yet in ``path``; append each result as it finishes; return all rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = load_rows(path)
    todo = [job for job in jobs if not any(all(row.get(k) == v for k, v in job.items()) for row in rows)]
    if todo:
        print(f"{len(todo)} runs to do ({len(jobs) - len(todo)} already stored in {path}), {n_jobs} at a time")
        with ProcessPoolExecutor(n_jobs) as pool:
            futures = [pool.submit(work, **job) for job in todo]
            for future in as_completed(futures):
                row = future.result()
                with open(path, "a") as handle:  # one write per finished run: resumable
                    handle.write(json.dumps(row) + "\n")
                rows.append(row)
                print(describe(row), flush=True)
    return rows
