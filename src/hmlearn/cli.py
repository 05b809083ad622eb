"""The `hmlearn` command. User mistakes end with one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys

import click
from tabulate import tabulate

from hmlearn.errors import HMLError

TABLE_FORMATS = click.Choice(["simple", "github", "plain"])
# Spelled out so `hmlearn --help` does not import torch; a test keeps it equal to uncertainty.MEASURES.
UNCERTAINTY_MEASURES = ("mean", "predictive", "aleatoric", "epistemic", "epistemic_kl", "gated")


class _Group(click.Group):
    """Turns HMLError (and data errors) into one clear line and exit code 2, unless --debug."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (HMLError, FileNotFoundError) as error:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="hmlearn")
def main(debug: bool) -> None:
    """Hierarchical multi-label learning that finds the rare, deep nodes of a hierarchy."""


# ---------------------------------------------------------------------------------- datasets
@main.group()
def datasets() -> None:
    """The standard HMC benchmark datasets: list, describe, download."""


@datasets.command("list")
@click.option("--format", "fmt", type=TABLE_FORMATS, default="simple", show_default=True,
              help="Table style; 'github' gives the Markdown table of the README.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Look here first.")
@click.option("--no-location", is_flag=True, help="Leave out the 'found at' column (for docs).")
def datasets_list(fmt: str, data_dir: str | None, no_location: bool) -> None:
    """Every standard dataset with its expected size and published hyper-parameters."""
    from hmlearn.data.registry import DATASETS, PUBLISHED_AUPRC
    from hmlearn.data.store import locate

    rows = []
    for spec in DATASETS.values():
        found = [locate(spec, split, data_dir) for split in spec.splits]
        row = {
            "dataset": spec.name,
            "hierarchy": "DAG" if spec.family == "GO" else "tree",
            "splits": "/".join(spec.splits),
            "features": spec.n_features,
            "nodes": spec.n_nodes,
            "hidden": spec.hidden_dim,
            "epochs": spec.epochs,
            "lr": f"{spec.lr:g}",
            "AU(PRC) published": f"{PUBLISHED_AUPRC[spec.name]:.3f}",
        }
        if not no_location:
            row["found at"] = str(found[0].parent) if all(found) else ("partly" if any(found) else "download")
        rows.append(row)
    click.echo(tabulate(rows, headers="keys", tablefmt=fmt))


@datasets.command("info")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--format", "fmt", type=TABLE_FORMATS, default="simple", show_default=True)
def datasets_info(name: str, data_dir: str | None, fmt: str) -> None:
    """Samples, features, nodes, depth, label cardinality and node frequencies per split."""
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import load_dataset, locate
    from hmlearn.data.summary import split_summary

    spec = get_spec(name)
    parts = load_dataset(spec.name, splits=tuple(spec.splits), data_dir=data_dir)  # downloads what is missing
    folder = locate(spec, spec.splits[0], data_dir).parent
    summaries = [split_summary(part) for part in parts]
    click.echo(f"{spec.name}: {spec.family} {'DAG' if spec.family == 'GO' else 'tree'}, files in {folder}")
    click.echo(tabulate([list(s.values()) for s in summaries], headers=list(summaries[0]), tablefmt=fmt))
    first = summaries[0]
    checks = [
        ("features (after one-hot)", first["features"], spec.n_features),
        ("evaluated nodes", first["evaluated nodes"], spec.n_nodes),
    ]
    for label, actual, expected in checks:
        status = "ok" if actual == expected else "MISMATCH"
        click.echo(f"{label}: {actual} (published {expected}) {status}")
    click.echo(f"nodes with roots: {first['nodes']}; published hyper-parameters: {spec.hyperparameters()}")


@datasets.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Download here.")
def datasets_fetch(names: tuple[str, ...], data_dir: str | None) -> None:
    """Download missing files of NAMES ('all' for every standard dataset), checking SHA-256."""
    from hmlearn.data.registry import DATASETS
    from hmlearn.data.store import fetch

    selected = list(DATASETS) if names == ("all",) else list(names)
    for name in selected:
        paths = fetch(name, data_dir=data_dir)
        for split, path in paths.items():
            click.echo(f"{name} {split}: {path}")


# ---------------------------------------------------------------------------------- training
def _load_training_data(dataset: str, valid: str | None, test: str | None, data_dir: str | None):
    """(train, valid or None, test or None, published hyper-parameters) for a registry name or ARFF path."""
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import load_dataset

    if dataset.endswith(".arff"):
        train = load_dataset(dataset)
        extra = [load_dataset(p) if p else None for p in (valid, test)]
        for part in extra:
            if part is not None and part.hierarchy != train.hierarchy:
                raise HMLError(f"{part.name}: its hierarchy differs from {dataset}'s")
        return train, extra[0], extra[1], {}
    spec = get_spec(dataset)
    train, test_split = load_dataset(spec.name, ("trainvalid", "test"), data_dir=data_dir)
    return train, None, test_split, spec.hyperparameters()


