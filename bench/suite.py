"""The performance benchmark suite (issue 8): every section in one command, JSON + markdown out.

    python bench/suite.py                                   # everything (~10 min on 2 cores)
    python bench/suite.py --quick                           # tiny versions, seconds: CI smoke test
    python bench/suite.py --device auto --sections mcm,heads --out bench/results/perf

Sections (``--sections``, comma-separated; default all):

- ``mcm``: max constraint module forward + backward, dense (baseline) vs the fast methods, at
  batch 4 / 64 / 512 on the derisi_FUN tree and the spo_GO DAG (bench/mcm_speed.py's step);
  dense is skipped, with the reason, where its (B, N, N) tensor would not fit.
- ``epoch``: one C-HMCNN training epoch (hmlearn.training.fit.train_epoch: objective + Adam)
  at the paper protocol (baseline) and at the ``fast`` preset, on derisi_FUN and spo_GO.
- ``heads``: H = 1, 2, 4, 8 vectorised heads (one HeadsMLP) vs a loop over H separate single-head
  models (baseline: each trained with its own optimizer, one after another, as a user would),
  epoch time at batch 4 and 64 on derisi_FUN; and H vectorised heads against one head, there and
  at batch 4 on every other FUN dataset at hand, each beside the time an epoch needs only to
  stream the heads' parameters, gradients and Adam moments at this machine's measured bandwidth.
- ``objective``: training step time of plain MCLoss (baseline) vs node weights vs node weights +
  focal weight for each uncertainty measure, H = 4, batch 4 and 64.
- ``load``: dataset load, cold (parse the ARFF files; baseline) vs warm (parsed cache), for every
  dataset at hand (bench/load_speed.py's measurement).
- ``predict``: ``HMCModel.predict_proba`` on the test split (model trained one epoch) against the
  bare network forward (baseline), samples/s; ``hmlearn.metrics.evaluate`` against the
  scikit-learn reference functions, on the test split.
- ``scaling``: bench/scaling.py's ``run_scaling`` / ``write_plot`` where that file exists.

Every figure is a ratio ``baseline / measured`` (above 1: the measured variant is faster) next
to both absolute numbers, timed in this run, interleaved (each round runs every variant once,
in rotating order) and reduced to the median. Peak memory of each measurement: on the CPU the
peak RSS (VmHWM) of a child process that builds the workload and runs it once, minus that of a
baseline child that only imported torch and hmlearn (children fork from a server that preloaded
them); on CUDA ``torch.cuda.max_memory_allocated`` in this process.

Writes ``perf.json`` (all raw numbers and the machine) and ``perf.md`` (one table per section
and one line per acceptance target of the issue) into ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from hmlearn.data.preprocessing import Standardizer
from hmlearn.data.registry import DATASETS
from hmlearn.data.store import load_dataset, local_datasets
from hmlearn.nn.constraint import AUTO_METHOD, MaxConstraint
from hmlearn.nn.heads import HeadsMLP
from hmlearn.objectives.uncertainty import MEASURES
from hmlearn.training.config import TrainConfig
from hmlearn.training.fit import adam, build_objective, fit, train_epoch
from hmlearn.training.model import resolve_device
from hmlearn.training.presets import preset_config

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import load_speed  # noqa: E402 -- the benchmarks beside this file
import mcm_speed  # noqa: E402

SECTIONS = ("mcm", "epoch", "heads", "objective", "load", "predict", "scaling")
FUN = "derisi_FUN"
GO = "spo_GO"
DEFAULT_THREADS = torch.get_num_threads()  # torch's default here; fit() uses it above batch 32
RATIO = "baseline / measured"


# ----------------------------------------------------------------------------- the machine
def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _last_level_cache_mb() -> float | None:
    """The largest CPU cache (Linux sysfs): whether a step's training state stays in cache decides its speed."""
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        text = _read(str(index / "size")).strip()
        if text[:-1].isdigit() and text[-1] in "KM":
            sizes.append(int(text[:-1]) / (1024 if text[-1] == "K" else 1))
    return max(sizes, default=None)


def describe_machine(device: torch.device) -> dict:
    """CPU model, cores, memory, torch build and threads, the GPU if one is used."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or platform.machine())
    mem = next((int(line.split()[1]) * 1024 for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal:")), None)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gb": round(mem / 1e9, 1) if mem else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads_default": DEFAULT_THREADS,
        "torch_interop_threads": torch.get_num_interop_threads(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "numpy": np.__version__,
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "device": str(device),
        "last_level_cache_mb": _last_level_cache_mb(),
        "cuda_available": torch.cuda.is_available(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=torch.cuda.get_device_name(device), gpu_memory_gb=round(props.total_memory / 1e9, 1),
                    cuda=torch.version.cuda)
    return info


# ----------------------------------------------------------------------------- timing
@contextmanager
def torch_threads(n: int | None):
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def compare(variants: dict[str, Callable[[], object]], rounds: int, budget_s: float, min_call_s: float = 0.05,
            inner: int | None = None) -> dict[str, dict]:
    """Interleaved timing of zero-argument callables; seconds per call, median over rounds.

    Each variant is warmed up once (its ``warmup`` attribute if it has one, else one call).
    A round runs every variant ``calls`` times, in an order rotated each round; ``calls`` is
    ``inner`` or enough calls for ``min_call_s``. At least 3 rounds, fewer than ``rounds``
    when a round would take the whole run past ``budget_s``.
    """
    names = list(variants)
    first: dict[str, float] = {}
    for name in names:
        fn = variants[name]
        started = time.perf_counter()
        getattr(fn, "warmup", fn)()
        first[name] = time.perf_counter() - started
    # a partial warm-up (training: a few steps) scales to a call by its share of the steps
    estimate = {n: first[n] * getattr(variants[n], "steps", 1) / getattr(variants[n], "warmup_steps", 1) for n in names}
    calls = {n: inner or max(1, min(1000, math.ceil(min_call_s / max(estimate[n], 1e-6)))) for n in names}
    per_round = sum(estimate[n] * calls[n] for n in names)
    rounds = max(3, min(rounds, int(budget_s / max(per_round, 1e-9))))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn = variants[name]
            started = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            times[name].append((time.perf_counter() - started) / calls[name])
    return {n: {"median_s": statistics.median(times[n]), "runs_s": times[n], "calls_per_run": calls[n],
                "warmup_s": first[n]} for n in names}


def comparison(row_id: str, case: str, baseline: str, baseline_value: float | None, measured: str,
               measured_value: float | None, unit: str, **extra) -> dict:
    """One table row: both absolute figures and ``ratio = baseline / measured``."""
    ratio = None
    if baseline_value is not None and measured_value is not None and measured_value > 0:
        ratio = baseline_value / measured_value
    return {"id": row_id, "case": case, "baseline": baseline, "baseline_value": baseline_value,
            "measured": measured, "measured_value": measured_value, "unit": unit, "ratio": ratio, **extra}


# ----------------------------------------------------------------------------- workloads
# A workload is built by ``build(task, params)`` into a zero-argument callable that does one unit
# of work (one forward + backward, one epoch, one load, one prediction). The timing here and the
# memory children (which rebuild it in a fresh process) share this code.
_DATA: dict[str, tuple] = {}


def dataset(name: str):
    """(trainvalid, test) of a standard dataset, loaded once per process."""
    if name not in _DATA:
        _DATA[name] = load_dataset(name, ("trainvalid", "test"), download=False)
    return _DATA[name]


def available(name: str) -> bool:
    return name in local_datasets()


def training_config(name: str, preset: str, device: str, **overrides) -> TrainConfig:
    spec = DATASETS[name]
    return preset_config(spec.hyperparameters(), preset, spec.n_outputs, device=device, **overrides)


def fit_threads(config: TrainConfig) -> int:
    """The thread count hmlearn.training.fit.fit uses for this config (its rule, restated)."""
    return config.threads or (1 if config.batch_size <= 32 else DEFAULT_THREADS)


def network_adam(network: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """fit's Adam (hmlearn.training.fit.adam) for ``network``."""
    return adam([{"params": list(network.parameters()), "lr": config.lr}], config)


