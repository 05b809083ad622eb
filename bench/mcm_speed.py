"""Speed of the max constraint module: dense reference vs the fast methods, same process.

Times forward + backward (``out.sum()`` by default, ``--loss mcloss`` for ``mc_loss(...).mean()``)
of every MCM method on the derisi_FUN tree and the spo_GO DAG, after warm-up, median over
repeats, and prints a markdown table with absolute milliseconds and the speed-up of each fast
method over dense. Dense is skipped (and says why) where its (B, N, N) tensor would exceed
``--max-dense-gb`` or where its estimated peak would not fit in the memory available now.

    python bench/mcm_speed.py --batches 4 64 512 --repeats 10 --json mcm.json

Acceptance target: fast MCM >= 100x faster than dense on spo_GO at batch 64, forward + backward.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.constraint import AUTO_METHOD, METHODS, STACK_MAX_BATCH, MaxConstraint, mc_loss

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "hmc_data"
GO_ROOTS = ("root", "GO0003674", "GO0005575", "GO0008150")
HIERARCHIES = {
    "derisi_FUN": DATA / "datasets_FUN" / "derisi_FUN" / "derisi_FUN.train.arff",
    "spo_GO": DATA / "datasets_GO" / "spo_GO" / "spo_GO.train.arff",
}


def header_hierarchy(path: Path) -> Hierarchy:
    """The hierarchy of an HMC ARFF file from its ``@ATTRIBUTE class hierarchical`` line.

    FUN / "others" files list label paths (``01/01/03``); ``*_GO`` files list ``parent/child``
    edges under four not-evaluated roots. Used when ``hmlearn.data.arff`` is absent.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) >= 4 and fields[0].lower() == "@attribute" and fields[2].lower() == "hierarchical":
                tokens = fields[3].split(",")
                if "_GO" in path.name:
                    return Hierarchy.from_edges(tokens, not_evaluated=list(GO_ROOTS))
                return Hierarchy.from_paths(tokens)
            if line.lower().startswith("@data"):
                break
    raise ValueError(f"{path}: no '@ATTRIBUTE class hierarchical' line in the header")


def load_hierarchy(path: Path) -> tuple[Hierarchy, str]:
    """The package's ARFF reader where it offers one, else :func:`header_hierarchy`."""
    not_evaluated = list(GO_ROOTS) if "_GO" in path.name else None
    try:
        from hmlearn.data import arff  # written in parallel with this script
    except ImportError:
        return header_hierarchy(path), "header line (bench fallback)"
    try:
        if hasattr(arff, "read_arff_hierarchy"):
            return arff.read_arff_hierarchy(path), "hmlearn.data.arff.read_arff_hierarchy"
        header = arff.read_arff_header(path)
        hierarchy = arff.hierarchy_from_header(header, not_evaluated=not_evaluated)
        return hierarchy, "hmlearn.data.arff header reader"
    except Exception as error:  # an API still in flux must not stop the benchmark
        print(f"note: hmlearn.data.arff failed on {path.name} ({error!r}); using the header fallback")
    return header_hierarchy(path), "header line (bench fallback)"


