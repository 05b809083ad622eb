"""Scaling of the max constraint module: time and peak memory of a training epoch as the hierarchy grows.

For synthetic trees and DAGs of 100 to 50,000 nodes, runs one training epoch per MCM method
(``"dense"``, the published O(B N^2) reference, and the fast ``"levels"`` / ``"pairs"``), beside
a flat ``"bce"`` epoch that uses no MCM at all (the floor), and prints a markdown table, the
fitted growth exponents and a log-log plot. Claim checked by a number: the fast path's memory
grows with the edges (slope ~1 against nodes), dense's with nodes squared (slope ~2).

An *epoch* is ``hmlearn.training.fit.train_epoch`` over ``--samples`` samples (default 1,024) in
batches of ``--batch`` (64): a one-layer ``HeadsMLP`` (``--features`` = 16 inputs -> N logits,
so the MCM and the loss dominate), sigmoid, the objective ``build_objective`` builds (mean
MCLoss, or flat BCE for ``"bce"``), backward and an Adam step. Labels: 2 random nodes per
sample, closed upwards.

Each cell runs in its own process, forked from a server that has imported torch and run
nothing: build the hierarchy, network and data, run a 2-sample warm-up epoch (loads the code),
reset the peak RSS (``/proc/self/clear_refs``), run the memory epoch, read the peak
(``resource.getrusage``); memory = peak RSS during the epoch minus RSS just before it. Until
then glibc mmaps every block from 64 KiB (``mallopt``), so RSS follows the live tensors: with
glibc's default, freed blocks stay in the heap and the same cell read 183 to 393 MB from run to
run; now it repeats to 0.1 MB. Where the peak cannot be reset, a baseline child does everything
but the epoch and memory is the difference of the two ``ru_maxrss``. On CUDA:
``torch.cuda.max_memory_allocated`` over the epoch. Time: median of up to ``--repeats`` further
epochs (fewer once they pass ``--epoch-budget-s``), with the 32 MiB mmap threshold glibc grows
to by itself.

Dense is skipped where its (B, N, N) tensors would exceed ``--max-dense-gb`` (default half the
memory available at start) or where its epoch, extrapolated as N^2 from the largest size it
ran at, would exceed ``--max-dense-s``; the table says which and by how much.

    python bench/scaling.py --out bench/results/scaling          # ~10 min on 2 cores
    python bench/scaling.py --quick                              # seconds, CI smoke test
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import numpy as np
import torch

from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.constraint import AUTO_METHOD, METHODS, MaxConstraint
from hmlearn.nn.heads import HeadsMLP
from hmlearn.training.config import TrainConfig
from hmlearn.training.fit import adam, build_objective, train_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mcm_speed import available_bytes  # noqa: E402 -- the benchmark beside this file

SIZES = [100, 300, 1000, 3000, 10000, 30000, 50000]
QUICK_SIZES = [50, 200, 1000]
KINDS = ("tree", "dag")
FLAT = "bce"  # the floor: the same epoch with the flat BCE objective, no MCM
ALL_METHODS = (*METHODS, FLAT)
# Relative number of nodes per level below the root. Trees: FunCat-like, 6 levels, widest at
# levels 3-4. DAGs: GO-like, 13 levels, widest in the middle.
TREE_PROFILE = (1, 4, 10, 12, 8, 4)
DAG_PROFILE = (1, 3, 8, 15, 20, 20, 16, 12, 8, 5, 3, 2, 1)
EXTRA_PARENTS = 0.75  # DAG: Poisson mean of the extra parents of a node below level 1 (at most 4)
PARENT_WINDOW = 8  # DAG: an extra parent is within this many positions of the first parent's place
LABELS_PER_SAMPLE = 2
FIT_MIN_NODES = 1000  # exponents are fitted on sizes >= this where a method has 2 of them, else on all


# ---------------------------------------------------------------------------- hierarchies
def synthetic_hierarchy(kind: str, n_nodes: int, seed: int = 0) -> Hierarchy:
    """A random tree (``kind="tree"``) or DAG (``"dag"``) of ``n_nodes`` nodes under a not-evaluated root.

    Vectorised (50,000 nodes in ~0.2 s). Nodes are spread over the levels of ``TREE_PROFILE``
    (6 levels) or ``DAG_PROFILE`` (13, GO-like), at least one per level; each node's first
    parent is a random node of the level above, children ordered like their parents, so
    positions within a level follow the tree. A DAG node below level 1 also gets
    ``min(Poisson(0.75), 4)`` extra parents (~1.7 parents per node), from the level above (70%)
    or any shallower level, near its first parent's position: related nodes share parents, as
    in GO, and a node has ~10-30 ancestors instead of a large share of the hierarchy (a
    uniformly drawn second parent, as :func:`hmlearn.data.synthetic.random_hierarchy` draws it,
    makes nnz(R) grow like N^2). Trees keep the level order of :meth:`Hierarchy.from_paths`;
    DAG nodes are shuffled, as GO identifiers sorted by name carry no structure.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown hierarchy kind {kind!r}; expected one of {KINDS}")
    n_nodes = max(int(n_nodes), 2)
    rng = np.random.default_rng(seed)
    sizes = _level_sizes(n_nodes, TREE_PROFILE if kind == "tree" else DAG_PROFILE)
    start = np.concatenate([[1], 1 + np.cumsum(sizes)])  # index of the first node of each level
    parents, children = [np.zeros(sizes[0], dtype=np.int64)], [np.arange(1, 1 + sizes[0])]
    for level in range(1, len(sizes)):
        above, count = sizes[level - 1], sizes[level]
        position = np.sort(rng.integers(0, above, count))  # first parent, as a position in the level above
        nodes = start[level] + np.arange(count)
        parents.append(start[level - 1] + position)
        children.append(nodes)
        if kind == "dag":
            extra = np.minimum(rng.poisson(EXTRA_PARENTS, count), 4)
            child = np.repeat(nodes, extra)
            relative = np.repeat(position / above, extra)
            up = np.where(rng.random(len(child)) < 0.7, level - 1, rng.integers(0, level, len(child)))
            width = sizes[up]
            near = np.floor(relative * width).astype(np.int64) + rng.integers(-PARENT_WINDOW, PARENT_WINDOW + 1,
                                                                              len(child))
            parents.append(start[up] + np.clip(near, 0, width - 1))
            children.append(child)
    edges = np.stack([np.concatenate(parents), np.concatenate(children)], axis=1)
    digits = len(str(n_nodes))
    names = ["root"] + [f"n{i:0{digits}d}" for i in range(1, n_nodes)]
    if kind == "dag":
        moved = np.concatenate([[0], 1 + rng.permutation(n_nodes - 1)])  # node i goes to position moved[i]
        edges = moved[edges]
        order = np.empty(n_nodes, dtype=np.int64)
        order[moved] = np.arange(n_nodes)
        names = [names[i] for i in order]
    return Hierarchy(tuple(names), edges, frozenset({"root"}))  # duplicate edges are merged here