class TrainingRun:
    """fit()'s training objects for one config, and ``__call__``: one epoch of ``train_epoch``.

    ``max_steps`` keeps the first ``max_steps x batch`` training rows (an epoch of that many steps).
    """

    def __init__(self, name: str, config: TrainConfig, max_steps: int | None = None):
        train, _ = dataset(name)
        device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        rows = len(train.X) if max_steps is None else min(len(train.X), max_steps * config.batch_size)
        standardizer = Standardizer.fit(train.X)
        self.x = torch.from_numpy(standardizer.transform(train.X[:rows])).to(device)
        self.y = torch.from_numpy(np.asarray(train.Y[:rows], dtype=np.float32)).to(device)
        self.network = HeadsMLP(train.X.shape[1], len(train.hierarchy), config.hidden_dim, config.num_layers,
                                config.dropout, config.activation, config.heads).to(device)
        constraint = MaxConstraint(train.hierarchy, config.mcm_method).to(device)
        self.objective = build_objective(config, constraint, train.Y, train.hierarchy)
        self.optimizer = network_adam(self.network, config)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.batch = config.batch_size
        self.steps = -(-rows // config.batch_size)
        self.threads = fit_threads(config)
        self.warmup_steps = min(3, self.steps)
        self.epoch = 0

    def _run(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch_threads(self.threads):
            loss = train_epoch(self.network, self.objective, self.optimizer, x, y, None, self.batch,
                                self.generator, self.epoch)  # returns a float: waits for the device
        self.epoch += 1
        return loss

    def __call__(self) -> float:
        return self._run(self.x, self.y)

    def warmup(self) -> float:
        rows = self.warmup_steps * self.batch
        return self._run(self.x[:rows], self.y[:rows])


class LoopRun:
    """H separately trained models, one epoch each, one after another."""

    def __init__(self, runs: list[TrainingRun]):
        self.runs = runs
        self.steps = sum(r.steps for r in runs)
        self.warmup_steps = sum(r.warmup_steps for r in runs)

    def __call__(self) -> None:
        for run in self.runs:
            run()

    def warmup(self) -> None:
        for run in self.runs:
            run.warmup()


class Prediction:
    """A model trained ``epochs`` = 1 (on ``train_rows`` rows, all when None) and its test split."""

    def __init__(self, name: str, device: str, train_rows: int | None = None, threads: int | None = None):
        train, test = dataset(name)
        config = training_config(name, "fast", device, epochs=1, threads=threads)
        rows = slice(None) if train_rows is None else slice(0, train_rows)
        started = time.perf_counter()
        self.model = fit(train.X[rows], train.Y[rows], train.hierarchy, config, progress=False)
        self.train_seconds = time.perf_counter() - started
        self.config = config
        self.train, self.test = train, test
        self.features = self.model.standardizer.transform(test.X)

    def predict(self) -> np.ndarray:
        return self.model.predict_proba(self.test.X)

    def forward(self) -> torch.Tensor:
        """The bare network: standardised features -> sigmoid, no MCM, one batch."""
        with torch.no_grad():
            self.model.network.eval()
            x = torch.from_numpy(self.features).to(self.model.device)
            return torch.sigmoid(self.model.network(x)).cpu()


def sklearn_metrics(Y: np.ndarray, P: np.ndarray, hierarchy) -> dict:
    """The scikit-learn functions hmlearn.metrics documents itself against (its reference)."""
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support

    columns = hierarchy.evaluated
    truth, scores = Y[:, columns], P[:, columns]
    precision, recall, f1, _ = precision_recall_fscore_support(truth, scores >= 0.5, average=None, zero_division=0)
    return {"au_prc": average_precision_score(truth, scores, average="micro"),
            "binary_ap": average_precision_score(truth, scores >= 0.5, average="micro"),
            "precision": 100 * precision.mean(), "recall": 100 * recall.mean(), "f1": 100 * f1.mean()}


def _hierarchy(name: str):
    return mcm_speed.load_hierarchy(mcm_speed.HIERARCHIES[name])[0]


def build(task: str, params: dict) -> Callable[[], object]:
    """The workload ``task`` with ``params`` (all plain data, so a child process can rebuild it)."""
    device = params.get("device", "cpu")
    if task == "noop":
        return lambda: None
    if task == "mcm":
        module = MaxConstraint(_hierarchy(params["hierarchy"]), params["method"]).to(device)
        return mcm_speed.make_step(module, params["batch"], torch.float32, "sum", device)
    if task in ("train", "train_loop"):
        overrides = {"threads": params.get("train_threads"), **params.get("overrides", {})}
        runs = [TrainingRun(params["dataset"], training_config(params["dataset"], params["preset"], device,
                                                               **{**overrides, "seed": seed}),
                            params.get("max_steps")) for seed in range(params.get("copies", 1))]
        return runs[0] if task == "train" else LoopRun(runs)
    if task == "adam_step":  # the optimizer alone: one fused Adam step over the heads' parameters
        run = TrainingRun(params["dataset"], training_config(params["dataset"], params["preset"], device,
                                                             **params.get("overrides", {})), 1)
        run.warmup()  # gradients and Adam state exist from here on
        with torch_threads(run.threads):
            loss = run.objective(torch.sigmoid(run.network(run.x[: run.batch])), run.y[: run.batch], None)
            loss.backward()

        def adam_step() -> None:
            with torch_threads(run.threads):
                run.optimizer.step()

        return adam_step
    if task == "load":
        name, cache = params["dataset"], params.get("cache")

        def load() -> int:
            if cache is None:
                return load_speed.load_all_splits(name)
            with load_speed.parsed_cache(cache):  # an empty folder: the first load parses
                return load_speed.load_all_splits(name)

        if not params["cold"]:
            load()  # fills the parsed cache: the measured load reads it
            gc.collect()
        return load
    if task in ("predict", "forward", "evaluate", "sklearn_metrics"):
        run = Prediction(params["dataset"], device, params.get("train_rows"), params.get("train_threads"))
        if task == "predict":
            return run.predict
        if task == "forward":
            return run.forward
        from hmlearn.metrics import evaluate

        rows = slice(0, params.get("eval_rows"))
        Y, P = run.test.Y[rows], run.predict()[rows]
        if task == "evaluate":
            return lambda: evaluate(Y, P, run.train.hierarchy, train_Y=run.train.Y)
        return lambda: sklearn_metrics(Y, P, run.train.hierarchy)
    raise ValueError(f"unknown workload {task!r}")


# ----------------------------------------------------------------------------- peak memory
def _status_kb(field: str) -> int | None:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:  # no /proc: the rusage peak (kB on Linux, bytes on macOS)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024
    return kb / 1024


def _reset_peak_rss() -> bool:
    """Set VmHWM to the current RSS (Linux >= 4.0), so the peak counts only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _memory_child(conn, task: str, params: dict, threads: int | None) -> None:
    """Build the workload, reset the peak, run it once, send back the peak RSS in MB."""
    try:
        with torch_threads(threads):
            work = build(task, params)
            if task != "load":  # first-call costs (lazy inits) are not the workload's; a load's are
                getattr(work, "warmup", work)()
            gc.collect()
            reset = _reset_peak_rss()
            work()
        conn.send({"peak_mb": _peak_rss_mb(), "reset": reset})
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which goes on
        conn.send({"error": f"{type(error).__name__}: {error}"})
    finally:
        conn.close()


class MemoryProbe:
    """Peak memory of a workload: child processes on the CPU, CUDA's allocator stats on a GPU."""

    def __init__(self, device: torch.device, enabled: bool = True, timeout_s: float = 600.0):
        self.device, self.enabled, self.timeout_s = device, enabled, timeout_s
        self.cache: dict[str, dict] = {}
        self.baseline_mb: float | None = None
        self.method = "off"
        if not enabled:
            return
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated (this process), MB over the allocation before the run"
            self.baseline_mb = 0.0
            return
        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            self.context.set_forkserver_preload(["torch", "hmlearn.training.fit", "hmlearn.metrics", "hmlearn.data.store"])
        baseline = self._child("noop", {})
        self.baseline_mb = baseline.get("peak_mb")
        self.method = (f"peak RSS (VmHWM) of a {self.context.get_start_method()} child per measurement, "
                       f"minus a baseline child that only imported torch and hmlearn ({self.baseline_mb:.0f} MB)"
                       if self.baseline_mb else "unavailable")

    def _child(self, task: str, params: dict) -> dict:
        parent, child = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_memory_child, args=(child, task, params, params.get("threads")))
        process.start()
        child.close()
        result = {"error": "no answer"}
        if parent.poll(self.timeout_s):
            try:
                result = parent.recv()
            except EOFError:
                pass
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
            result = {"error": f"timed out after {self.timeout_s:.0f} s"}
        elif process.exitcode and "error" in result:
            result = {"error": f"child exited with code {process.exitcode} (killed for memory?)"}
        return result

    def measure(self, task: str, params: dict) -> dict:
        """{"peak_mb": increase over the baseline} or {"error": why not}; cached per (task, params)."""
        if not self.enabled:
            return {}
        key = json.dumps([task, params], sort_keys=True)
        if key in self.cache:
            return self.cache[key]
        if self.device.type == "cuda":
            try:
                work = build(task, params)
                torch.cuda.synchronize(self.device)
                before = torch.cuda.memory_allocated(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
                work()
                torch.cuda.synchronize(self.device)
                result = {"peak_mb": (torch.cuda.max_memory_allocated(self.device) - before) / 2**20}
                del work
                torch.cuda.empty_cache()
            except Exception as error:  # noqa: BLE001
                result = {"error": f"{type(error).__name__}: {error}"}
        else:
            result = self._child(task, params)
            if "peak_mb" in result and self.baseline_mb is not None:
                result = {"peak_mb": max(result["peak_mb"] - self.baseline_mb, 0.0), "peak_rss_mb": result["peak_mb"]}
        self.cache[key] = result
        return result


# ----------------------------------------------------------------------------- sections
class Context:
    def __init__(self, args: argparse.Namespace, device: torch.device, probe: MemoryProbe):
        self.quick, self.device, self.probe, self.out = args.quick, device, probe, args.out
        self.rounds = 3 if args.quick else args.rounds
        self.budget_s = 2.0 if args.quick else args.budget_s
        self.min_call_s = 0.005 if args.quick else 0.1
        # --threads: every section; else torch's default for mcm and predict, fit()'s rule in training.
        # A quick run uses 1 thread throughout (threads stall when other jobs hold the cores).
        self.threads = args.threads or (1 if args.quick else DEFAULT_THREADS)
        self.train_threads = args.threads or (1 if args.quick else None)
        self.memory_sections: set[str] = set()

    def params(self, **params) -> dict:
        extra = {} if self.train_threads is None else {"train_threads": self.train_threads}
        return {"device": str(self.device), **extra, **params}

    def memory(self, row: dict, baseline: tuple[str, dict] | None, measured: tuple[str, dict] | None) -> dict:
        """Adds baseline_peak_mb / measured_peak_mb (or the reason they are missing) to ``row``.

        A quick run measures the first row of each section only (the children take time)."""
        section = row["id"].split("/")[0]
        if self.quick and section in self.memory_sections:
            return row
        self.memory_sections.add(section)
        for side, spec in (("baseline", baseline), ("measured", measured)):
            if spec is None:
                continue
            result = self.probe.measure(*spec)
            if "peak_mb" in result:
                row[f"{side}_peak_mb"] = result["peak_mb"]
            elif "error" in result:
                row.setdefault("notes", []).append(f"{side} memory: {result['error']}")
        return row


def section_mcm(ctx: Context) -> dict:
    names = [n for n in (FUN, GO) if mcm_speed.HIERARCHIES[n].exists()]
    batches = (4, 64, 512)
    methods = ("dense", AUTO_METHOD) if ctx.quick else ("dense", AUTO_METHOD, "pairs")
    quick_dense_limit = 1e8  # elements of dense's (B, N, N) tensor in a quick run
    rows, raw, notes = [], [], []
    for name in names:
        hierarchy = _hierarchy(name)
        modules = {m: MaxConstraint(hierarchy, m).to(ctx.device) for m in methods}
        for batch in batches:
            reason = mcm_speed.dense_skip_reason(modules["dense"], batch, 4, 8.0, ctx.device)
            if reason is None and ctx.quick and batch * len(hierarchy) ** 2 > quick_dense_limit:
                reason = f"quick run: dense (B, N, N) has {batch * len(hierarchy) ** 2:.1e} elements > {quick_dense_limit:.0e}"
            timed = [m for m in methods if m != "dense" or reason is None]
            with torch_threads(ctx.threads):
                steps = {m: mcm_speed.make_step(modules[m], batch, torch.float32, "sum", ctx.device) for m in timed}
                result = compare(steps, ctx.rounds, ctx.budget_s, ctx.min_call_s)
            for m in methods:
                raw.append({"hierarchy": name, "nodes": len(hierarchy), "batch": batch, "method": m,
                            "threads": ctx.threads, **result.get(m, {"skipped": reason}),
                            "extra_mem_mb_est": mcm_speed.extra_memory_bytes(modules[m], batch, 4) / 2**20})
            dense_ms = result["dense"]["median_s"] * 1e3 if "dense" in result else None
            for m in methods[1:]:
                row = comparison(f"mcm/{name}/{batch}/{m}", f"{name} ({len(hierarchy)} nodes), batch {batch}",
                                 "dense", dense_ms, m, result[m]["median_s"] * 1e3, "ms",
                                 hierarchy=name, batch=batch, method=m, threads=ctx.threads,
                                 **({"notes": [f"dense skipped: {reason}"]} if reason else {}))
                dense_spec = ("mcm", ctx.params(hierarchy=name, method="dense", batch=batch, threads=ctx.threads))
                fast_spec = ("mcm", ctx.params(hierarchy=name, method=m, batch=batch, threads=ctx.threads))
                rows.append(ctx.memory(row, dense_spec if reason is None else None, fast_spec))
            del steps
            gc.collect()
    if len(names) < 2:
        notes.append("missing hierarchies: " + ", ".join(n for n in (FUN, GO) if n not in names))
    notes.append("forward + backward of out.sum() on sigmoid(randn) inputs, float32; time per step")
    return {"rows": rows, "raw": raw, "notes": notes}


def _per_step_rows(ctx: Context, variants: dict[str, tuple[str, dict]], baseline: str, case: str, id_prefix: str,
                   per: str, extra: dict, budget_factor: float = 1.0) -> tuple[list[dict], list[dict]]:
    """Time the training workloads ``variants`` (name -> (task, params)) against ``baseline``."""
    built = {name: build(task, params) for name, (task, params) in variants.items()}
    result = compare(built, ctx.rounds, ctx.budget_s * budget_factor, inner=1)
    steps = {name: built[name].steps for name in built}
    raw = [{"variant": name, "steps": steps[name], **extra, **result[name]} for name in built]
    rows = []
    for name in built:
        if name == baseline:
            continue
        if per == "epoch":
            b, m, unit = result[baseline]["median_s"], result[name]["median_s"], "s/epoch"
        else:
            b = result[baseline]["median_s"] / steps[baseline] * 1e3
            m, unit = result[name]["median_s"] / steps[name] * 1e3, "ms/step"
        row = comparison(f"{id_prefix}/{name}", case, baseline, b, name, m, unit, **extra)
        rows.append(ctx.memory(row, _memory_spec(variants[baseline]), _memory_spec(variants[name])))
    del built
    gc.collect()
    return rows, raw


def _memory_spec(spec: tuple[str, dict]) -> tuple[str, dict]:
    """The same workload cut to 3 training steps (the peak is reached after the first)."""
    task, params = spec
    return (task, {**params, "max_steps": 3}) if task.startswith("train") else spec


def section_epoch(ctx: Context) -> dict:
    rows, raw, notes = [], [], []
    max_steps = 5 if ctx.quick else None
    for name in (FUN, GO):
        if not available(name):
            notes.append(f"{name}: data not at hand, skipped")
            continue
        train, _ = dataset(name)
        variants, steps = {}, {}
        for preset in ("paper", "fast"):
            config = training_config(name, preset, str(ctx.device), threads=ctx.train_threads)
            variants[preset] = ("train", ctx.params(dataset=name, preset=preset, max_steps=max_steps))
            steps[preset] = (config.batch_size, -(-len(train.X) // config.batch_size), fit_threads(config))
        built = {p: build(*variants[p]) for p in variants}
        result = compare(built, ctx.rounds, ctx.budget_s * 1.5, inner=1)
        epoch_s = {}
        for preset, run in built.items():
            batch, full_steps, threads = steps[preset]
            per_step = result[preset]["median_s"] / run.steps
            epoch_s[preset] = per_step * full_steps
            raw.append({"dataset": name, "preset": preset, "batch": batch, "steps_timed": run.steps,
                        "steps_per_epoch": full_steps, "threads": threads, "ms_per_step": per_step * 1e3,
                        "epoch_s": epoch_s[preset], "extrapolated": run.steps != full_steps, **result[preset]})
        label = f"{name}: one epoch ({len(train.X)} samples)"
        if any(r["extrapolated"] for r in raw if r["dataset"] == name):
            label += f", extrapolated from {max_steps} steps"
        row = comparison(f"epoch/{name}/fast", label, f"paper (batch {steps['paper'][0]})", epoch_s["paper"],
                         f"fast (batch {steps['fast'][0]})", epoch_s["fast"], "s/epoch", dataset=name,
                         baseline_ms_per_step=raw[-2]["ms_per_step"], measured_ms_per_step=raw[-1]["ms_per_step"])
        rows.append(ctx.memory(row, _memory_spec(variants["paper"]), _memory_spec(variants["fast"])))
        del built
        gc.collect()
    notes.append("hmlearn.training.fit.train_epoch (objective + fused Adam) on train+valid, heads = 1, threads as fit() "
                 "chooses them (1 at batch <= 32)")
    return {"rows": rows, "raw": raw, "notes": notes}


def section_heads(ctx: Context) -> dict:
    rows, raw, notes = [], [], []
    if not available(FUN):
        return {"rows": [], "raw": [], "notes": [f"{FUN}: data not at hand"], "skipped": f"{FUN} not at hand"}
    max_steps = 3 if ctx.quick else 200  # batch 4: 200 of 613 steps, extrapolated; batch 64: whole epochs
    heads = (1, 8) if ctx.quick else (1, 2, 4, 8)
    bandwidth = stream_bandwidth_gbs(64 if ctx.quick else 512)
    for batch in (4, 64):
        variants = {}
        for h in heads:
            variants[f"H={h} vectorised"] = ("train", ctx.params(dataset=FUN, preset="paper", max_steps=max_steps,
                                                                overrides={"heads": h, "batch_size": batch}))
            if h > 1:
                variants[f"H={h} loop"] = ("train_loop", ctx.params(dataset=FUN, preset="paper", copies=h,
                                                                   max_steps=max_steps,
                                                                   overrides={"heads": 1, "batch_size": batch}))
        built = {name: build(*spec) for name, spec in variants.items()}
        result = compare(built, ctx.rounds, ctx.budget_s * 2, inner=1)
        epoch = {}
        for name, run in built.items():
            steps = run.steps if isinstance(run, TrainingRun) else run.runs[0].steps
            full = -(-len(dataset(FUN)[0].X) // batch)
            epoch[name] = result[name]["median_s"] * full / steps
            raw.append({"variant": name, "batch": batch, "steps_timed": steps, "steps_per_epoch": full,
                        "epoch_s": epoch[name], "extrapolated": steps != full, **result[name]})
        suffix = f", extrapolated from {max_steps} steps" if any(r["extrapolated"] for r in raw if r["batch"] == batch) else ""
        for h in heads[1:]:
            vec, loop = f"H={h} vectorised", f"H={h} loop"
            row = comparison(f"heads/{batch}/{h}/loop", f"batch {batch}, H = {h}: loop vs vectorised{suffix}",
                             f"loop of {h} single-head models", epoch[loop], f"{h} vectorised heads", epoch[vec],
                             "s/epoch", batch=batch, heads=h)
            rows.append(ctx.memory(row, _memory_spec(variants[loop]), _memory_spec(variants[vec])))
            row = comparison(f"heads/{batch}/{h}/single", f"batch {batch}, H = {h} vectorised vs one head{suffix}",
                             "1 head", epoch["H=1 vectorised"], f"{h} vectorised heads", epoch[vec], "s/epoch",
                             batch=batch, heads=h, cost=epoch[vec] / epoch["H=1 vectorised"],
                             **_streaming_floor(built[vec].network, bandwidth, full, epoch["H=1 vectorised"]))
            rows.append(ctx.memory(row, _memory_spec(variants["H=1 vectorised"]), _memory_spec(variants[vec])))
        if batch == 4 and not ctx.quick:  # what the optimizer alone costs: a floor under any H = 8 step
            spec = ("adam_step", ctx.params(dataset=FUN, preset="paper", overrides={"heads": heads[-1], "batch_size": 4}))
            timed = compare({"adam": build(*spec)}, ctx.rounds, ctx.budget_s, min_call_s=0.2)["adam"]
            full = -(-len(dataset(FUN)[0].X) // batch)
            adam_epoch = timed["median_s"] * full
            raw.append({"variant": f"H={heads[-1]} Adam step alone", "batch": batch, "steps_per_epoch": full,
                        "epoch_s": adam_epoch, **timed})
            row = comparison(f"heads/{batch}/{heads[-1]}/adam-floor",
                             f"batch {batch}: fused Adam steps alone over {heads[-1]} heads' parameters, one epoch",
                             "1 head, whole epoch", epoch["H=1 vectorised"], f"Adam alone, {heads[-1]} heads",
                             adam_epoch, "s/epoch", batch=batch, heads=heads[-1],
                             cost=adam_epoch / epoch["H=1 vectorised"])
            rows.append(ctx.memory(row, _memory_spec(variants["H=1 vectorised"]), _memory_spec(spec)))
            parameters = sum(p.numel() for p in built[f"H={heads[-1]} vectorised"].network.parameters())
            notes.append("the Adam-alone row is a floor under an H-head step: Adam must read and write every "
                         f"parameter, gradient and moment once per step (28 bytes per parameter; {heads[-1]} heads: "
                         f"{parameters / 1e6:.1f} M parameters, {parameters * 28 / 1e6:.0f} MB per step), whatever "
                         "the heads code does")
        del built
        gc.collect()
    notes.append(f"{FUN}, paper network (hidden 500, 3 layers), MCLoss, fused Adam, threads as fit() chooses them; "
                 "the loop trains H single-head models one after another, each with its own optimizer; "
                 "'cost' = measured / baseline (the issue's H=8 / H=1 figure)")
    more_rows, more_raw, more_notes = _heads_across_fun(ctx, heads[-1], bandwidth)
    return {"rows": rows + more_rows, "raw": raw + more_raw, "notes": notes + more_notes}


TRAFFIC_BYTES_PER_PARAMETER = 40  # forward reads W, backward reads W and writes dW, Adam reads p g m v, writes p m v


def stream_bandwidth_gbs(megabytes: int, repeats: int = 5) -> float:
    """This machine's single-thread memory bandwidth: bytes read + written per second copying a buffer
    far larger than any cache (best of ``repeats``); what a step that streams its state is bound by."""
    source = torch.empty(megabytes * 2**20 // 4).uniform_()
    target = torch.empty_like(source)
    best = math.inf
    with torch_threads(1):
        target.copy_(source)
        for _ in range(repeats):
            started = time.perf_counter()
            target.copy_(source)
            best = min(best, time.perf_counter() - started)
    return 2 * source.numel() * 4 / best / 1e9


def _streaming_floor(network: torch.nn.Module, bandwidth_gbs: float, steps: int, one_head_epoch_s: float) -> dict:
    """The time an epoch needs only to stream ``network``'s training state through memory, over one head's epoch."""
    parameters = sum(p.numel() for p in network.parameters())
    floor_epoch = parameters * TRAFFIC_BYTES_PER_PARAMETER / (bandwidth_gbs * 1e9) * steps
    return {"parameters": parameters, "bandwidth_gbs": bandwidth_gbs, "steps_per_epoch": steps,
            "floor_cost": floor_epoch / one_head_epoch_s}


def _heads_across_fun(ctx: Context, heads: int, bandwidth: float) -> tuple[list, list, list]:
    """H vectorised heads vs one head at batch 4 on the other FUN datasets at hand (the target says "FUN
    datasets"), beside the time a step needs just to stream its parameters, gradients and Adam moments."""
    names = [n for n in DATASETS if n.endswith("_FUN") and n != FUN and available(n)]
    if ctx.quick:
        names = names[:1]
    rows, raw = [], []
    for name in names:
        max_steps = 3 if ctx.quick else (50 if DATASETS[name].hidden_dim > 1000 else 100)
        variants = {f"H={h}": ("train", ctx.params(dataset=name, preset="paper", max_steps=max_steps,
                                                   overrides={"heads": h, "batch_size": 4})) for h in (1, heads)}
        built = {v: build(*spec) for v, spec in variants.items()}
        result = compare(built, ctx.rounds, ctx.budget_s * 2, inner=1)
        full = -(-len(dataset(name)[0].X) // 4)
        epoch = {v: result[v]["median_s"] * full / built[v].steps for v in built}
        base, measured = epoch["H=1"], epoch[f"H={heads}"]
        for v in built:
            raw.append({"variant": f"{name} {v}", "batch": 4, "steps_timed": built[v].steps, "steps_per_epoch": full,
                        "epoch_s": epoch[v], **result[v]})
        row = comparison(f"heads/fun/{name}", f"{name} (hidden {DATASETS[name].hidden_dim}), batch 4, H = {heads} "
                         f"vs one head, extrapolated from {max_steps} steps", "1 head", base,
                         f"{heads} vectorised heads", measured, "s/epoch", dataset=name, batch=4, heads=heads,
                         cost=measured / base, **_streaming_floor(built[f"H={heads}"].network, bandwidth, full, base))
        rows.append(ctx.memory(row, _memory_spec(variants["H=1"]), _memory_spec(variants[f"H={heads}"])))
        del built
        gc.collect()
    notes = [f"FUN datasets at hand, paper network per dataset, batch 4, threads as fit() chooses them; 'streaming "
             f"them alone' = {TRAFFIC_BYTES_PER_PARAMETER} bytes per parameter per step (forward reads W, backward "
             "reads W and writes its gradient, Adam reads parameter, gradient and both moments and writes three) "
             f"at this machine's single-thread copy bandwidth, {bandwidth:.1f} GB/s (512 MB buffer), over one "
             "epoch, divided by one head's measured epoch: a floor for stock torch operators whenever the state "
             "outgrows the cache"]
    return rows, raw, notes


def section_objective(ctx: Context) -> dict:
    rows, raw, notes = [], [], []
    if not available(FUN):
        return {"rows": [], "raw": [], "notes": [], "skipped": f"{FUN} not at hand"}
    for batch in (4, 64):
        steps = (3 if ctx.quick else 100) if batch == 4 else (3 if ctx.quick else 20)
        common = {"heads": 4, "batch_size": batch}
        variants = {"MCLoss": ("train", ctx.params(dataset=FUN, preset="paper", max_steps=steps, overrides=common))}
        variants["node weights"] = ("train", ctx.params(dataset=FUN, preset="paper", max_steps=steps,
                                                       overrides={**common, "node_weights": "class-wise"}))
        for measure in (("predictive", "epistemic") if ctx.quick else MEASURES):
            variants[f"node weights + focal ({measure})"] = (
                "train", ctx.params(dataset=FUN, preset="paper", max_steps=steps,
                                    overrides={**common, "node_weights": "class-wise", "focal": measure}))
        more_rows, more_raw = _per_step_rows(ctx, variants, "MCLoss", f"batch {batch}, H = 4", f"objective/{batch}",
                                             "step", {"batch": batch})
        for row in more_rows:
            row["overhead"] = row["measured_value"] / row["baseline_value"] - 1
            row["case"] = f"batch {batch}, H = 4: {row['measured']}"
        rows += more_rows
        raw += more_raw
    notes.append(f"{FUN}, paper network, 4 heads, one train_epoch over a fixed number of steps per round; "
                 "'overhead' = measured / baseline - 1")
    return {"rows": rows, "raw": raw, "notes": notes}


def section_load(ctx: Context) -> dict:
    names = [n for n in DATASETS if available(n)]
    if ctx.quick:
        names = [n for n in (FUN, GO) if n in names]
    rows, raw = [], []
    repeats = 3 if ctx.quick else 7
    for name in names:
        r = load_speed.measure_load(name, repeats)
        raw.append(r)
        row = comparison(f"load/{name}", f"{name} ({'+'.join(r['splits'])}, {r['samples']} samples)",
                         "cold (parse)", r["cold_s"], "warm (cache)", r["warm_median_s"], "s", dataset=name,
                         warm_best_s=r["warm_best_s"])
        with tempfile.TemporaryDirectory(prefix="hmlearn-bench-") as cold, \
                tempfile.TemporaryDirectory(prefix="hmlearn-bench-") as warm:
            ctx.memory(row, ("load", {"dataset": name, "cold": True, "cache": cold}),
                       ("load", {"dataset": name, "cold": False, "cache": warm}))
        rows.append(row)
    notes = [f"every split file, through hmlearn.data.store.load_dataset; warm = median of {repeats} loads",
             "datasets not at hand: " + (", ".join(n for n in DATASETS if not available(n)) or "none")]
    return {"rows": rows, "raw": raw, "notes": notes}


def section_predict(ctx: Context) -> dict:
    rows, raw, notes = [], [], []
    train_rows = 128 if ctx.quick else None
    eval_rows = 200 if ctx.quick else None  # scikit-learn takes seconds on the whole GO test split
    for name in (GO, FUN):
        if not available(name):
            notes.append(f"{name}: data not at hand, skipped")
            continue
        run = Prediction(name, str(ctx.device), train_rows, ctx.train_threads)
        S = len(run.test.X)
        with torch_threads(ctx.threads):
            result = compare({"forward": run.forward, "predict_proba": run.predict}, ctx.rounds, ctx.budget_s,
                             ctx.min_call_s)
        forward_s, predict_s = result["forward"]["median_s"], result["predict_proba"]["median_s"]
        raw.append({"dataset": name, "test_samples": S, "train_seconds_one_epoch": run.train_seconds,
                    "batch_size": run.config.batch_size, "threads": ctx.threads, "forward": result["forward"],
                    "predict_proba": result["predict_proba"], "predict_samples_per_s": S / predict_s})
        spec = {"dataset": name, "train_rows": 64, "threads": ctx.threads, "eval_rows": eval_rows}
        row = comparison(f"predict/{name}", f"{name}: {S} test samples", "network forward only", forward_s,
                         "predict_proba", predict_s, "s", dataset=name, samples_per_s=S / predict_s,
                         forward_samples_per_s=S / forward_s)
        rows.append(ctx.memory(row, ("forward", ctx.params(**spec)), ("predict", ctx.params(**spec))))
        if name == GO or not any(r["id"].startswith("evaluate/") for r in rows):
            from hmlearn.metrics import evaluate

            Y, P, hierarchy, train_Y = run.test.Y[:eval_rows], run.predict()[:eval_rows], run.train.hierarchy, run.train.Y
            S = len(Y)
            result = compare({"scikit-learn": lambda: sklearn_metrics(Y, P, hierarchy),  # noqa: B023 - called here
                              "evaluate": lambda: evaluate(Y, P, hierarchy, train_Y=train_Y)},  # noqa: B023
                             ctx.rounds, ctx.budget_s, ctx.min_call_s)
            raw.append({"dataset": name, "metrics": result})
            row = comparison(f"evaluate/{name}", f"{name}: metrics on {S} x {int(run.train.hierarchy.evaluated.sum())} "
                             "test scores", "scikit-learn (AP micro x2, P/R/F1 per node)",
                             result["scikit-learn"]["median_s"], "hmlearn.metrics.evaluate",
                             result["evaluate"]["median_s"], "s", dataset=name)
            rows.append(ctx.memory(row, ("sklearn_metrics", ctx.params(**spec)), ("evaluate", ctx.params(**spec))))
        del run
        gc.collect()
    notes.append("model: fast preset, trained 1 epoch on train+valid" + (" (first 128 rows: quick)" if ctx.quick else "")
                 + ("; metrics on the first 200 test rows (quick)" if ctx.quick else "")
                 + "; predict_proba = standardise, forward, sigmoid, MCM, mean over heads, to numpy; "
                 "memory children train on 64 rows (the weights do not change the cost)")
    return {"rows": rows, "raw": raw, "notes": notes}


def section_scaling(ctx: Context) -> dict:
    if not (BENCH / "scaling.py").exists():
        return {"rows": [], "raw": [], "notes": [], "skipped": "bench/scaling.py not found (not written yet)"}
    import scaling

    raw = scaling.run_scaling(quick=ctx.quick, device=str(ctx.device))
    plot = Path(ctx.out) / "scaling.png"
    scaling.write_plot(raw, plot)
    return {"rows": [], "raw": raw, "notes": [f"plot: {plot.name}"], "plot": str(plot)}


SCALING_COLUMNS = ("kind", "nodes", "edges", "nnz_R", "method", "batch", "status", "time_s", "peak_mb", "reason")
RUNNERS = {"mcm": section_mcm, "epoch": section_epoch, "heads": section_heads, "objective": section_objective,
           "load": section_load, "predict": section_predict, "scaling": section_scaling}
TITLES = {
    "mcm": "MCM: dense vs fast, forward + backward",
    "epoch": "Training epoch: paper protocol vs fast preset",
    "heads": "Ensembles: H vectorised heads vs a loop of H models, and vs one head",
    "objective": "Rare-node objective: overhead over plain MCLoss (H = 4)",
    "load": "Dataset load: cold (parse) vs warm (cache)",
    "predict": "Prediction and evaluation on the test split",
    "scaling": "Scaling curve (bench/scaling.py)",
}


# ----------------------------------------------------------------------------- acceptance
def _row(results: dict, row_id: str) -> dict | None:
    for section in results["sections"].values():
        for row in section.get("rows", []):
            if row["id"] == row_id:
                return row
    return None


def acceptance(results: dict) -> list[dict]:
    """One entry per acceptance target of the issue: met (True / False) or None (not measured)."""
    quick = results["settings"]["quick"]
    targets = []

    def add(key: str, target: str, met: bool | None, measured: str) -> None:
        targets.append({"id": key, "target": target, "met": met, "measured": measured})

    row = _row(results, f"mcm/{GO}/64/{AUTO_METHOD}")
    if row and row["ratio"] is not None:
        add("mcm-100x", "spo_GO: fast MCM forward + backward >= 100x faster than dense at batch 64", row["ratio"] >= 100,
            f"{row['ratio']:.0f}x (dense {row['baseline_value']:.1f} ms, {AUTO_METHOD} {row['measured_value']:.2f} ms)")
    else:
        add("mcm-100x", "spo_GO: fast MCM forward + backward >= 100x faster than dense at batch 64", None,
            "dense not timed at batch 64" + (" (quick run)" if quick else "") if row else "not measured")
    row = _row(results, f"mcm/{GO}/512/{AUTO_METHOD}")
    dense_skipped = row is not None and row["baseline_value"] is None and any("GB" in n for n in row.get("notes", []))
    add("mcm-512", "spo_GO: fast MCM runs at batch 512 where dense cannot (memory)",
        None if row is None else (row["measured_value"] is not None and dense_skipped),
        "not measured" if row is None else
        f"{AUTO_METHOD} {row['measured_value']:.1f} ms; dense: " + ("; ".join(row.get("notes", [])) or "ran"))
    row, floor = _row(results, "heads/4/8/single"), _row(results, "heads/4/8/adam-floor")
    others = [r for r in results["sections"].get("heads", {}).get("rows", []) if r["id"].startswith("heads/fun/")]
    measured = "not measured"
    if row is not None:
        measured = (f"{FUN} {row['cost']:.2f}x ({row['measured_value']:.2f} s vs {row['baseline_value']:.2f} s per "
                    f"epoch; streaming the 8 heads' state alone {row['floor_cost']:.2f}x)")
        if floor is not None:
            measured += f"; the 8 heads' Adam steps alone cost {floor['cost']:.2f}x one head's whole epoch"
        if others:
            measured += "; " + ", ".join(f"{r['dataset']} {r['cost']:.2f}x (streaming {r['floor_cost']:.2f}x)"
                                         for r in others)
    add("heads-3x", "FUN, batch 4 (paper protocol): H = 8 vectorised heads cost <= 3x one head per epoch",
        None if row is None else all(r["cost"] <= 3 for r in [row, *others]), measured)
    row = _row(results, "heads/64/8/loop")
    add("heads-loop", "FUN, batch 64: H = 8 vectorised heads faster than a loop over 8 single-head models",
        None if row is None else row["ratio"] > 1,
        "not measured" if row is None else
        f"loop / vectorised = {row['ratio']:.2f} ({row['baseline_value']:.2f} s vs {row['measured_value']:.2f} s per epoch)")
    loads = results["sections"].get("load", {}).get("rows", [])
    if loads:
        worst = max(loads, key=lambda r: r["measured_value"])
        add("load-warm", "warm-cache load of every benchmark dataset < 0.2 s",
            all(r["measured_value"] < 0.2 for r in loads),
            f"slowest {worst['dataset']} {worst['measured_value']:.3f} s (median) over {len(loads)} datasets")
    else:
        add("load-warm", "warm-cache load of every benchmark dataset < 0.2 s", None, "not measured")
    row = _row(results, f"predict/{GO}")
    add("predict-1s", "prediction on spo_GO's test split < 1 s", None if row is None else row["measured_value"] < 1.0,
        "not measured" if row is None else
        f"{row['measured_value']:.3f} s ({row['samples_per_s']:.0f} samples/s)")
    return targets


# ----------------------------------------------------------------------------- output
def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}g}" if magnitude < 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _ratio(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"


def markdown(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    lines = [
        "# Performance benchmark (issue 8)",
        "",
        f"Command: `{s['command']}`  ",
        f"Run {s['started']} for {s['seconds']:.0f} s{' (quick: tiny versions, indicative only)' if s['quick'] else ''}.",
        "",
        f"Machine: {m['cpu']}, {m['cpus_usable']} usable of {m['cpu_count']} CPUs, {m['memory_gb']} GB RAM, "
        + (f"{m['last_level_cache_mb']:g} MB last-level cache, " if m.get("last_level_cache_mb") else "")
        + f"{m['platform']}; Python {m['python']}, torch {m['torch']} ({m['blas']}), default torch threads "
        f"{m['torch_threads_default']}; device {m['device']}" + (f" ({m['gpu']}, {m['gpu_memory_gb']} GB, CUDA "
                                                                  f"{m['cuda']})" if m.get("gpu") else "")
        + f". Load average at start {_fmt_load(m.get('load_average_start'))}, at end "
          f"{_fmt_load(m.get('load_average_end'))} (a shared machine makes timings noisy: ratios are "
          "measured side by side, interleaved, medians).",
        "",
        f"Ratio = {RATIO} (above 1: the measured variant is faster). Peak memory: {s['memory_method']}; it "
        "includes the data and model each measurement builds and torch's one-time CPU runtime buffers (~20 MB)"
        + (" (quick: first row of each section only)" if s["quick"] else "") + ".",
        f"Threads: {s['threads']} for mcm and predict; training: {s['train_threads']}.",
        "",
    ]
    for key in s["sections"]:
        section = results["sections"].get(key, {})
        lines += [f"## {TITLES[key]}", ""]
        if section.get("error"):
            lines += [f"Error: `{section['error']}`", ""]
        if section.get("skipped"):
            lines += [f"Skipped: {section['skipped']}", ""]
        if section.get("rows"):
            lines += ["| case | baseline | baseline | measured | measured | unit | ratio | extra | peak MB (baseline / measured) |",
                      "|---|---|---:|---|---:|---|---:|---|---:|"]
            for r in section["rows"]:
                extra = []
                if "cost" in r:
                    extra.append(f"cost {r['cost']:.2f}x")
                if "floor_cost" in r:
                    extra.append(f"{r['parameters'] / 1e6:.2f} M parameters; streaming them alone {r['floor_cost']:.2f}x")
                if "overhead" in r:
                    extra.append(f"overhead {100 * r['overhead']:+.0f}%")
                if "samples_per_s" in r:
                    extra.append(f"{r['samples_per_s']:,.0f} samples/s")
                if "baseline_ms_per_step" in r:
                    extra.append(f"{r['baseline_ms_per_step']:.2f} / {r['measured_ms_per_step']:.2f} ms/step")
                extra += r.get("notes", [])
                memory = " / ".join("-" if r.get(k) is None else f"{r[k]:,.1f}" for k in ("baseline_peak_mb", "measured_peak_mb"))
                lines.append(f"| {r['case']} | {r['baseline']} | {_fmt(r['baseline_value'])} | {r['measured']} | "
                             f"{_fmt(r['measured_value'])} | {r['unit']} | {_ratio(r['ratio'])} | {'; '.join(extra)} | "
                             f"{memory} |")
            lines.append("")
        elif key == "scaling" and section.get("raw"):
            present = list(dict.fromkeys(k for r in section["raw"] for k in r))
            columns = [c for c in SCALING_COLUMNS if c in present] or present
            lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in section["raw"]]
            lines.append("")
        for note in section.get("notes", []):
            lines.append(f"- {note}")
        if "seconds" in section:
            lines.append(f"- section wall time {section['seconds']:.0f} s")
        lines.append("")
    lines += ["## Acceptance targets", ""]
    for t in results["acceptance"]:
        state = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"- **{state}**: {t['target']}: {t['measured']}")
    lines += ["", f"Every figure above was printed by `{s['command']}` (this file and perf.json beside it).", ""]
    return "\n".join(lines)


def _fmt_load(load) -> str:
    return "-" if not load else " / ".join(f"{x:.2f}" for x in load)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny versions of everything (seconds; CI smoke test)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda (cuda:N) or auto (cuda when available)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "perf", help="folder for perf.json and perf.md")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for mcm and predict (default: torch's); training follows fit()'s rule")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per comparison (at least 3)")
    parser.add_argument("--budget-s", type=float, default=20.0, help="rough time budget per comparison")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    try:
        device = resolve_device(args.device)
    except Exception as error:  # noqa: BLE001 - HMLError: cuda asked for, not available
        parser.error(str(error))
    os.environ.setdefault("HMLEARN_OFFLINE", "1")  # the suite times what is at hand; it never downloads
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = "python " + " ".join(shlex.quote(a) for a in ["bench/suite.py", *(sys.argv[1:] if argv is None else argv)])
    machine = describe_machine(device)
    print(f"{command}\n{machine['cpu']}, {machine['cpus_usable']} CPUs, torch {machine['torch']}, device {device}",
          flush=True)
    probe = MemoryProbe(device, enabled=not args.no_memory)
    ctx = Context(args, device, probe)
    results = {"machine": machine, "settings": {
        "command": command, "quick": args.quick, "device": str(device), "sections": sections,
        "threads": ctx.threads, "train_threads": ctx.train_threads or "fit()'s rule", "rounds": ctx.rounds, "started": dt.datetime.now().isoformat(timespec="seconds"),
        "memory_method": probe.method, "memory_baseline_mb": probe.baseline_mb, "ratio": RATIO}, "sections": {}}
    for key in sections:
        tic = time.perf_counter()
        print(f"[{key}] ...", flush=True)
        try:
            section = RUNNERS[key](ctx)
        except Exception as error:  # noqa: BLE001 - one broken section must not lose the others
            traceback.print_exc()
            section = {"rows": [], "raw": [], "notes": [], "error": f"{type(error).__name__}: {error}"}
        section["seconds"] = time.perf_counter() - tic
        section["title"] = TITLES[key]
        results["sections"][key] = section
        for row in section.get("rows", []):
            print(f"  {row['case']}: {row['baseline']} {_fmt(row['baseline_value'])} vs {row['measured']} "
                  f"{_fmt(row['measured_value'])} {row['unit']} -> {_ratio(row['ratio'])}", flush=True)
        if section.get("skipped"):
            print(f"  skipped: {section['skipped']}", flush=True)
    machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["settings"]["seconds"] = time.perf_counter() - started
    results["acceptance"] = acceptance(results)
    (args.out / "perf.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    text = markdown(results)
    (args.out / "perf.md").write_text(text)
    print("\n" + text[text.index("## Acceptance targets"):])
    print(f"wrote {args.out / 'perf.json'} and {args.out / 'perf.md'} in {results['settings']['seconds']:.0f} s")
    return 1 if any(s.get("error") for s in results["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
