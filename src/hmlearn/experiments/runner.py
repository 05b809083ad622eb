"""Run a sweep: expand the spec, skip the cells already stored, run the rest, store each result.

One cell (:func:`run_cell`) loads its dataset (train + valid -> test for a registry name; cached
per worker process), builds the TrainConfig from the dataset's published settings, the preset
and the method's overrides, trains without a progress bar, and evaluates on the test split:
metrics, per-node table, micro precision-recall curve, recall by depth and by training
frequency. Any exception makes a ``failed`` row with its error text; the sweep goes on.

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
import platform
import queue
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from hmlearn.errors import HMLError
from hmlearn.experiments.spec import IMAGE_LOCATION, Cell, ImageData, SweepSpec, expand, is_path, split_files
from hmlearn.experiments.store import ResultStore

EXECUTORS = ("sequential", "process", "ray")
PR_CURVE_POINTS = 200
_DATA_CACHE_SIZE = 2  # datasets kept in memory per worker (cells are ordered by dataset)
_data_cache: OrderedDict[str, tuple] = OrderedDict()


# ---------------------------------------------------------------------------------- one cell
def load_cell_data(dataset: str) -> tuple:
    """(train, test, published hyper-parameters, network outputs) of a dataset entry, cached per process."""
    if dataset in _data_cache:
        _data_cache.move_to_end(dataset)
        return _data_cache[dataset]
    from hmlearn.data.dataset import HMCDataset
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import load_dataset

    if dataset.startswith(IMAGE_LOCATION):
        entry = _image_cell_data(ImageData.model_validate_json(dataset.removeprefix(IMAGE_LOCATION)))
    elif is_path(dataset):
        files = split_files(dataset)
        parts = {split: load_dataset(path) for split, path in files.items()}
        for split, part in parts.items():
            if part.hierarchy != parts["train"].hierarchy:
                raise HMLError(f"{files[split]}: its hierarchy differs from {files['train']}'s")
            if part.n_features != parts["train"].n_features:
                raise HMLError(f"{files[split]}: {part.n_features} feature columns, {files['train']} has "
                               f"{parts['train'].n_features}")
        training = [parts[s] for s in ("train", "valid") if s in parts]
        train = training[0] if len(training) == 1 else HMCDataset.concatenate(training, "trainvalid")
        entry = (train, parts["test"], {}, len(train.hierarchy))
    else:
        spec = get_spec(dataset)
        train, test = load_dataset(spec.name, ("trainvalid", "test"))
        entry = (train, test, spec.hyperparameters(), spec.n_outputs)
    _data_cache[dataset] = entry
    while len(_data_cache) > _DATA_CACHE_SIZE:
        _data_cache.popitem(last=False)
    return entry


class PixelSplit(NamedTuple):
    """One split of an image dataset as a cell trains on it: (S, 3, size, size) uint8 pixels and labels."""

    X: Any
    Y: Any
    hierarchy: Any


def _image_cell_data(entry: ImageData) -> tuple:
    """(train, test, settings, outputs) of an image dataset entry: read, split and decoded as train-images does."""
    from hmlearn.data.images import image_splits, load_pixels, read_image_table
    from hmlearn.experiments.spec import image_settings

    data = read_image_table(entry.table, **entry.reading())
    parts = image_splits(data, entry.test_fraction, 0.0, entry.split_seed)
    if "test" not in parts:
        raise HMLError(f"{entry.table}: no test images (the split column has no 'test' rows)")
    train, test = (PixelSplit(load_pixels(parts[s].paths, entry.image_size), parts[s].Y, data.hierarchy)
                   for s in ("train", "test"))
    return (train, test, *image_settings(entry))


def pr_curve(Y, P, hierarchy, points: int = PR_CURVE_POINTS) -> dict[str, list[float]]:
    """Micro precision-recall curve of the coherent probabilities over the evaluated nodes, <= ``points`` points."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    columns = hierarchy.evaluated
    truth, scores = Y[:, columns].ravel(), P[:, columns].ravel()
    if not truth.any():
        return {"precision": [], "recall": []}
    precision, recall, _ = precision_recall_curve(truth, scores)
    if len(precision) > points:
        keep = np.unique(np.round(np.linspace(0, len(precision) - 1, points)).astype(int))
        precision, recall = precision[keep], recall[keep]
    return {"precision": [float(v) for v in precision], "recall": [float(v) for v in recall]}


