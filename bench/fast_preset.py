"""The `fast` preset against the paper protocol, side by side in one run: AU(PRC) and wall time.

Both train the same network on train + valid and evaluate on test; `paper` uses the published
batch size 4, learning rate and epochs, `fast` the preset of hmlearn.training.presets.PRESETS. Prints the
wall-time ratio per dataset, and the ratio to the published code's own time where METHOD.md's
issue gives one (derisi_FUN: 304 s; spo_GO: about 0.3 s per batch-4 step).

    python bench/fast_preset.py --datasets derisi_FUN spo_GO --seeds 0
"""

from __future__ import annotations

import argparse
import statistics
import time

from tabulate import tabulate

from hmlearn.data.registry import DATASETS, PUBLISHED_AUPRC

# Wall time of the published C-HMCNN code on this project's machines, from the measurements.
PUBLISHED_CODE_SECONDS = {"derisi_FUN": 304.0}
PUBLISHED_CODE_SECONDS_PER_STEP = {"spo_GO": 0.3}


def run_one(dataset: str, preset: str, seed: int) -> dict:
    """Train and evaluate one seed in this process (one torch thread); ``seconds`` is the training time."""
    import torch

    from hmlearn.data.store import load_dataset
    from hmlearn.metrics import au_prc
    from hmlearn.training.fit import fit
    from hmlearn.training.presets import preset_config

    torch.set_num_threads(1)
    spec = DATASETS[dataset]
    train, test = load_dataset(dataset, ("trainvalid", "test"))
    config = preset_config(spec.hyperparameters(), preset, spec.n_outputs, seed=seed, threads=1)
    started = time.perf_counter()
    model = fit(train.X, train.Y, train.hierarchy, config, progress=False)
    seconds = time.perf_counter() - started
    score = au_prc(test.Y, model.predict_proba(test.X), train.hierarchy)
    return {"dataset": dataset, "preset": preset, "seed": seed, "au_prc": score, "seconds": seconds}


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
