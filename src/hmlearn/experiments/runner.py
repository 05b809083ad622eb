"""Run a sweep: expand the spec, skip the cells already stored, run the rest, store each result.

One cell is :func:`hmlearn.workflows.run_cell`: its dataset from data/sources.py (cached per
worker process), the config the spec's expansion resolved, trained without a progress bar and
evaluated on the test split (metrics, per-node table, curves). Any exception makes a ``failed``
row with its error text; the sweep goes on.

Executors: ``sequential`` (this process), ``process`` (a local pool of spawned workers, each
pinned to its share of the CPU cores) and ``ray`` (a task per cell on a local Ray instance or
a cluster). Results come back to this process, the results store's single writer, which writes
each one in its own transaction as it arrives: a sweep killed at any moment resumes with every
finished cell kept. With one torch thread per cell, the same spec and seeds give identical
metrics with every executor.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hmlearn.errors import HMLError
from hmlearn.experiments.spec import Cell, SweepSpec, expand
from hmlearn.experiments.store import ResultStore
from hmlearn.workflows import run_cell

EXECUTORS = ("sequential", "process", "ray")


# ---------------------------------------------------------------------------------- executors
def _usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def default_workers(threads_per_cell: int = 1) -> int:
    """As many workers as the usable cores hold cells of ``threads_per_cell`` threads (at least 1)."""
    return max(1, len(_usable_cores()) // max(1, threads_per_cell))


PARENT_ENV = "HMLEARN_SWEEP_PARENT"
"""Set by a process-pool sweep to its own PID: the forkserver and the workers end when that process is gone."""


def exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """End this process (a pool worker or the forkserver) as soon as the sweep process ``parent`` is gone,
    or this process's own parent is (it was re-parented): a killed sweep leaves no workers behind."""
    import threading

    start_ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != start_ppid:
                os._exit(1)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="hmlearn-exit-with-parent", daemon=True).start()


def _watch_parent_from_environment() -> None:
    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit() and int(parent) != os.getpid():
        exit_with_parent(int(parent))


_watch_parent_from_environment()  # in the forkserver, which imports this module first


def _init_worker(cores: Any, threads: int) -> None:
    """Process-pool worker start: end with the sweep, take a share of the cores (where the OS allows) and
    the thread count."""
    _watch_parent_from_environment()  # threads are not forked: each worker watches for itself
    if cores is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError, ValueError, queue.Empty):  # pinning is an optimisation: else unpinned
            os.sched_setaffinity(0, cores.get(timeout=10))
    import torch

    torch.set_num_threads(threads)


def _sequential(cells: list[Cell], workers: int, threads: int, **_) -> Iterator[tuple[Cell, dict]]:
    for cell in cells:
        yield cell, run_cell(cell)


def _process_pool(cells: list[Cell], workers: int, threads: int, **_) -> Iterator[tuple[Cell, dict]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    os.environ[PARENT_ENV] = str(os.getpid())  # inherited by the forkserver (started now) and the workers
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # the server imports torch once, before any thread starts; each worker is a fork of it
        context.set_forkserver_preload(["hmlearn.experiments.runner", "torch", "hmlearn.training.fit", "hmlearn.metrics",
                                         "hmlearn.workflows"])
    else:
        context = multiprocessing.get_context("spawn")
    available = _usable_cores()
    workers = max(1, min(workers, len(cells)))
    cores = None
    if hasattr(os, "sched_setaffinity") and workers * threads <= len(available):
        cores = context.Queue()
        for i in range(workers):  # worker i gets cores [i t, (i + 1) t)
            cores.put(set(available[i * threads : (i + 1) * threads]))
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(cores, threads))
    try:
        futures = {pool.submit(run_cell, cell): cell for cell in cells}
        for future in as_completed(futures):
            cell = futures[future]
            try:
                yield cell, future.result()
            except BrokenProcessPool as error:  # a worker died (out of memory, a signal): no result to keep
                yield cell, _failed_row(cell, f"worker process died before the cell finished ({error})")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray(cells: list[Cell], workers: int | None, threads: int, ray_address: str | None = None,
         **_) -> Iterator[tuple[Cell, dict]]:
    try:
        import ray
    except ImportError:
        raise HMLError("the ray executor needs Ray: pip install 'hmlearn[ray]'") from None
    started_here = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"log_to_driver": False}
        if ray_address:
            _check_reachable(ray_address)  # Ray itself retries an unreachable address for a very long time
            options["address"] = ray_address
        else:
            # "local": a new instance of our own, even when a Ray head already runs on this machine
            options.update(address="local", num_cpus=workers or len(_usable_cores()), include_dashboard=False)
        try:
            ray.init(**options)
        except Exception as error:  # noqa: BLE001 - a cluster that cannot be reached is a user error
            raise HMLError(f"cannot start Ray{f' at {ray_address}' if ray_address else ''}: {error}") from None
        started_here = True
    try:
        remote = ray.remote(num_cpus=threads, max_retries=0)(run_cell)
        pending = {remote.remote(cell): cell for cell in cells}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    yield cell, ray.get(ref)
                except Exception as error:  # noqa: BLE001 - the worker died; run_cell itself never raises
                    yield cell, _failed_row(cell, f"Ray task failed: {error}")
        pending = {}
    finally:
        for ref in list(pending):
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse a ``host:port`` or ``ray://host:port`` address that nothing listens on (``auto`` is Ray's to find)."""
    import socket

    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise HMLError(f"cannot reach a Ray cluster at {address} ({error}); start one with `ray start --head` "
                       "or check --ray-address") from None


