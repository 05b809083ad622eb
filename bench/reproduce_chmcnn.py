"""Reproduce the published C-HMCNN AU(PRC) (METHOD.md section 9) on the datasets at hand.

Trains with each dataset's published hyper-parameters (``--preset paper``; or ``fast``) on
train + valid, evaluates on test, over several seeds, and prints AU(PRC) mean +/- std next to
the published value. Every finished (dataset, preset, seed) run is appended to a JSON-lines
file at once, so an interrupted benchmark resumes where it stopped.

    python bench/reproduce_chmcnn.py --seeds 0 1 2 --jobs 2
    python bench/reproduce_chmcnn.py --datasets derisi_FUN spo_GO --preset fast --markdown out.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).parent))
from resumable import load_rows, run_resumable  # noqa: E402

from hmlearn.data.registry import DATASETS, PUBLISHED_AUPRC
from hmlearn.data.store import locate


def available_datasets() -> list[str]:
    return [name for name, spec in DATASETS.items() if all(locate(spec, split) for split in spec.splits)]


def run_one(dataset: str, preset: str, seed: int) -> dict:
    """Train and evaluate one seed in this process (one torch thread: runs go side by side)."""
    import torch

    from hmlearn.data.store import load_dataset
    from hmlearn.metrics import au_prc
    from hmlearn.train import fit, preset_config

    torch.set_num_threads(1)
    spec = DATASETS[dataset]
    train, test = load_dataset(dataset, ("trainvalid", "test"))
    config = preset_config(spec.hyperparameters(), preset, spec.n_outputs, seed=seed, threads=1)
    started = time.perf_counter()
    model = fit(train.X, train.Y, train.hierarchy, config, progress=False)
    seconds = time.perf_counter() - started
    score = au_prc(test.Y, model.predict_proba(test.X), train.hierarchy)
    return {"dataset": dataset, "preset": preset, "seed": seed, "au_prc": score, "seconds": seconds,
            "config": vars(config), "torch": torch.__version__}


def summary_table(rows: list[dict], preset: str, fmt: str) -> str:
    table = []
    for name in DATASETS:
        runs = [r for r in rows if r["dataset"] == name and r["preset"] == preset]
        if not runs:
            continue
        scores = [r["au_prc"] for r in runs]
        mean = statistics.fmean(scores)
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        published = PUBLISHED_AUPRC[name]
        table.append({
            "dataset": name,
            "published": f"{published:.3f}",
            "hmlearn": f"{mean:.3f} ± {std:.3f}",
            "difference": f"{mean - published:+.3f}",
            "within 0.01": "yes" if abs(mean - published) <= 0.01 or mean > published else "no",
            "seeds": len(scores),
            "s / seed": f"{statistics.fmean(r['seconds'] for r in runs):.0f}",
        })
    return tabulate(table, headers="keys", tablefmt=fmt, disable_numparse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=None, help="default: every dataset found")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--preset", default="paper", choices=["paper", "medium", "fast"])
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1)))
    parser.add_argument("--results", type=Path, default=Path("bench/results/reproduce_chmcnn.jsonl"))
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("--report-only", action="store_true", help="print the table from stored results")
    args = parser.parse_args()

    names = args.datasets or available_datasets()
    jobs = [{"dataset": n, "preset": args.preset, "seed": s} for n in names for s in args.seeds]
    if args.report_only:
        done = load_rows(args.results)
    else:
        done = run_resumable(jobs, run_one, args.results, args.jobs,
                             lambda r: f"{r['dataset']} seed {r['seed']}: AU(PRC) {r['au_prc']:.4f} in {r['seconds']:.0f} s")
    selected = [r for r in done if r["dataset"] in names]
    print(f"\nC-HMCNN AU(PRC), preset {args.preset!r}, published = mean of 10 seeds (Giunchiglia & Lukasiewicz 2020)")
    print(summary_table(selected, args.preset, "simple"))
    if args.markdown:
        args.markdown.write_text(summary_table(selected, args.preset, "github") + "\n")


if __name__ == "__main__":
    main()