def _versions() -> dict[str, str]:
    import numpy
    import torch

    import hmlearn

    return {"hmlearn": hmlearn.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def _error_text(error: BaseException) -> str:
    """One line for a user-facing error; the traceback after it for anything unexpected."""
    line = f"{type(error).__name__}: {error}"
    if isinstance(error, (HMLError, FileNotFoundError)):
        return line
    return line + "\n\n" + "".join(traceback.format_exception(error)).rstrip()


def run_cell(cell: Cell) -> dict[str, Any]:
    """Train and evaluate one cell in this process; returns its results-store row (never raises)."""
    import torch

    started = time.perf_counter()
    row: dict[str, Any] = {"key": cell.key, "sweep": cell.sweep, "dataset": cell.dataset, "method": cell.method,
                           "seed": cell.seed, "config": cell.config}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cell.threads)  # prediction too: one thread count, one result
    try:
        from hmlearn.metrics import evaluate, per_node_table, recall_by_depth, recall_by_frequency
        from hmlearn.train import config_record, fit, preset_config

        train, test, published, n_outputs = load_cell_data(cell.location)
        with contextlib.suppress(ImportError):  # imported by torch in the first fit (1-2 s), which is no
            import torch._dynamo  # cell's own time
        started = time.perf_counter()  # seconds: training and evaluation, not loading the data
        config = preset_config(published, cell.preset, n_outputs, seed=cell.seed, threads=cell.threads,
                               **cell.overrides)
        row["config"] = {**config_record(config), "preset": cell.preset}
        model = fit(train.X, train.Y, train.hierarchy, config, progress=False)
        proba = model.predict_proba(test.X)
        hierarchy = train.hierarchy
        row["metrics"] = evaluate(test.Y, proba, hierarchy, train_Y=train.Y)
        row["per_node"] = per_node_table(test.Y, proba, hierarchy, train_Y=train.Y).to_dict("records")
        row["curves"] = {
            "pr": pr_curve(test.Y, proba, hierarchy),
            "by_depth": recall_by_depth(test.Y, proba, hierarchy).reset_index().to_dict("records"),
            "by_frequency": recall_by_frequency(test.Y, proba, hierarchy, train.Y).reset_index().to_dict("records"),
        }
        row["status"] = "ok"
    except Exception as error:  # noqa: BLE001 - a failed cell is a result; the sweep goes on
        row["status"], row["error"] = "failed", _error_text(error)
    finally:
        torch.set_num_threads(previous_threads)
    row["seconds"] = time.perf_counter() - started
    row["versions"] = _versions()
    row["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return row


# ---------------------------------------------------------------------------------- executors
def _usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def default_workers(threads_per_cell: int = 1) -> int:
    """As many workers as the usable cores hold cells of ``threads_per_cell`` threads (at least 1)."""
    return max(1, len(_usable_cores()) // max(1, threads_per_cell))


def _init_worker(cores: Any, threads: int) -> None:
    """Process-pool worker start: take a share of the cores (where the OS allows) and the thread count."""
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

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # the server imports torch once, before any thread starts; each worker is a fork of it
        context.set_forkserver_preload(["hmlearn.experiments.runner", "torch", "hmlearn.train", "hmlearn.metrics"])
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
            options.update(num_cpus=workers or len(_usable_cores()), include_dashboard=False)
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


def plan(spec: SweepSpec, runs_dir: str | Path | None = None, resume: bool = True) -> dict[str, Any]:
    """What a sweep would do: ``cells`` (all), ``todo`` (to run), ``done`` (stored ok), ``retry`` (stored failed)."""
    cells = expand(spec)
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
) -> ResultStore:
    """Run the cells of ``spec`` not yet stored in ``runs_dir`` (default ``runs/<spec name>``).

    With ``resume`` (the default) the cells stored with status ``ok`` are skipped and failed ones
    run again; without it every cell runs and its row is replaced. Each result is written to
    ``runs_dir/results.sqlite`` by this process as it arrives. ``workers``: process-pool size
    (default: usable cores // threads_per_cell) or the CPUs of a local Ray instance. Returns the
    store (open; close it when done). Ctrl-C stops with the finished cells stored.
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
    todo = plan(spec, runs_dir, resume)["todo"]
    store = ResultStore(runs_dir)
    if not todo:
        return store
    threads = spec.threads_per_cell
    n_workers = workers or default_workers(threads)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"sweep {spec.name}", unit="cell", disable=not progress, file=sys.stderr)
    results = _EXECUTORS[executor](todo, workers=workers if executor == "ray" else n_workers, threads=threads,
                                   ray_address=ray_address)
    failed = 0
    try:
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
    except KeyboardInterrupt:
        results.close()
        store.close()
        raise KeyboardInterrupt(f"interrupted; the finished cells are stored in {store.path}; "
                                "run the same command again to continue") from None
    finally:
        results.close()
        bar.close()
    return store