def _level_sizes(n_nodes: int, profile: tuple[int, ...]) -> np.ndarray:
    """``n_nodes - 1`` nodes over ``len(profile)`` levels (fewer for tiny hierarchies), each >= 1."""
    levels = min(len(profile), n_nodes - 1)
    weight = np.asarray(profile[:levels], dtype=float)
    share = (n_nodes - 1) * weight / weight.sum()
    sizes = np.maximum(np.floor(share).astype(np.int64), 1)
    while sizes.sum() < n_nodes - 1:
        sizes[np.argmax(share - sizes)] += 1
    while sizes.sum() > n_nodes - 1:
        sizes[np.argmax(sizes)] -= 1
    return sizes


def hierarchy_facts(hierarchy: Hierarchy) -> dict:
    """Nodes, edges, nnz(R) (the (ancestor, descendant) pairs, self included), depth, parents per node."""
    n = len(hierarchy)
    has_parent = np.bincount(hierarchy.edges[:, 1], minlength=n) > 0
    return {
        "nodes": n,
        "edges": len(hierarchy.edges),
        "nnz_R": int(hierarchy.descendant_matrix.nnz),
        "depth": hierarchy.max_depth,
        "parents_per_node": round(len(hierarchy.edges) / max(int(has_parent.sum()), 1), 2),
    }


