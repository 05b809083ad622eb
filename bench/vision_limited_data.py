"""Images: plain C-HMCNN vs the rare-node objective across encoder quality and training-set size.

METHOD.md section 11's two stress tests on synthetic seafloor-like images (data/synthetic_images.py,
written to disk and read back through the image-table path): a suboptimal encoder, its weights
moved towards a random initialisation by alpha (0: pretrained, 1: random), and limited data (a
stratified fraction of the training images). The "pretrained" encoder is the small CNN trained
here first on a separate synthetic set (another seed, more images): no weights can be downloaded,
and a CPU study needs a small encoder. Every (alpha, fraction, method, seed) is a cell of one
sweep (experiments/runner.py): resumable, stored in RUNS/results.sqlite, `hmlearn report RUNS`
gives the full report. Prints AU(PRC), node-macro recall and F1 (percent) and the recall of the
rare nodes per cell, for plain C-HMCNN and the rare-node weights on either label side.

    python bench/vision_limited_data.py                   # ~8 min on 2 CPU cores
    python bench/vision_limited_data.py --fine-tune       # the encoder trained too (slower)
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

from tabulate import tabulate

ALPHAS = [0.0, 0.5, 1.0]
FRACTIONS = [0.1, 0.5, 1.0]
WEIGHTS = {"node_weights": "class-wise", "omega": 0.2}  # the best measured setting (README, Rare nodes)
METHODS = {  # label -> options on top of the encoder and grid
    "C-HMCNN": {},
    "weights (published side)": {**WEIGHTS, "weight_side": "published"},
    "weights (positive side)": {**WEIGHTS, "weight_side": "positive"},
}
METRICS = ("au_prc", "recall", "f1", "recall_rare")
LABEL = re.compile(r"^(?P<method>.+) \(encoder_alpha=(?P<alpha>[\d.e-]+), train_fraction=(?P<fraction>[\d.e-]+)\)$")


def pretrain_encoder(folder: Path, images: int, size: int, epochs: int, seed: int = 1000) -> Path:
    """Small-CNN weights trained (fine-tuned from random, plain MCLoss) on a separate synthetic set."""
    from hmlearn.data.images import load_pixels, read_image_table
    from hmlearn.data.synthetic_images import write_synthetic_images
    from hmlearn.nn.encoders import save_encoder_weights
    from hmlearn.training.config import TrainConfig
    from hmlearn.training.fit import fit

    weights = folder / "small-cnn-pretrained.pt"
    if weights.exists():
        return weights
    table = write_synthetic_images(folder / "pretrain", images, size, seed)
    data = read_image_table(table, hierarchy=folder / "pretrain" / "hierarchy.txt")
    config = TrainConfig(encoder="small-cnn", image_size=size, fine_tune=True, epochs=epochs, batch_size=64, lr=1e-3,
                         seed=seed)
    started = time.perf_counter()
    model = fit(load_pixels(data.paths, size), data.Y, data.hierarchy, config, progress=True)
    save_encoder_weights(model.encoder, weights)
    print(f"pretrained the small CNN on {len(data)} images of another seed in {time.perf_counter() - started:.0f} s: "
          f"{weights}")
    return weights


def study_spec(folder: Path, weights: Path, seeds: list[int], size: int, epochs: int, batch_size: int,
               fine_tune: bool) -> dict:
    """The sweep: METHODS x alpha x training fraction x seeds on the target images."""
    common = {"encoder": "small-cnn", "encoder_weights": str(weights), "encoder_alpha": ALPHAS,
              "train_fraction": FRACTIONS, "epochs": epochs, "batch_size": batch_size, "fine_tune": fine_tune}
    return {
        "name": "vision_limited_data",
        "seeds": seeds,
        "datasets": [{"name": "synthetic-seafloor", "table": str(folder / "data" / "labels.csv"),
                      "hierarchy": str(folder / "data" / "hierarchy.txt"), "image_size": size}],
        "methods": {label: {**common, **options} for label, options in METHODS.items()},
    }


def table(frame, fmt: str) -> str:
    """One row per (alpha, fraction, method): means over seeds, and the F1 gain and wins against plain."""
    runs: dict[tuple, dict[int, dict]] = {}
    for row in frame.itertuples():
        match = LABEL.match(row.method)
        runs.setdefault((float(match["alpha"]), float(match["fraction"]), match["method"]), {})[row.seed] = row.metrics
    order = list(METHODS)
    rows = []
    for alpha, fraction, method in sorted(runs, key=lambda k: (k[0], k[1], order.index(k[2]))):
        own, plain = runs[(alpha, fraction, method)], runs.get((alpha, fraction, "C-HMCNN"), {})
        seeds = sorted(set(own) & set(plain))

        def mean(metric: str, of: dict = own) -> float:
            return statistics.fmean(of[s][metric] for s in seeds) if seeds else float("nan")

        baseline = method == "C-HMCNN"
        wins = sum(own[s]["f1"] > plain[s]["f1"] for s in seeds)
        rows.append([f"{alpha:g}", f"{fraction:.0%}", method, str(len(seeds)), f"{mean('au_prc'):.3f}",
                     f"{mean('recall'):.2f}", f"{mean('f1'):.2f}",
                     "" if baseline else f"{mean('f1') - mean('f1', plain):+.2f}",
                     "" if baseline else f"{wins}/{len(seeds)}", f"{mean('recall_rare'):.2f}"])
    headers = ["alpha", "train", "method", "seeds", "AU(PRC)", "recall", "F1", "F1 gain", "F1 wins", "recall rare"]
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True,
                    colalign=("right", "right", "left", *["right"] * 7))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/vision_limited_data"),
                        help="Data, pretrained weights and results store.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--images", type=int, default=1500, help="Target images (70%% train, 30%% test).")
    parser.add_argument("--pretrain-images", type=int, default=2000)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--fine-tune", action="store_true", help="Train the encoder too [frozen].")
    parser.add_argument("--executor", choices=["sequential", "process"], default="process")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--format", default="simple", help="tabulate format (github for Markdown).")
    args = parser.parse_args()

    from hmlearn.data.synthetic_images import write_synthetic_images
    from hmlearn.experiments.runner import run_sweep
    from hmlearn.experiments.spec import parse_spec

    started = time.perf_counter()
    folder = args.runs.resolve()
    if not (folder / "data" / "labels.csv").exists():
        write_synthetic_images(folder / "data", args.images, args.size, seed=0)
    weights = pretrain_encoder(folder, args.pretrain_images, args.size, args.pretrain_epochs)
    spec = parse_spec(study_spec(folder, weights, args.seeds, args.size, args.epochs, args.batch_size,
                                 args.fine_tune), "bench/vision_limited_data.py")
    store = run_sweep(spec, folder, executor=args.executor, workers=args.workers)
    try:
        frame = store.frame(per_node=False)
    finally:
        store.close()
    frame = frame[frame["sweep"] == spec.name]
    frame = frame[frame["config"].map(lambda c: c.get("fine_tune", False) == args.fine_tune
                                      and c["epochs"] == args.epochs and c["batch_size"] == args.batch_size)]
    mode = "fine-tuned" if args.fine_tune else "frozen"
    print(f"\nsmall CNN encoder ({mode}), {args.size} px synthetic seafloor images, {args.epochs} epochs at batch "
          f"{args.batch_size}; rare-node weights: class-wise, omega {WEIGHTS['omega']}, on the y = 0 (published) or "
          "y = 1 (positive) terms; test-image metrics, percent except AU(PRC); F1 gain / wins: against C-HMCNN, "
          "same seeds; recall rare: nodes with < 20 training positives; alpha 0: pretrained encoder, 1: random")
    print(table(frame, args.format))
    print(f"\n{len(frame)} runs; {time.perf_counter() - started:.0f} s in all; report: hmlearn report {args.runs}")


if __name__ == "__main__":
    main()