def _print_metrics(metrics: dict, header: str) -> None:
    click.echo(header)
    rows = [(k, str(v) if isinstance(v, bool) else f"{v:.4f}") for k, v in metrics.items()]
    click.echo(tabulate(rows, headers=["metric", "value"], tablefmt="simple"))


@main.command()
@click.argument("dataset")
@click.option("--preset", type=click.Choice(["paper", "fast"]), default="paper", show_default=True,
              help="paper: the dataset's published hyper-parameters; fast: larger batches, fewer epochs.")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--hidden-dim", type=int, default=None)
@click.option("--num-layers", type=int, default=None)
@click.option("--dropout", type=float, default=None)
@click.option("--weight-decay", type=float, default=None)
@click.option("--activation", type=click.Choice(["relu", "gelu", "tanh", "elu"]), default=None)
@click.option("--heads", type=int, default=None, help="Ensemble members trained together.")
@click.option("--objective", type=click.Choice(["mcloss", "bce"]), default=None,
              help="mcloss (C-HMCNN) or bce (flat baseline).")
@click.option("--node-weights", type=click.Choice(["class-wise", "binary"]), default=None,
              help="Node-wise imbalance weights (rare nodes weigh more).")
@click.option("--omega", type=float, default=None, help="Minimum node weight [0.25].")
@click.option("--weight-side", type=click.Choice(["positive", "published"]), default=None,
              help="Label side the rare-node weights multiply [positive].")
@click.option("--descendant-counts/--plain-counts", default=None,
              help="Node counts summed over descendants (published) or plain [descendant].")
@click.option("--negative-weights/--no-negative-weights", default=None,
              help="Also weight the y = 0 terms from negative counts [no].")
@click.option("--focal", type=click.Choice(UNCERTAINTY_MEASURES), default=None,
              help="Focal weight from this ensemble uncertainty measure.")
@click.option("--focal-k", type=float, default=None, help="Focal power k [2].")
@click.option("--focal-min", type=float, default=None, help="Focal floor gamma_min [0.25].")
@click.option("--focal-gamma", type=float, default=None, help="Baseline: standard focal loss gamma [off].")
@click.option("--scheduler", type=click.Choice(["linear", "polynomial", "alternating"]), default=None,
              help="Baseline: move node weights towards 1 within each epoch.")
@click.option("--scheduler-power", type=float, default=None, help="Power k of the polynomial scheduler [2].")
@click.option("--mixed-lambda", type=float, default=None, help="Baseline: lambda * weighted + (1 - lambda) * plain.")
@click.option("--resample", type=click.Choice(["hierarchical"]), default=None,
              help="Baseline: over-sample minority label paths.")
@click.option("--sample-weights", type=click.Choice(["inverse-frequency"]), default=None,
              help="Baseline: observation-level inverse-frequency weights.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--patience", type=int, default=None, help="Early stopping on --valid AU(PRC).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--valid", type=click.Path(dir_okay=False), default=None, help="Validation ARFF (own data).")
@click.option("--test", type=click.Path(dir_okay=False), default=None, help="Test ARFF (own data).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint path [default: runs/DATASET-seedN.ckpt].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(dataset: str, preset: str, seed: int, device: str, valid: str | None, test: str | None,
          data_dir: str | None, out: str | None, quiet: bool, **overrides) -> None:
    """Train C-HMCNN on DATASET (a standard dataset's name or an ARFF file) and save a checkpoint.

    A standard dataset trains on train + valid with its published hyper-parameters and is
    evaluated on its test split (the benchmark protocol).
    """
    import time

    from hmlearn.checkpoint import save_checkpoint
    from hmlearn.metrics import evaluate
    from hmlearn.train import fit, preset_config

    train_split, valid_split, test_split, published = _load_training_data(dataset, valid, test, data_dir)
    config = preset_config(published, preset, len(train_split.hierarchy), seed=seed, device=device, **overrides)
    click.echo(f"training on {train_split!r}\n{config}")
    started = time.perf_counter()
    model = fit(
        train_split.X, train_split.Y, train_split.hierarchy, config,
        valid_split.X if valid_split else None, valid_split.Y if valid_split else None, progress=not quiet,
    )
    seconds = time.perf_counter() - started
    name = train_split.name or "model"
    path = save_checkpoint(model, out or f"runs/{name}-seed{seed}.ckpt", {"dataset": dataset, "seconds": seconds})
    click.echo(f"trained in {seconds:.1f} s; checkpoint: {path}")
    if test_split is not None:
        metrics = evaluate(test_split.Y, model.predict_proba(test_split.X), train_split.hierarchy, train_Y=train_split.Y)
        _print_metrics(metrics, f"test metrics ({len(test_split)} samples):")