def _failed_row(cell: Cell, error: str) -> dict[str, Any]:
    return {"key": cell.key, "sweep": cell.sweep, "dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
            "config": cell.config, "status": "failed", "error": error, "seconds": 0.0,
            "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}


_EXECUTORS: dict[str, Callable[..., Iterator[tuple[Cell, dict]]]] = {
    "sequential": _sequential, "process": _process_pool, "ray": _ray,
}


# ---------------------------------------------------------------------------------- the sweep
def default_runs_dir(spec: SweepSpec) -> Path:
    return Path("runs") / spec.name


def plan(spec: SweepSpec, runs_dir: str | Path | None = None, resume: bool = True,
         cells: list[Cell] | None = None) -> dict[str, Any]:
    """What a sweep would do: ``cells`` (all), ``todo`` (to run), ``done`` (stored ok), ``retry`` (stored failed).

    ``cells``: the spec's expansion, where the caller has it already.
    """
    cells = expand(spec) if cells is None else cells
    store = ResultStore(Path(runs_dir or default_runs_dir(spec)))
    try:
        ok, failed = store.keys("ok"), store.keys("failed")
    finally:
        store.close()
    if resume:
        todo = [cell for cell in cells if cell.key not in ok]
    else:
        todo = list(cells)
    return {"cells": cells, "todo": todo, "done": [c for c in cells if c.key in ok],
            "retry": [c for c in todo if c.key in failed]}


def run_sweep(
    spec: SweepSpec,
    runs_dir: str | Path | None = None,
    executor: str = "sequential",
    workers: int | None = None,
    resume: bool = True,
    ray_address: str | None = None,
    progress: bool = True,
    on_result: Callable[[Cell, dict], None] | None = None,
    todo: list[Cell] | None = None,
) -> ResultStore:
    """Run the cells of ``spec`` not yet stored in ``runs_dir`` (default ``runs/<spec name>``).

    With ``resume`` (the default) the cells stored with status ``ok`` are skipped and failed ones
    run again; without it every cell runs and its row is replaced. Each result is written to
    ``runs_dir/results.sqlite`` by this process as it arrives. ``workers``: process-pool size
    (default: usable cores // threads_per_cell) or the CPUs of a local Ray instance. Returns the
    store (open; close it when done). Ctrl-C stops with the finished cells stored. ``todo``: the
    cells to run, from a :func:`plan` the caller made (the spec is then not expanded again).
    """
    if executor not in EXECUTORS:
        raise HMLError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise HMLError(f"workers must be at least 1, got {workers}")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise HMLError("the ray executor needs Ray: pip install 'hmlearn[ray]'") from None
    runs_dir = Path(runs_dir or default_runs_dir(spec))
    if todo is None:
        todo = plan(spec, runs_dir, resume)["todo"]
    store = ResultStore(runs_dir)
    if not todo:
        return store
    lock = hold_store(store.path)
    threads = spec.threads_per_cell
    n_workers = workers or default_workers(threads)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"sweep {spec.name}", unit="cell", disable=not progress, file=sys.stderr)
    results = _EXECUTORS[executor](todo, workers=workers if executor == "ray" else n_workers, threads=threads,
                                   ray_address=ray_address)
    try:
        _store_results(results, store, bar, progress, on_result)
    except KeyboardInterrupt:
        results.close()
        store.close()
        raise KeyboardInterrupt(f"interrupted; the finished cells are stored in {store.path}; "
                                "run the same command again to continue") from None
    finally:
        results.close()
        bar.close()
        lock.close()
    return store


def _store_results(results: Iterator[tuple[Cell, dict]], store: ResultStore, bar: Any, progress: bool,
                   on_result: Callable[[Cell, dict], None] | None) -> None:
    """Write each row as it arrives, in its own transaction; failures are counted on the progress bar."""
    failed = 0
    for cell, row in results:
        store.add(row)
        if row["status"] != "ok":
            failed += 1
            if progress:
                bar.write(f"failed: {cell.describe()}: {row['error'].splitlines()[0]}", file=sys.stderr)
        if on_result is not None:
            on_result(cell, row)
        bar.update(1)
        if failed:
            bar.set_postfix(failed=failed)


def hold_store(store_file: Path):
    """An open lock file held while a sweep writes ``store_file``; close it to release.

    A second sweep on the same store would run every cell the first is running: it is refused
    with one line naming the process that holds the store. Where the OS has no ``fcntl`` the
    store is not locked.
    """
    lock_path = store_file.with_name(store_file.name + ".lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the sweep's lifetime, closed by run_sweep
    try:
        import fcntl
    except ImportError:
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise HMLError(f"{store_file}: another sweep ({holder}) is running on this results store; wait for it to "
                       "finish, or give this one another --runs folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()}, started {datetime.datetime.now().isoformat(timespec='seconds')}")
    handle.flush()
    return handle
