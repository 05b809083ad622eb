"""Plain C-HMCNN against the rare-node objective and the observation-level baseline.

On the FUN datasets found (or ``--datasets``), over seeds, trains each method with the
dataset's published settings (``--preset paper``) or the ``fast`` preset and prints AU(PRC),
binary AP, node-macro precision / recall / F1 (percent), the recall of nodes with fewer than
20 training positives, the recall ratio to plain C-HMCNN, and a Wilcoxon signed-rank p-value
for F1 against plain C-HMCNN over the (dataset, seed) pairs. Both label sides of the node
weights are run (METHOD.md section 4, "Caution"). Runs are stored one JSON line each and
resume after an interruption.

    python bench/rare_nodes.py --preset medium --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).parent))
from resumable import load_rows, run_resumable  # noqa: E402

WEIGHTS = {"node_weights": "class-wise", "omega": 0.25, "descendant_counts": False}
METHODS: dict[str, dict] = {
    "C-HMCNN": {},
    "weights (positive side)": {**WEIGHTS, "weight_side": "positive"},
    "weights (published side)": {**WEIGHTS, "weight_side": "published"},
    "weights (published side, descendant-summed counts)": {**WEIGHTS, "weight_side": "published",
                                                            "descendant_counts": True},
    "weights (published side, omega 0.2)": {**WEIGHTS, "weight_side": "published", "omega": 0.2},
    "weights + focal predictive": {**WEIGHTS, "weight_side": "published", "heads": 2, "focal": "predictive"},
    "weights + focal gated": {**WEIGHTS, "weight_side": "published", "heads": 2, "focal": "gated"},
    "over-sampling": {"resample": "hierarchical"},
}
METRICS = ("au_prc", "binary_ap", "precision", "recall", "f1", "recall_rare")


def run_one(dataset: str, method: str, preset: str, seed: int) -> dict:
    """One (dataset, method, seed) through the sweep runner's cell (one torch thread), as a flat row."""
    from hmlearn.experiments.runner import run_cell
    from hmlearn.experiments.spec import expand, parse_spec

    spec = parse_spec({"name": "rare_nodes", "preset": preset, "datasets": [dataset], "seeds": [seed],
                       "methods": {method: METHODS[method]}}, "bench/rare_nodes.py")
    row = run_cell(expand(spec)[0])
    if row["status"] != "ok":
        raise RuntimeError(f"{dataset} / {method} / seed {seed}: {row['error']}")
    metrics = dict(row["metrics"], binary_ap=row["metrics"]["binary_ap"] * 100)  # percent, as the paper reports it
    config = {k: v for k, v in row["config"].items() if k != "preset"}
    return {"dataset": dataset, "method": method, "preset": preset, "seed": seed, "seconds": row["seconds"],
            **{k: float(metrics[k]) for k in METRICS}, "config": config}


def summary(rows: list[dict], fmt: str) -> str:
    from scipy.stats import wilcoxon

    plain = {(r["dataset"], r["seed"]): r for r in rows if r["method"] == "C-HMCNN"}
    table = []
    for method in METHODS:
        runs = [r for r in rows if r["method"] == method]
        if not runs:
            continue
        row = {"method": method, "runs": len(runs)}
        for metric in METRICS:
            row[metric] = f"{statistics.fmean(r[metric] for r in runs):.3f}"
        paired = [(r, plain[(r["dataset"], r["seed"])]) for r in runs if (r["dataset"], r["seed"]) in plain]
        base_recall = statistics.fmean(p["recall"] for _, p in paired) if paired else 0.0
        row["recall / plain"] = f"{statistics.fmean(r['recall'] for r, _ in paired) / base_recall:.2f}x" if base_recall else "-"
        by_dataset = {}
        for r, p in paired:
            by_dataset.setdefault(r["dataset"], []).append((r["recall"], p["recall"]))
        ratios = [statistics.fmean(a for a, _ in v) / statistics.fmean(b for _, b in v)
                  for v in by_dataset.values() if statistics.fmean(b for _, b in v) > 0]
        row["mean of dataset ratios"] = f"{statistics.fmean(ratios):.2f}x" if ratios else "-"
        differences = [r["f1"] - p["f1"] for r, p in paired]
        row["F1 Wilcoxon p"] = (f"{wilcoxon(differences).pvalue:.3g}"
                                if method != "C-HMCNN" and len(differences) >= 2 and any(differences) else "-")
        table.append(row)
    return tabulate(table, headers="keys", tablefmt=fmt, disable_numparse=True)


def per_dataset(rows: list[dict], fmt: str) -> str:
    """Mean over seeds per dataset and method, with the AU(PRC) difference to plain C-HMCNN."""
    table = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        plain = [r for r in rows if r["dataset"] == dataset and r["method"] == "C-HMCNN"]
        plain_au = statistics.fmean(r["au_prc"] for r in plain) if plain else None
        for method in METHODS:
            runs = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
            if not runs:
                continue
            au = statistics.fmean(r["au_prc"] for r in runs)
            table.append({
                "dataset": dataset, "method": method, "seeds": len(runs), "AU(PRC)": f"{au:.4f}",
                "vs plain": f"{au - plain_au:+.4f}" if plain_au is not None else "-",
                **{k: f"{statistics.fmean(r[k] for r in runs):.2f}" for k in ("binary_ap", "precision", "recall", "f1")},
            })
    return tabulate(table, headers="keys", tablefmt=fmt, disable_numparse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=None, help="default: the FUN datasets found")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--preset", default="medium", choices=["paper", "medium", "fast"])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--results", type=Path, default=Path("bench/results/rare_nodes.jsonl"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--format", default="simple", help="table format (tabulate), e.g. github")
    args = parser.parse_args()

    if args.datasets is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from reproduce_chmcnn import available_datasets

        args.datasets = [d for d in available_datasets() if d.endswith("_FUN")]
    jobs = [{"dataset": d, "method": m, "preset": args.preset, "seed": s}
            for d in args.datasets for m in args.methods for s in args.seeds]
    if args.report_only:
        rows = load_rows(args.results)
    else:
        rows = run_resumable(jobs, run_one, args.results, args.jobs,
                             lambda r: f"{r['dataset']} {r['method']} seed {r['seed']}: recall {r['recall']:.2f} "
                                       f"F1 {r['f1']:.2f} AU(PRC) {r['au_prc']:.4f} ({r['seconds']:.0f} s)")
    rows = [r for r in rows if r["preset"] == args.preset and r["dataset"] in args.datasets and r["seed"] in args.seeds]
    print(f"\n{len(args.datasets)} datasets x {len(args.seeds)} seeds, preset {args.preset!r}; AU(PRC) fraction, "
          "others percent; recall_rare: nodes with < 20 training positives")
    print(summary(rows, args.format))
    print("\nper dataset (mean over seeds):")
    print(per_dataset(rows, args.format))


if __name__ == "__main__":
    main()