@main.command("evaluate")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("dataset")
@click.option("--split", default="test", show_default=True, help="Split of a standard dataset.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--per-node", type=click.Path(dir_okay=False), default=None,
              help="Write a per-node CSV: node, depth, training / test positives, P, R, F1, mean uncertainty.")
@click.option("--uncertainty", "measure", default="predictive", show_default=True,
              type=click.Choice(UNCERTAINTY_MEASURES),
              help="Measure for the per-node mean uncertainty.")
@click.option("--mc-samples", type=int, default=0, show_default=True, help="MC-dropout passes (0: off).")
@click.option("--breakdown", is_flag=True, help="Also print recall by depth and by training-frequency bucket.")
@click.option("--threshold", type=float, default=0.5, show_default=True)
def evaluate_command(checkpoint: str, dataset: str, split: str, data_dir: str | None, per_node: str | None,
                     measure: str, mc_samples: int, breakdown: bool, threshold: float) -> None:
    """Metrics of CHECKPOINT on DATASET (a standard dataset's name or an ARFF file)."""
    import numpy as np
    import torch

    from hmlearn.checkpoint import load_checkpoint
    from hmlearn.data.store import load_dataset
    from hmlearn.fileio import atomic_write
    from hmlearn.metrics import evaluate, per_node_table
    from hmlearn.objectives.uncertainty import uncertainty

    model, _ = load_checkpoint(checkpoint)
    if dataset.endswith(".arff"):
        data, train_Y = load_dataset(dataset), None
    else:
        data = load_dataset(dataset, split, data_dir=data_dir)
        train_Y = load_dataset(dataset, "trainvalid", data_dir=data_dir).Y
    if data.hierarchy != model.hierarchy:
        raise HMLError(f"{dataset}: its hierarchy differs from the one {checkpoint} was trained on")
    members = model.member_probabilities(data.X, mc_samples)
    proba = model.predict_proba(data.X, mc_samples)
    metrics = evaluate(data.Y, proba, model.hierarchy, train_Y=train_Y, threshold=threshold)
    _print_metrics(metrics, f"{dataset} [{split}], {len(data)} samples:")
    if breakdown:
        from hmlearn.metrics import recall_by_depth, recall_by_frequency

        click.echo("\nnode-macro recall (percent) by depth:")
        formats = ("g", ".0f", ".0f", ".2f")  # index, n_nodes, n_present, recall
        by_depth = recall_by_depth(data.Y, proba, model.hierarchy, threshold)
        click.echo(tabulate(by_depth, headers="keys", floatfmt=formats))
        if train_Y is not None:
            click.echo("\nnode-macro recall (percent) by training positives:")
            by_bucket = recall_by_frequency(data.Y, proba, model.hierarchy, train_Y, threshold=threshold)
            click.echo(tabulate(by_bucket, headers="keys", floatfmt=formats))
    if per_node:
        table = per_node_table(data.Y, proba, model.hierarchy, threshold=threshold, train_Y=train_Y)
        node_uncertainty = uncertainty(torch.from_numpy(members), measure).mean(dim=0).numpy()
        table[f"mean_uncertainty_{measure}"] = np.round(node_uncertainty[model.hierarchy.evaluated], 4)
        with atomic_write(per_node, "w") as handle:
            table.to_csv(handle, index=False)
        click.echo(f"per-node table: {per_node}")


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="CSV or .parquet file.")
@click.option("--threshold", type=float, default=0.5, show_default=True)
def predict(checkpoint: str, input_path: str, out: str, threshold: float) -> None:
    """Predict label paths for INPUT (ARFF, or CSV / Parquet of feature columns) into OUT."""
    from hmlearn.checkpoint import load_checkpoint
    from hmlearn.predict_io import read_features, write_predictions

    model, _ = load_checkpoint(checkpoint)
    X, ids = read_features(input_path, model.standardizer.n_features)
    proba = model.predict_proba(X)
    write_predictions(out, ids, proba, model.hierarchy, threshold)
    click.echo(f"{len(X)} predictions written to {out}")


@main.command()
@click.option("--dataset", default="derisi_FUN", show_default=True)
@click.option("--seeds", type=int, default=3, show_default=True)
@click.option("--preset", type=click.Choice(["paper", "fast"]), default="fast", show_default=True)
def demo(dataset: str, seeds: int, preset: str) -> None:
    """C-HMCNN vs a flat network on a real benchmark dataset, as a table."""
    from hmlearn.demo import run_demo

    click.echo(run_demo(dataset, seeds, preset))


if __name__ == "__main__":
    main()
