"""The `fast` preset against the paper protocol, side by side in one run: AU(PRC) and wall time.

Both train the same network on train + valid and evaluate on test; `paper` uses the published
batch size 4, learning rate and epochs, `fast` the preset of hmlearn.train.PRESETS. Prints the
wall-time ratio per dataset, and the ratio to the published code's own time where METHOD.md's
issue gives one (derisi_FUN: 304 s; spo_GO: about 0.3 s per batch-4 step).

    python bench/fast_preset.py --datasets derisi_FUN spo_GO --seeds 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).parent))
from reproduce_chmcnn import run_one  # noqa: E402

from hmlearn.data.registry import DATASETS, PUBLISHED_AUPRC  # noqa: E402

# Wall time of the published C-HMCNN code on this project's machines, from the measurements.
PUBLISHED_CODE_SECONDS = {"derisi_FUN": 304.0}
PUBLISHED_CODE_SECONDS_PER_STEP = {"spo_GO": 0.3}


def published_code_seconds(name: str) -> float | None:
    if name in PUBLISHED_CODE_SECONDS:
        return PUBLISHED_CODE_SECONDS[name]
    if name in PUBLISHED_CODE_SECONDS_PER_STEP:
        from hmlearn.data.store import load_dataset

        spec = DATASETS[name]
        n = len(load_dataset(name, "trainvalid"))
        return PUBLISHED_CODE_SECONDS_PER_STEP[name] * -(-n // spec.batch_size) * spec.epochs
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=["derisi_FUN", "spo_GO"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        runs = {preset: [run_one(name, preset, seed) for seed in args.seeds] for preset in ("paper", "fast")}
        for preset, results in runs.items():
            for r in results:
                print(f"{name} {preset} seed {r['seed']}: AU(PRC) {r['au_prc']:.4f} in {r['seconds']:.1f} s", flush=True)
        paper_s = statistics.fmean(r["seconds"] for r in runs["paper"])
        fast_s = statistics.fmean(r["seconds"] for r in runs["fast"])
        published_s = published_code_seconds(name)
        rows.append({
            "dataset": name,
            "published AU(PRC)": f"{PUBLISHED_AUPRC[name]:.3f}",
            "paper AU(PRC)": f"{statistics.fmean(r['au_prc'] for r in runs['paper']):.3f}",
            "fast AU(PRC)": f"{statistics.fmean(r['au_prc'] for r in runs['fast']):.3f}",
            "paper s": f"{paper_s:.0f}",
            "fast s": f"{fast_s:.1f}",
            "paper / fast": f"{paper_s / fast_s:.1f}x",
            "published code s": f"{published_s:.0f}" if published_s else "-",
            "published code / fast": f"{published_s / fast_s:.0f}x" if published_s else "-",
        })
    print(f"\nseeds {args.seeds}, one torch thread per run")
    print(tabulate(rows, headers="keys"))


if __name__ == "__main__":
    main()