def available_bytes(device: str | torch.device = "cpu") -> float:
    """Free memory where the tensors live: the GPU's free memory on CUDA, else MemAvailable
    from /proc/meminfo (Linux); infinity where unknown."""
    if torch.device(device).type == "cuda":
        return float(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")


def extra_memory_bytes(module: MaxConstraint, batch: int, itemsize: int) -> float:
    """Estimate (not a measurement) of the largest intermediates of one forward + backward.

    dense: the (B, N, N) product and its gradient. levels / pairs: the node-major copy of p,
    the maxima, the int64 source index and its contiguous transpose (kept for backward), plus
    the temporaries of the largest gather (values, compared values, int64 candidates, mask):
    one level's edges for levels, all off-diagonal pairs of R for pairs.
    """
    n = module.n_nodes
    if module.method == "dense":
        return 2.0 * batch * n * n * itemsize
    if module.method == "levels":
        widest = max((len(level) for level in module.hierarchy.levels), default=0)
    else:
        widest = module.pair_ancestor.numel()
    return batch * n * (2 * itemsize + 2 * 8) + batch * widest * (2 * itemsize + 2 * 8 + 1)


def make_step(module: MaxConstraint, batch: int, dtype: torch.dtype, loss: str = "sum",
              device: str | torch.device = "cpu"):
    """A zero-argument function running one forward + backward of ``module`` at ``batch``.

    ``loss``: ``"sum"`` (``out.sum()``) or ``"mcloss"`` (``mc_loss(...).mean()``). The inputs are
    made once, on ``device`` (``module`` must already be there); on CUDA the step waits for the
    GPU before returning, so wall-clock timing is honest.
    """
    generator = torch.Generator().manual_seed(batch)
    n = module.n_nodes
    logits = torch.randn(batch, n, generator=generator, dtype=dtype)
    y = (torch.rand(batch, n, generator=generator, dtype=dtype) < 0.1).to(dtype)
    y = torch.as_tensor(module.hierarchy.close(y.numpy() > 0), dtype=dtype)
    logits, y = logits.to(device), y.to(device)
    cuda = torch.device(device).type == "cuda"

    def step() -> None:
        p = torch.sigmoid(logits).requires_grad_(True)
        value = module(p).sum() if loss == "sum" else mc_loss(p, y, module).mean()
        value.backward()
        if cuda:
            torch.cuda.synchronize()

    return step


def time_method(
    module: MaxConstraint,
    batch: int,
    dtype: torch.dtype,
    loss: str,
    repeats: int,
    warmup: int,
    budget_s: float,
    device: str | torch.device = "cpu",
) -> tuple[float, int]:
    """Median ms of forward + backward; stops early (after >= 3 runs) past ``budget_s``."""
    step = make_step(module, batch, dtype, loss, device)
    for _ in range(warmup):
        step()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeats:
        tic = time.perf_counter()
        step()
        times.append((time.perf_counter() - tic) * 1e3)
        if len(times) >= 3 and time.perf_counter() - started > budget_s:
            break
    return statistics.median(times), len(times)


def mcloss_stacking(
    module: MaxConstraint, batch: int, dtype: torch.dtype, repeats: int
) -> tuple[float, float]:
    """Median ms of MCLoss forward + backward with a and c from one stacked MCM call vs two calls.

    Both variants are written out here (the library picks one by batch size, STACK_MAX_BATCH).
    """
    generator = torch.Generator().manual_seed(1)
    n = module.n_nodes
    logits = torch.randn(batch, n, generator=generator, dtype=dtype)
    y = torch.as_tensor(
        module.hierarchy.close(torch.rand(batch, n, generator=generator).numpy() < 0.1), dtype=dtype
    )
    device = module.evaluated_index.device  # the module's device: the inputs go there too
    logits, y = logits.to(device), y.to(device)

    def loss(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = (1 - y) * a + y * c
        bce = torch.nn.functional.binary_cross_entropy(t, y, reduction="none")
        return bce.index_select(1, module.evaluated_index)

    def stacked(p: torch.Tensor) -> torch.Tensor:
        both = module(torch.cat([p, y * p], dim=0))
        return loss(both[:batch], both[batch:])

    def two_calls(p: torch.Tensor) -> torch.Tensor:
        return loss(module(p), module(y * p))

    results = []
    for fn in (stacked, two_calls):
        times = []
        for i in range(repeats + 2):
            p = torch.sigmoid(logits).requires_grad_(True)
            tic = time.perf_counter()
            fn(p).mean().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append((time.perf_counter() - tic) * 1e3)
        results.append(statistics.median(times))
    return results[0], results[1]


def dense_skip_reason(module: MaxConstraint, batch: int, itemsize: int, max_gb: float,
                      device: str | torch.device = "cpu") -> str | None:
    """Why dense cannot run at this batch (its (B, N, N) tensor is too big), or None."""
    product = batch * module.n_nodes**2 * itemsize
    if product > max_gb * 1e9:
        return f"(B, N, N) tensor {product / 1e9:.1f} GB > --max-dense-gb {max_gb}"
    peak, available = 1.5 * extra_memory_bytes(module, batch, itemsize), available_bytes(device)
    if peak > available:
        return f"estimated peak {peak / 1e9:.1f} GB > {available / 1e9:.1f} GB available now"
    return None


def bench_hierarchy(name: str, args: argparse.Namespace, dtype: torch.dtype) -> tuple[list[dict], list[dict]]:
    """Timing rows (one per batch and method) and MCLoss stacking rows for one hierarchy."""
    hierarchy, source = load_hierarchy(HIERARCHIES[name])
    print(
        f"\n{name}: {len(hierarchy)} nodes, {len(hierarchy.edges)} edges, {len(hierarchy.levels)} levels, "
        f"nnz(R) = {hierarchy.descendant_matrix.nnz}, {int(hierarchy.evaluated.sum())} evaluated, "
        f"from {source}"
    )
    itemsize = torch.empty((), dtype=dtype).element_size()
    modules = {method: MaxConstraint(hierarchy, method).to(args.device) for method in args.methods}
    rows: list[dict] = []
    for batch in args.batches:
        for method, module in modules.items():
            row = {"hierarchy": name, "nodes": len(hierarchy), "batch": batch, "method": method}
            row["extra_mem_mb_est"] = extra_memory_bytes(module, batch, itemsize) / 2**20
            reason = None
            if method == "dense":
                reason = dense_skip_reason(module, batch, itemsize, args.max_dense_gb, args.device)
            if reason:
                row["skipped"] = reason
                print(f"  skip dense at batch {batch}: {reason}")
            else:
                row["ms"], row["runs"] = time_method(
                    module, batch, dtype, args.loss, args.repeats, args.warmup, args.budget_s, args.device
                )
                print(f"  batch {batch:4d} {method:6s} {row['ms']:10.3f} ms  ({row['runs']} runs)")
            rows.append(row)
    stacking: list[dict] = []
    if not args.no_stacking:
        module = modules.get(AUTO_METHOD) or MaxConstraint(hierarchy, AUTO_METHOD)
        for batch in args.batches:
            stacked, two = mcloss_stacking(module, batch, dtype, max(3, args.repeats))
            stacking.append({"hierarchy": name, "batch": batch, "stacked_ms": stacked, "two_calls_ms": two})
    return rows, stacking


def print_table(rows: list[dict], methods: list[str]) -> None:
    fast = [m for m in methods if m != "dense"]
    header = ["hierarchy", "batch", *(f"{m} ms" for m in methods), *(f"dense / {m}" for m in fast)]
    header.append("extra mem est. MB (" + " / ".join(methods) + ")")
    print("\n| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    order = list(HIERARCHIES)
    keys = sorted({(r["hierarchy"], r["batch"]) for r in rows}, key=lambda k: (order.index(k[0]), k[1]))
    for key in keys:
        cell = {r["method"]: r for r in rows if (r["hierarchy"], r["batch"]) == key}
        times = [f"{cell[m]['ms']:.3f}" if "ms" in cell[m] else "skipped" for m in methods]
        dense = cell.get("dense", {}).get("ms")
        ratios = [f"{dense / cell[m]['ms']:.0f}x" if dense else "-" for m in fast]
        memory = " / ".join(f"{cell[m]['extra_mem_mb_est']:.1f}" for m in methods)
        print(f"| {key[0]} | {key[1]} | " + " | ".join([*times, *ratios, memory]) + " |")


def print_stacking(stacking: list[dict]) -> None:
    print(
        f"\nMCLoss forward+backward with the '{AUTO_METHOD}' MCM, a and c from one stacked call vs "
        f"two calls (mc_loss stacks up to batch {STACK_MAX_BATCH})"
    )
    print("\n| hierarchy | batch | stacked ms | two calls ms | two / stacked |")
    print("|---|---:|---:|---:|---:|")
    for s in stacking:
        ratio = s["two_calls_ms"] / s["stacked_ms"]
        cells = [s["hierarchy"], s["batch"], f"{s['stacked_ms']:.3f}", f"{s['two_calls_ms']:.3f}"]
        cells.append(f"{ratio:.2f}")
        print("| " + " | ".join(map(str, cells)) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 64, 512])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: stable numbers on a shared machine)"
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--loss", choices=["sum", "mcloss"], default="sum")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--hierarchies", nargs="+", choices=list(HIERARCHIES), default=list(HIERARCHIES))
    parser.add_argument("--max-dense-gb", type=float, default=8.0, help="skip dense above this (B,N,N) size")
    parser.add_argument("--budget-s", type=float, default=30.0, help="stop repeating a cell after this long")
    parser.add_argument("--no-stacking", action="store_true", help="skip the MCLoss stacking table")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda when available)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    loss = "out.sum()" if args.loss == "sum" else "mc_loss(...).mean()"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) (set), {args.dtype}, "
        f"forward+backward of {loss}, median over up to {args.repeats} repeats after {args.warmup} warm-up, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    rows: list[dict] = []
    stacking: list[dict] = []
    for name in args.hierarchies:
        if not HIERARCHIES[name].exists():
            print(f"skip {name}: {HIERARCHIES[name]} not found")
            continue
        more_rows, more_stacking = bench_hierarchy(name, args, dtype)
        rows += more_rows
        stacking += more_stacking
    if rows:
        print_table(rows, args.methods)
    if stacking:
        print_stacking(stacking)
    if args.json:
        meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": args.dtype}
        meta["loss"] = args.loss
        args.json.write_text(json.dumps({"meta": meta, "rows": rows, "mcloss_stacking": stacking}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