# ---------------------------------------------------------------------------- one cell (child side)
def _epoch_setup(kind: str, n_nodes: int, method: str, seed: int, samples: int, features: int, device: str):
    """Hierarchy, network, objective, optimizer and data of one cell, seeded alike for every method."""
    hierarchy = synthetic_hierarchy(kind, n_nodes, seed)
    constraint = MaxConstraint(hierarchy, AUTO_METHOD if method == FLAT else method).to(device)
    config = TrainConfig(objective="bce" if method == FLAT else "mcloss", mcm_method=constraint.method, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=generator)
    direct = torch.zeros(samples, n_nodes)
    evaluated = torch.as_tensor(np.flatnonzero(hierarchy.evaluated))
    picks = torch.randint(len(evaluated), (samples, LABELS_PER_SAMPLE), generator=generator)
    direct.scatter_(1, evaluated[picks], 1.0)
    closed = hierarchy.close(direct.numpy())
    y = torch.from_numpy(closed).float()
    objective = build_objective(config, constraint, closed, hierarchy)
    torch.manual_seed(seed)
    network = HeadsMLP(features, n_nodes, num_layers=1, heads=1).to(device)
    optimizer = adam([{"params": list(network.parameters()), "lr": config.lr}], config)
    return hierarchy, network, objective, optimizer, x.to(device), y.to(device)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _malloc_mode(mmap_threshold: int, trim_threshold: int) -> None:
    """glibc: allocations from ``mmap_threshold`` bytes are mmapped (returned to the system when freed)
    and a free heap top above ``trim_threshold`` is trimmed. Fixed values also stop glibc from raising
    the threshold as big blocks are freed. No-op elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, mmap_threshold)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, trim_threshold)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def measure_cell(kind: str, nodes: int, method: str, seed: int = 0, samples: int = 1024, batch: int = 64,
                 features: int = 16, device: str = "cpu", threads: int = 1, repeats: int = 3,
                 epoch_budget_s: float = 5.0, run_epoch: bool = True) -> dict:
    """Time and peak memory of one epoch in this process (call it in a fresh child: it resets the peak RSS)."""
    torch.set_num_threads(threads)
    _malloc_mode(64 << 10, 1 << 20)  # until the memory epoch is over, RSS follows the live tensors
    tic = time.perf_counter()
    _, network, objective, optimizer, x, y = _epoch_setup(kind, nodes, method, seed, samples, features, device)
    result: dict = {"build_s": time.perf_counter() - tic}
    with torch.no_grad():  # the loss of the untrained network on the first batch: equal for every MCM method
        result["initial_loss"] = float(objective(torch.sigmoid(network(x[:batch])), y[:batch]))
    shuffle = torch.Generator().manual_seed(seed)
    train_epoch(network, objective, optimizer, x[:2], y[:2], None, 2, shuffle)  # warm-up: loads the code
    gc.collect()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before, result["memory_source"] = torch.cuda.memory_allocated(), "cuda max_memory_allocated"
    elif _reset_peak_rss():
        before, result["memory_source"] = _rss_bytes(), "peak RSS (reset before the epoch)"
    else:
        before, result["memory_source"] = 0, "ru_maxrss minus a baseline child"
    if not run_epoch:
        result["peak_bytes"] = _maxrss_bytes()
        return result
    result["epoch_loss"] = train_epoch(network, objective, optimizer, x, y, None, batch, shuffle)
    result["peak_bytes"] = (torch.cuda.max_memory_allocated() if cuda else _maxrss_bytes()) - before
    # Timing: not the memory epoch (its big tensors each paid for mmap and page faults), but up to
    # `repeats` more epochs with the thresholds glibc grows to by itself, fewer past the budget.
    _malloc_mode(32 << 20, 64 << 20)
    times: list[float] = []
    while len(times) < max(repeats, 1) and sum(times) <= epoch_budget_s:
        tic = time.perf_counter()
        train_epoch(network, objective, optimizer, x, y, None, batch, shuffle)
        times.append(time.perf_counter() - tic)  # _train_epoch ends with float(loss): synchronised
    result["time_s"], result["runs"] = statistics.median(times), len(times)
    return result


def _serve() -> None:
    """Measurement server: one JSON request per stdin line; each runs in a child forked from here.

    This process imports torch and runs nothing, so every child starts from the same clean
    state; the answer (one JSON line on stdout) is the child's result or why it failed.
    """
    import torch._dynamo  # noqa: F401  (imported lazily by the first optimizer: 1-2 s a child otherwise)

    gc.freeze()  # the children's gc.collect() skips (and does not copy) the imported modules' objects

    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints (ours or a child's) go to stderr, not into the protocol
    for line in sys.stdin:
        request = json.loads(line)
        timeout = int(request.pop("timeout_s"))
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(read_end)
            signal.alarm(timeout)  # SIGALRM ends a cell that runs too long
            try:
                answer = measure_cell(**request)
            except BaseException as error:  # noqa: BLE001 - reported, not raised: the server keeps serving
                answer = {"error": f"{type(error).__name__}: {error}"}
            with os.fdopen(write_end, "w") as handle:
                json.dump(answer, handle)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as handle:
            text = handle.read()
        _, status = os.waitpid(pid, 0)
        if not text:
            code = os.waitstatus_to_exitcode(status)
            why = f"timed out after {timeout} s" if code == -signal.SIGALRM else f"child exited with {code}"
            text = json.dumps({"error": why + (" (out of memory?)" if code == -signal.SIGKILL else "")})
        protocol.write(text.replace("\n", " ") + "\n")
        protocol.flush()


class _Server:
    """The parent's handle on :func:`_serve` (a subprocess running this file with ``--serve``)."""

    def __enter__(self) -> Self:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def measure(self, timeout_s: float, **request) -> dict:
        self.process.stdin.write(json.dumps({**request, "timeout_s": max(1, int(timeout_s))}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the measurement server stopped (exit code {self.process.poll()})")
        return json.loads(line)

    def __exit__(self, *exc) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


# ---------------------------------------------------------------------------- the sweep
def dense_bytes(nodes: int, batch: int, itemsize: int = 4) -> float:
    """Dense's largest tensors: two (B, N, N) at once in the backward (the max's gradient and the
    product's), plus the (N, N) bool R."""
    return 2.0 * batch * nodes**2 * itemsize + nodes**2


def run_scaling(quick: bool = False, device: str = "cpu", sizes: list[int] | None = None, kinds=KINDS,
                methods=None, *, samples: int | None = None, batch: int = 64, features: int = 16,
                threads: int = 1, repeats: int | None = None, max_dense_gb: float | None = None,
                max_dense_s: float | None = None, cell_timeout_s: float = 300.0, epoch_budget_s: float = 5.0,
                seed: int = 0, log=None) -> list[dict]:
    """One row per (kind, size, method): hierarchy facts, epoch time, peak memory, or why it was skipped.

    Args:
        quick: sizes 50, 200, 1,000, 256-sample epochs, one timed epoch, dense only under 0.25 GB
            and ~1 s (so it runs at 50 and 200 and is skipped at 1,000): a few seconds in all (a
            smoke test; the numbers mean little).
        device: ``"cpu"`` or a CUDA device.
        sizes: node counts (default 100 ... 50,000).
        kinds: ``"tree"`` and/or ``"dag"`` (:func:`synthetic_hierarchy`).
        methods: MCM methods of :data:`hmlearn.nn.constraint.METHODS` and ``"bce"`` (the same
            epoch without MCM); default all.
        max_dense_gb: skip dense above this estimate of its tensors (default half the free memory).
        max_dense_s: skip dense where its epoch, extrapolated as N^2, would take longer.
        log: called with a progress line per cell (``print`` in the CLI), or None.

    Row fields: kind, nodes, edges, nnz_R, depth, parents_per_node, method, device, samples,
    batch, status (``"ok"``, ``"skipped"``, ``"failed"``), reason, time_s, runs, peak_mb,
    memory_source, initial_loss, epoch_loss, build_s.
    """
    sizes = sorted(sizes or (QUICK_SIZES if quick else SIZES))
    methods = list(methods or ALL_METHODS)
    unknown = set(methods) - set(ALL_METHODS)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; expected some of {ALL_METHODS}")
    samples = samples or (256 if quick else 1024)
    repeats = repeats if repeats is not None else (1 if quick else 3)
    max_dense_s = max_dense_s if max_dense_s is not None else (1.0 if quick else 60.0)
    if max_dense_gb is None:
        max_dense_gb = 0.25 if quick else available_bytes(device) / 2e9
    log = log or (lambda line: None)
    cell = {"seed": seed, "samples": samples, "batch": batch, "features": features, "device": device,
            "threads": threads, "repeats": repeats, "epoch_budget_s": epoch_budget_s}
    rows: list[dict] = []
    with _Server() as server:
        for kind in kinds:
            dense_seen: tuple[int, float] | None = None  # (nodes, s per epoch) of the largest dense run
            for n in sizes:
                facts = hierarchy_facts(synthetic_hierarchy(kind, n, seed))
                for method in methods:
                    row = {"kind": kind, **facts, "method": method, "device": device, "samples": samples,
                           "batch": batch, "status": "ok", "reason": "", "time_s": None, "runs": 0,
                           "peak_mb": None, "memory_source": "", "initial_loss": None, "epoch_loss": None,
                           "build_s": None}
                    reason = None
                    if method == "dense":
                        need = dense_bytes(n, batch)
                        if need > max_dense_gb * 1e9:
                            reason = f"would need {need / 1e9:.1f} GB > {max_dense_gb:.1f} GB"
                        elif dense_seen and dense_seen[1] * (n / dense_seen[0]) ** 2 > max_dense_s:
                            guess = dense_seen[1] * (n / dense_seen[0]) ** 2
                            shown = f"{guess:.1f}" if guess < 10 else f"{guess:.0f}"
                            reason = f"would take ~{shown} s (N^2 from N={dense_seen[0]}) > {max_dense_s:g} s"
                    if reason:
                        row.update(status="skipped", reason=reason)
                    else:
                        answer = server.measure(cell_timeout_s, kind=kind, nodes=n, method=method, **cell)
                        if "error" not in answer and answer["memory_source"].startswith("ru_maxrss"):
                            base = server.measure(cell_timeout_s, kind=kind, nodes=n, method=method, run_epoch=False,
                                                  **cell)
                            answer["peak_bytes"] -= base.get("peak_bytes", 0)
                        if "error" in answer:
                            row.update(status="failed", reason=answer["error"])
                        else:
                            row.update({k: v for k, v in answer.items() if k != "peak_bytes"})
                            row["peak_mb"] = max(answer["peak_bytes"], 0) / 2**20
                            if method == "dense":
                                dense_seen = (n, row["time_s"])
                    rows.append(row)
                    log(_progress_line(row))
    return rows


def _progress_line(row: dict) -> str:
    head = f"{row['kind']:4s} {row['nodes']:6d} nodes {row['edges']:6d} edges {row['method']:6s}"
    if row["status"] != "ok":
        return f"{head} {row['status']}: {row['reason']}"
    return f"{head} {row['time_s']:8.3f} s/epoch ({row['runs']} runs) {row['peak_mb']:9.1f} MB peak"


# ---------------------------------------------------------------------------- exponents, table, plot
def fit_exponents(rows: list[dict], min_nodes: int = FIT_MIN_NODES) -> list[dict]:
    """Per (kind, method): slopes of log time and log memory against log nodes, log edges and log nnz(R).

    Fitted on the sizes >= ``min_nodes`` where the method ran at 2 or more of them (the growth,
    not the fixed costs of small sizes), else on all the sizes it ran at.
    """
    fits = []
    for kind in dict.fromkeys(r["kind"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            ok = [r for r in rows if r["kind"] == kind and r["method"] == method and r["status"] == "ok"]
            large = [r for r in ok if r["nodes"] >= min_nodes]
            used = large if len(large) >= 2 else ok
            if len(used) < 2:
                continue
            fit = {"kind": kind, "method": method, "sizes": [r["nodes"] for r in used]}
            for what, key in (("time", "time_s"), ("mem", "peak_mb")):
                points = [r for r in used if r[key] and r[key] > 0]  # a peak below the page granularity is 0
                for against in ("nodes", "edges", "nnz_R"):
                    x = np.log([r[against] for r in points])
                    y = np.log([r[key] for r in points])
                    fit[f"{what}_vs_{against}"] = float(np.polyfit(x, y, 1)[0]) if len(x) >= 2 and np.ptp(x) else None
            fits.append(fit)
    return fits


def markdown_report(rows: list[dict], meta: dict | None = None) -> str:
    """The results as markdown: what an epoch is, the table per size, the fitted exponents."""
    meta = meta or {}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    first = rows[0] if rows else {"samples": 0, "batch": 1, "device": "cpu"}
    lines = [f"torch {meta['torch']}, {meta.get('platform', '')}; the run took {meta['wall_s']:.0f} s.", ""] \
        if "torch" in meta and "wall_s" in meta else []
    lines += [
        (f"Epoch: `hmlearn.training.fit.train_epoch` over {first['samples']:,} samples at batch {first['batch']} "
        f"({-(-first['samples'] // first['batch'])} steps): one-layer HeadsMLP ({meta.get('features', 16)} features "
        f"-> N logits), sigmoid, MCM + mean MCLoss (`bce`: flat BCE, no MCM), backward, Adam step. "
        f"Device {first['device']}, {meta.get('threads', 1)} torch thread(s), float32. "
        f"Time: seconds per epoch (median of up to {max((r.get('runs') or 0 for r in rows), default=0)} epochs "
        "after the memory epoch). Memory: "
        + ("`torch.cuda.max_memory_allocated` (MB) over one epoch. " if str(first["device"]).startswith("cuda") else
           "peak RSS (MB) during one epoch above the process just before it (a forked child per cell; glibc mmaps "
           "blocks from 64 KiB so RSS follows the live tensors). ")
        + "`levels` is the `auto` method."),
        "",
    ]
    header = ["kind", "nodes", "edges", "nnz(R)", "depth"]
    header += [f"{m} s" for m in methods] + [f"{m} MB" for m in methods]
    fast = [m for m in methods if m not in ("dense", FLAT)]
    if "dense" in methods:
        header += [f"dense / {m} time" for m in fast]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    keys = list(dict.fromkeys((r["kind"], r["nodes"]) for r in rows))
    for key in keys:
        cell = {r["method"]: r for r in rows if (r["kind"], r["nodes"]) == key}
        any_row = next(iter(cell.values()))
        out = [key[0], f"{key[1]:,}", f"{any_row['edges']:,}", f"{any_row['nnz_R']:,}", str(any_row["depth"])]
        for what in ("time_s", "peak_mb"):
            for m in methods:
                r = cell.get(m)
                if r is None:
                    out.append("")
                elif r["status"] != "ok":
                    out.append(f"{r['status']}: {r['reason']}" if what == "time_s" else "-")
                else:
                    out.append(f"{r[what]:.3g}" if what == "time_s" else f"{r[what]:.1f}")
        if "dense" in methods:
            dense = cell.get("dense", {}).get("time_s")
            for m in fast:
                other = cell.get(m, {}).get("time_s")
                out.append(f"{dense / other:.0f}x" if dense and other else "-")
        lines.append("| " + " | ".join(out) + " |")
    fits = fit_exponents(rows)
    if fits:
        lines += [
            "",
            (f"Growth exponents: slope of log(time) and log(memory) against log(nodes), log(edges) and "
            f"log(nnz(R)), fitted on the sizes >= {FIT_MIN_NODES:,} a method ran at (all its sizes where fewer "
            "than 2). ~1: linear, ~2: quadratic."),
            "",
            ("| kind | method | sizes fitted | time ~ nodes^ | time ~ edges^ | time ~ nnz(R)^ | mem ~ nodes^ | "
             "mem ~ edges^ | mem ~ nnz(R)^ |"),
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]

        def number(value):
            return "-" if value is None else f"{value:.2f}"

        for f in fits:
            sizes = f"{min(f['sizes']):,}-{max(f['sizes']):,} ({len(f['sizes'])})"
            cells = [f["kind"], f["method"], sizes] + [number(f[k]) for k in (
                "time_vs_nodes", "time_vs_edges", "time_vs_nnz_R", "mem_vs_nodes", "mem_vs_edges", "mem_vs_nnz_R")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_plot(rows: list[dict], path) -> Path:
    """Log-log PNG: time per epoch (left) and peak memory (right) against nodes, per method and kind.

    Tree: solid lines, DAG: dashed; grey guides show slopes 1 and 2. Skipped cells are absent.
    """
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.subplots(1, 2)
    colours = {"dense": "tab:red", "levels": "tab:blue", "pairs": "tab:green", FLAT: "tab:gray"}
    styles = {"tree": ("-", "o"), "dag": ("--", "s")}
    ok = [r for r in rows if r["status"] == "ok"]
    for ax, key, label in ((axes[0], "time_s", "seconds per epoch"), (axes[1], "peak_mb", "peak memory (MB)")):
        for kind in dict.fromkeys(r["kind"] for r in ok):
            for method in dict.fromkeys(r["method"] for r in ok):
                points = sorted((r["nodes"], r[key]) for r in ok if r["kind"] == kind and r["method"] == method
                                and r[key] and r[key] > 0)
                if points:
                    line, marker = styles.get(kind, ("-", "o"))
                    ax.plot(*zip(*points), line, marker=marker, markersize=4, color=colours.get(method, "black"),
                            label=f"{method} ({kind})")
        values = [r[key] for r in ok if r[key] and r[key] > 0]
        nodes = [r["nodes"] for r in ok]
        if values and nodes:
            lo, hi = min(nodes), max(nodes)
            anchor = float(np.median(values))
            for slope, text in ((1, "~N"), (2, "~N^2")):
                xs = np.array([lo, hi], dtype=float)
                ys = anchor * (xs / np.sqrt(lo * hi)) ** slope
                ax.plot(xs, ys, ":", color="0.6", linewidth=1)
                ax.annotate(text, (xs[1], ys[1]), fontsize=8, color="0.4")
        ax.set(xscale="log", yscale="log", xlabel="nodes", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("time per epoch")
    axes[1].set_title("peak memory per epoch")
    axes[1].legend(fontsize=7, ncol=2)
    figure.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 50, 200, 1000 and short epochs (smoke test)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"node counts (default {SIZES})")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=list(ALL_METHODS))
    parser.add_argument("--samples", type=int, help="samples per epoch (default 1024; --quick 256)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: stable on a shared machine)")
    parser.add_argument("--repeats", type=int, help="timed epochs per cell (default 3; --quick 1)")
    parser.add_argument("--max-dense-gb", type=float, help="skip dense above this (default: half the free memory)")
    parser.add_argument("--max-dense-s", type=float, help="skip dense where an epoch would take longer (default 60)")
    parser.add_argument("--cell-timeout-s", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/scaling"),
                        help="folder for scaling.json, scaling.md and scaling.png")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve()
        return 0

    started = time.perf_counter()
    meta = {
        "torch": torch.__version__, "device": args.device, "threads": args.threads, "features": args.features,
        "platform": f"{platform.machine()}, {os.cpu_count()} CPUs", "quick": args.quick,
    }
    print(f"torch {meta['torch']}, {meta['platform']}, device {args.device}, {args.threads} torch thread(s)")
    rows = run_scaling(
        args.quick, args.device, args.sizes, tuple(args.kinds), args.methods, samples=args.samples, batch=args.batch,
        features=args.features, threads=args.threads, repeats=args.repeats, max_dense_gb=args.max_dense_gb,
        max_dense_s=args.max_dense_s, cell_timeout_s=args.cell_timeout_s, seed=args.seed, log=print,
    )
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    report = markdown_report(rows, meta)
    print("\n" + report)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "rows": rows, "exponents": fit_exponents(rows)}
    (args.out / "scaling.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "scaling.md").write_text(report)
    write_plot(rows, args.out / "scaling.png")
    print(f"wrote {args.out / 'scaling.json'}, scaling.md, scaling.png ({meta['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
