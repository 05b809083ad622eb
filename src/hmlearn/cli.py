"""The `hmlearn` command. User mistakes end with one line on stderr and a non-zero exit."""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from pathlib import Path

import click
from tabulate import tabulate

from hmlearn.errors import HMLError

TABLE_FORMATS = click.Choice(["simple", "github", "plain"])
# Spelled out so `hmlearn --help` does not import torch; a test keeps it equal to uncertainty.MEASURES.
UNCERTAINTY_MEASURES = ("mean", "predictive", "aleatoric", "epistemic", "epistemic_kl", "gated")
ENCODERS = ("small-cnn", "resnet18", "resnet50", "vit_b_16")  # a test keeps it equal to nn.encoders.ENCODERS


class _Group(click.Group):
    """Turns HMLError (and data errors) into one clear line and exit code 2, and Ctrl-C into one
    line and exit code 130, unless --debug. Keeps the raw arguments (``ctx.meta["argv"]``) for
    messages that say how to run a command again."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (HMLError, FileNotFoundError) as error:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt as stop:
            if ctx.params.get("debug"):
                raise
            click.echo(str(stop) or "interrupted", err=True)
            sys.exit(130)


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
@contextlib.contextmanager
def _warnings_as_lines():
    """User warnings raised inside (e.g. label sets closed upwards) as one ``warning: ...`` line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            click.echo(f"warning: {warning.message}", err=True)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _load_training_data(dataset: str, valid: str | None, test: str | None, data_dir: str | None,
                        table: dict | None = None):
    """(train, valid or None, test or None, published hyper-parameters) for a registry name, ARFF or table.

    ``table``: ``read_tables`` options (labels_column, hierarchy, id_column, strict) for CSV / Parquet.
    Every split is checked before training: not empty, the training feature count, and no value
    that overflows once standardised with the training statistics.
    """
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import load_dataset
    from hmlearn.data.table import is_table, read_tables

    table = {k: v for k, v in (table or {}).items() if v not in (None, False)}
    if is_table(dataset):
        others = [p for p in (valid, test) if p]
        for path in others:
            if not is_table(path):
                raise HMLError(f"{path}: --valid and --test must be CSV or Parquet tables when {dataset} is one")
        with _warnings_as_lines():
            parts = read_tables([dataset, *others], **table)
        rest = iter(parts[1:])
        train, extra = parts[0], [next(rest) if p else None for p in (valid, test)]
        published: dict = {}
    elif table:
        options = ", ".join("--" + k.replace("_", "-") for k in table)
        raise HMLError(f"{options}: only for CSV / Parquet tables; {dataset} declares its labels and hierarchy itself")
    elif dataset.endswith(".arff"):
        train = load_dataset(dataset)
        extra = [load_dataset(p) if p else None for p in (valid, test)]
        for part in extra:
            if part is not None and part.hierarchy != train.hierarchy:
                raise HMLError(f"{part.name}: its hierarchy differs from {dataset}'s")
        published = {}
    else:
        spec = get_spec(dataset)
        train, test_split = load_dataset(spec.name, ("trainvalid", "test"), data_dir=data_dir)
        extra, published, (valid, test) = [None, test_split], spec.hyperparameters(), (None, f"{spec.name} [test]")
    _check_splits(train, dataset, [(part, path) for part, path in zip(extra, (valid, test)) if part is not None])
    return train, extra[0], extra[1], published


def _check_splits(train, train_path: str, others: list) -> None:
    """Refuse, naming the file, an empty split, a feature-count mismatch or a value that overflows later."""
    from hmlearn.data.preprocessing import Standardizer

    for part, path in [(train, train_path), *others]:
        if len(part) == 0:
            raise HMLError(f"{path}: no samples (the data section is empty); add one row per sample")
        if part.n_features != train.n_features:
            raise HMLError(f"{path}: {part.n_features} feature columns, {train_path} has {train.n_features}")
    if others:
        standardizer = Standardizer.fit(train.X)
        for part, path in others:
            standardizer.transform(part.X, source=str(path), feature_names=part.feature_names or None)


def _resume_command(lr: float | None = None) -> str:
    """This command line with --resume added (and --lr replaced): how to continue the run."""
    import shlex

    argv = list(click.get_current_context().meta.get("argv", []))
    if lr is not None:
        values = {i + 1 for i, arg in enumerate(argv) if arg == "--lr"}
        argv = [a for i, a in enumerate(argv) if a != "--lr" and not a.startswith("--lr=") and i not in values]
        argv += ["--lr", f"{lr:g}"]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["hmlearn", *argv])


def _finished_run(path, config, fingerprint: str) -> int:
    """Epochs of the complete checkpoint at ``path``, which must hold this run (same config and data)."""
    from hmlearn.checkpoint import load_checkpoint
    from hmlearn.train import config_differences

    model, metadata = load_checkpoint(path)
    differences = config_differences(vars(model.config), config, ignore=("device", "threads"))
    if metadata.get("data_sha256") != fingerprint:
        differences.append("the training data or hierarchy")
    if differences:
        raise HMLError(f"{path} exists but holds another run ({'; '.join(differences)}); "
                       "delete it or choose another --out")
    return len(model.history)


def _print_metrics(metrics: dict, header: str) -> None:
    click.echo(header)
    rows = [(k, str(v) if isinstance(v, bool) else f"{v:.4f}") for k, v in metrics.items()]
    click.echo(tabulate(rows, headers=["metric", "value"], tablefmt="simple"))


# Options of every training command (model, objective, baselines, run): train and train-images.
TRAINING_OPTIONS = [
    click.option("--epochs", type=int, default=None),
    click.option("--batch-size", type=int, default=None),
    click.option("--lr", type=float, default=None),
    click.option("--hidden-dim", type=int, default=None),
    click.option("--num-layers", type=int, default=None),
    click.option("--dropout", type=float, default=None),
    click.option("--weight-decay", type=float, default=None),
    click.option("--activation", type=click.Choice(["relu", "gelu", "tanh", "elu"]), default=None),
    click.option("--heads", type=int, default=None, help="Ensemble members trained together."),
    click.option("--objective", type=click.Choice(["mcloss", "bce"]), default=None,
                 help="mcloss (C-HMCNN) or bce (flat baseline)."),
    click.option("--node-weights", type=click.Choice(["class-wise", "binary"]), default=None,
                 help="Node-wise imbalance weights (rare nodes weigh more)."),
    click.option("--omega", type=float, default=None, help="Minimum node weight [0.25]."),
    click.option("--weight-side", type=click.Choice(["positive", "published"]), default=None,
                 help="Label side the rare-node weights multiply: published (y = 0 terms, as the published code) or positive [published]."),
    click.option("--descendant-counts/--plain-counts", default=None,
                 help="Node counts summed over descendants, or plain [plain: matches the published code]."),
    click.option("--negative-weights/--no-negative-weights", default=None,
                 help="Also weight the y = 0 terms from negative counts [no]."),
    click.option("--focal", type=click.Choice(UNCERTAINTY_MEASURES), default=None,
                 help="Focal weight from this ensemble uncertainty measure."),
    click.option("--focal-k", type=float, default=None, help="Focal power k [2]."),
    click.option("--focal-min", type=float, default=None, help="Focal floor gamma_min [0.25]."),
    click.option("--focal-gamma", type=float, default=None, help="Baseline: standard focal loss gamma [off]."),
    click.option("--scheduler", type=click.Choice(["linear", "polynomial", "alternating"]), default=None,
                 help="Baseline: move node weights towards 1 within each epoch."),
    click.option("--scheduler-power", type=float, default=None, help="Power k of the polynomial scheduler [2]."),
    click.option("--mixed-lambda", type=float, default=None, help="Baseline: lambda * weighted + (1 - lambda) * plain."),
    click.option("--resample", type=click.Choice(["hierarchical"]), default=None,
                 help="Baseline: over-sample minority label paths."),
    click.option("--sample-weights", type=click.Choice(["inverse-frequency"]), default=None,
                 help="Baseline: observation-level inverse-frequency weights."),
    click.option("--train-fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
                 help="Limited data: train on this fraction of the training rows, stratified on the hierarchy [1]."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--patience", type=int, default=None, help="Early stopping on --valid AU(PRC)."),
    click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 or auto."),
    click.option("--threads", type=int, default=None, help="torch CPU threads."),
]


def _training_options(command):
    """Adds TRAINING_OPTIONS to a click command (they end up in its ``**overrides``)."""
    for option in reversed(TRAINING_OPTIONS):
        command = option(command)
    return command


@main.command()
@click.argument("dataset")
@click.option("--preset", type=click.Choice(["paper", "medium", "fast"]), default="paper", show_default=True,
              help="paper: the dataset's published hyper-parameters; medium: batch 32, 4x lr; fast: batch 128, 10x lr "
                   "(GO, both: batch 16, 5x lr; 'others': batch 16, 10x lr, half the epochs).")
@_training_options
@click.option("--valid", type=click.Path(dir_okay=False), default=None, help="Validation ARFF or table (own data).")
@click.option("--test", type=click.Path(dir_okay=False), default=None, help="Test ARFF or table (own data).")
@click.option("--labels-column", default=None, help="Table: the column of label paths joined by ';' [labels].")
@click.option("--hierarchy", "hierarchy_file", type=click.Path(dir_okay=False), default=None,
              help="Table: hierarchy file, one path per line or 'parent,child' edges [built from the labels].")
@click.option("--id-column", default=None, help="Table: the sample id column [id, sample, gene, ... or a text first column].")
@click.option("--strict", is_flag=True, help="Table: refuse a label listed without its ancestors instead of adding them.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint path [default: runs/DATASET-seedN.ckpt].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--resume", is_flag=True,
              help="Continue the unfinished run saved in OUT.state (after a crash, a kill or Ctrl-C): same data "
                   "and options, though --epochs, --patience, --lr, --threads and --device may change. Starts "
                   "afresh where there is no state; does nothing when OUT is already complete.")
@click.option("--save-every", type=click.IntRange(min=0), default=1, show_default=True,
              help="Save the training state to OUT.state every N epochs (0: never). It is deleted once OUT is "
                   "written, so a finished run leaves only its checkpoint.")
def train(dataset: str, preset: str, seed: int, device: str, valid: str | None, test: str | None,
          labels_column: str | None, hierarchy_file: str | None, id_column: str | None, strict: bool,
          data_dir: str | None, out: str | None, quiet: bool, resume: bool, save_every: int, **overrides) -> None:
    """Train C-HMCNN on DATASET (a standard dataset's name, an ARFF file or a CSV / Parquet table).

    A standard dataset trains on train + valid with its published hyper-parameters and is
    evaluated on its test split (the benchmark protocol). A table has one row per sample:
    numeric feature columns, an optional id column and a column of label paths (01/05;02).

    The training state is saved beside the checkpoint (OUT.state) after every epoch; Ctrl-C
    stops with the last completed epoch saved (exit code 130), a diverged loss stops with it
    untouched, and the same command with --resume continues from there, ending with the same
    model as an uninterrupted run (on the CPU). Without --resume an existing OUT.state is refused.
    """
    table = {"labels_column": labels_column, "hierarchy": hierarchy_file, "id_column": id_column, "strict": strict}
    train_split, valid_split, test_split, published = _load_training_data(dataset, valid, test, data_dir, table)

    from hmlearn.train import preset_config  # torch: imported once the data is known to be good

    config = preset_config(published, preset, len(train_split.hierarchy), seed=seed, device=device, **overrides)
    path = Path(out or f"runs/{train_split.name or 'model'}-seed{seed}.ckpt")
    valid_data = (valid_split.X, valid_split.Y) if valid_split else None
    test_data = (test_split.X, test_split.Y, f"test metrics ({len(test_split)} samples):") if test_split else None
    _train_and_save((train_split.X, train_split.Y), train_split.hierarchy, config, path, valid_data, test_data,
                    {"dataset": dataset}, repr(train_split), quiet, resume, save_every)


def _train_and_save(training: tuple, hierarchy, config, path, valid: tuple | None, test: tuple | None,
                    metadata: dict, description: str, quiet: bool, resume: bool, save_every: int) -> None:
    """fit -> checkpoint at ``path``, with the resumable state beside it, then the test metrics.

    ``training`` and ``valid`` are (X, Y); ``test`` is (X, Y, header). Shared by every training
    command: a finished checkpoint is not trained again with --resume, Ctrl-C and a diverged loss
    end with the command that continues the run.
    """
    import time

    from hmlearn.checkpoint import save_checkpoint
    from hmlearn.errors import TrainingDiverged, TrainingInterrupted
    from hmlearn.metrics import evaluate
    from hmlearn.train import data_fingerprint, fit

    path = Path(path)
    state = Path(f"{path}.state") if save_every else None
    X, Y = training
    X_valid, Y_valid = valid if valid else (None, None)
    fingerprint = data_fingerprint(X, Y, hierarchy, X_valid, Y_valid)
    if resume and path.exists():
        epochs = _finished_run(path, config, fingerprint)
        if state is not None:
            state.unlink(missing_ok=True)  # left by a stop between writing the checkpoint and deleting it
        click.echo(f"{path} is already complete ({epochs} epochs); nothing to do")
        return
    if state is not None and state.exists() and not resume:
        raise HMLError(f"{state} holds an unfinished run; continue it with --resume, or delete it to start afresh")
    click.echo(f"training on {description}\n{config}")
    if resume and state is not None and state.exists():
        click.echo(f"resuming from {state}")
    started = time.perf_counter()
    try:
        model = fit(X, Y, hierarchy, config, X_valid, Y_valid, progress=not quiet, state_path=state, resume=resume,
                    save_every=max(save_every, 1))
        seconds = time.perf_counter() - started
        save_checkpoint(model, path, {**metadata, "seconds": seconds, "data_sha256": fingerprint})
    except TrainingDiverged as error:
        if not error.saved_epoch:
            raise
        raise HMLError(f"{error}: {_resume_command(lr=config.lr / 10)}") from None
    except KeyboardInterrupt as stop:
        where = f"interrupted at epoch {stop.epoch}" if isinstance(stop, TrainingInterrupted) else "interrupted"
        if state is None or not state.exists():
            raise KeyboardInterrupt(f"{where}; nothing was saved") from None
        saved = f" (epochs 1-{stop.saved_epoch} saved in {state})" if isinstance(stop, TrainingInterrupted) else ""
        raise KeyboardInterrupt(f"{where}{saved}; resume with: {_resume_command()}") from None
    if state is not None:
        state.unlink(missing_ok=True)
    click.echo(f"trained in {seconds:.1f} s; checkpoint: {path}")
    if test is not None:
        X_test, Y_test, header = test
        metrics = evaluate(Y_test, model.predict_proba(X_test), hierarchy, train_Y=Y)
        _print_metrics(metrics, header)


@main.command("evaluate")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("dataset")
@click.option("--split", default="test", show_default=True,
              help="Split of a standard dataset, or of an image table (train, valid, test as in training, or all).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Image models: the folder the table's image cells are relative to [as in training].")
@click.option("--per-node", type=click.Path(dir_okay=False), default=None,
              help="Write a per-node CSV: node, depth, training / test positives, P, R, F1, mean uncertainty.")
@click.option("--uncertainty", "measure", default="predictive", show_default=True,
              type=click.Choice(UNCERTAINTY_MEASURES),
              help="Measure for the per-node mean uncertainty.")
@click.option("--mc-samples", type=int, default=0, show_default=True, help="MC-dropout passes (0: off).")
@click.option("--breakdown", is_flag=True, help="Also print recall by depth and by training-frequency bucket.")
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--labels-column", default="labels", show_default=True, help="Table: the column of label paths.")
@click.option("--id-column", default=None, help="Table: the sample id column [id, sample, gene, ... or a text first column].")
def evaluate_command(checkpoint: str, dataset: str, split: str, data_dir: str | None, images: str | None,
                     per_node: str | None, measure: str, mc_samples: int, breakdown: bool, threshold: float,
                     labels_column: str, id_column: str | None) -> None:
    """Metrics of CHECKPOINT on DATASET (a standard dataset's name, an ARFF file or a CSV / Parquet table;
    for a model trained with train-images, an image table read as in training)."""
    import numpy as np
    import torch

    from hmlearn.checkpoint import load_checkpoint
    from hmlearn.data.store import load_dataset
    from hmlearn.data.table import is_table, read_table
    from hmlearn.fileio import atomic_write
    from hmlearn.metrics import evaluate, per_node_table
    from hmlearn.objectives.uncertainty import uncertainty

    model, metadata = load_checkpoint(checkpoint)
    if model.encoder is not None:
        data, pixels, train_Y = _image_split(model, metadata, dataset, images, split)
    elif is_table(dataset):
        with _warnings_as_lines():
            data = read_table(dataset, labels_column, model.hierarchy, id_column)
        train_Y = None
    elif dataset.endswith(".arff"):
        data, train_Y = load_dataset(dataset), None
    else:
        data = load_dataset(dataset, split, data_dir=data_dir)
        train_Y = load_dataset(dataset, "trainvalid", data_dir=data_dir).Y
    if data.hierarchy != model.hierarchy:
        raise HMLError(f"{dataset}: its hierarchy differs from the one {checkpoint} was trained on")
    if len(data) == 0:
        raise HMLError(f"{dataset}: no samples (the data section is empty); add one row per sample")
    if model.encoder is not None:
        X = model.features(pixels)
    elif data.n_features != model.standardizer.n_features:
        raise HMLError(f"{dataset}: {data.n_features} feature columns, the model was trained on "
                       f"{model.standardizer.n_features}")
    else:
        X = model.standardizer.transform(data.X, source=dataset, feature_names=data.feature_names or None)
    proba = model.predict_proba(X, mc_samples, standardized=True)
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
        members = model.member_probabilities(X, mc_samples, standardized=True)  # only the table needs them
        node_uncertainty = uncertainty(torch.from_numpy(members), measure).mean(dim=0).numpy()
        table[f"mean_uncertainty_{measure}"] = np.round(node_uncertainty[model.hierarchy.evaluated], 4)
        with atomic_write(per_node, "w") as handle:
            table.to_csv(handle, index=False)
        click.echo(f"per-node table: {per_node}")


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="CSV or .parquet file.")
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Image models, INPUT a table: the folder its image cells are relative to [the table's folder].")
def predict(checkpoint: str, input_path: str, out: str, threshold: float, images: str | None) -> None:
    """Predict label paths for INPUT into OUT.

    INPUT: ARFF, or CSV / Parquet of feature columns; for a model trained with train-images, a
    folder of images (every image below it) or a table with an image column.
    """
    from hmlearn.checkpoint import load_checkpoint
    from hmlearn.predict_io import read_features, write_predictions

    model, metadata = load_checkpoint(checkpoint)
    if model.encoder is not None:
        from hmlearn.data.images import list_images, load_pixels

        reading = metadata.get("image_table", {})
        paths, ids = list_images(input_path, images, reading.get("image_column"))
        X = load_pixels(paths, model.config.image_size)
    else:
        if Path(input_path).is_dir():
            raise HMLError(f"{input_path}: is a folder; this model reads features from an ARFF, CSV or Parquet file")
        X, ids = read_features(input_path, model.standardizer.n_features, model.standardizer)
    proba = model.predict_proba(X)
    write_predictions(out, ids, proba, model.hierarchy, threshold)
    click.echo(f"{len(X)} predictions written to {out}")


# ---------------------------------------------------------------------------------- images
def _image_table_options(images: str | None, hierarchy_file: str | None, labels_column: str | None,
                         level_columns: str | None, image_column: str | None, split_column: str | None,
                         separator: str | None, strict: bool) -> dict:
    """read_image_table's keyword arguments from the command's options (those given)."""
    options = {"images_dir": images, "hierarchy": hierarchy_file, "labels_column": labels_column,
               "level_columns": [c.strip() for c in level_columns.split(",")] if level_columns else None,
               "image_column": image_column, "split_column": split_column, "separator": separator,
               "strict": strict or None}
    return {k: v for k, v in options.items() if v is not None}


def _image_split(model, metadata: dict, table: str, images: str | None, split: str):
    """(ImageDataset, pixels, training labels or None) of ``split`` of an image table, read as in training."""
    from hmlearn.data.images import image_splits, load_pixels, read_image_table

    reading = dict(metadata.get("image_table", {}))
    if images is not None:
        reading["images_dir"] = images
    if reading.get("hierarchy") is None or not str(reading["hierarchy"]).strip():
        reading["hierarchy"] = model.hierarchy  # a label outside the model's hierarchy is an error naming its row
    with _warnings_as_lines():
        data = read_image_table(table, **reading)
    splits = metadata.get("splits", {"test_fraction": 0.3, "valid_fraction": 0.0, "seed": 0})
    parts = image_splits(data, splits["test_fraction"], splits["valid_fraction"], splits["seed"])
    if split == "all":
        chosen, train_Y = data, None
    elif split in parts:
        chosen, train_Y = parts[split], parts["train"].Y
    else:
        raise HMLError(f"{table}: no {split!r} split; choose from {', '.join([*parts, 'all'])}")
    return chosen, load_pixels(chosen.paths, model.config.image_size, progress=True), train_Y


@main.command("train-images")
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Folder the table's image cells are relative to [the table's folder].")
@click.option("--encoder", type=click.Choice(ENCODERS), default="resnet50", show_default=True,
              help="Image encoder feeding the heads (small-cnn: a small CNN for CPUs and tests).")
@click.option("--encoder-weights", type=click.Path(dir_okay=False), default=None,
              help="Local weights file for the encoder (torchvision .pth or hmlearn's) [random initialisation].")
@click.option("--alpha", "encoder_alpha", type=click.FloatRange(0.0, 1.0), default=None,
              help="Suboptimal encoder: weights moved towards a random initialisation by alpha [0].")
@click.option("--fine-tune/--frozen", "fine_tune", default=None, help="Train the encoder too [frozen].")
@click.option("--encoder-lr", type=float, default=None, help="Fine-tuning learning rate of the encoder [--lr].")
@click.option("--image-size", type=click.IntRange(min=8), default=None, show_default="224",
              help="Images are resized (shorter side) and centre-cropped to this square size.")
@click.option("--hierarchy", "hierarchy_file", type=click.Path(dir_okay=False), default=None,
              help="Hierarchy file, one path per line [built from the labels]; needed for index-list labels.")
@click.option("--labels-column", default=None, help="Column of label paths joined by ';' [labels, catami_*].")
@click.option("--level-columns", default=None, help="Comma-separated level columns instead [level1, level2, ...].")
@click.option("--image-column", default=None, help="Column naming the image file [image, file, path, ...].")
@click.option("--split-column", default=None, help="Column naming each image's split [partition, split].")
@click.option("--separator", default=None, help="Separator inside a label path [guessed].")
@click.option("--strict", is_flag=True, help="Refuse a label listed without its ancestors.")
@click.option("--test-fraction", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True), default=0.3,
              show_default=True, help="Without a split column: images held out for testing, stratified.")
@click.option("--valid-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              help="Without a split column: images held out for early stopping (with --patience).")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the stratified split.")
@_training_options
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint path [runs/TABLE-ENCODER-seedN.ckpt].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--resume", is_flag=True, help="Continue the unfinished run saved in OUT.state (see train --help).")
@click.option("--save-every", type=click.IntRange(min=0), default=1, show_default=True,
              help="Save the training state to OUT.state every N epochs (0: never).")
def train_images(table: str, images: str | None, hierarchy_file: str | None, labels_column: str | None,
                 level_columns: str | None, image_column: str | None, split_column: str | None,
                 separator: str | None, strict: bool, test_fraction: float, valid_fraction: float, split_seed: int,
                 seed: int, device: str, out: str | None, quiet: bool, resume: bool, save_every: int,
                 **overrides) -> None:
    """Train the heads on images listed in TABLE (CSV / Parquet: one row per image, its labels).

    Labels are hierarchy paths (several per image joined by ';'), one column per level, or
    BenthicNet-style index lists into --hierarchy. The table's split column gives train / valid /
    test; without one, a stratified split by --test-fraction. Images go through the encoder
    (frozen: encoded once; --fine-tune: trained too) into the H heads. Defaults follow the
    paper's image runs (METHOD.md section 11): 20 epochs, batch 128, learning rate 1e-3.
    """
    from hmlearn.data.images import image_splits, load_pixels, read_image_table

    reading = _image_table_options(images, hierarchy_file, labels_column, level_columns, image_column,
                                   split_column, separator, strict)
    with _warnings_as_lines():
        data = read_image_table(table, **reading)
    parts = image_splits(data, test_fraction, valid_fraction, split_seed)
    from hmlearn.train import IMAGE_SETTINGS, TrainConfig  # torch: imported once the table is known to be good

    config = TrainConfig().updated(**IMAGE_SETTINGS).updated(seed=seed, device=device, **overrides)
    if config.encoder_weights is not None:
        config = config.updated(encoder_weights=str(Path(config.encoder_weights).resolve()))
    pixels = {name: load_pixels(part.paths, config.image_size, progress=not quiet) for name, part in parts.items()}
    name = Path(table).stem
    path = Path(out or f"runs/{name}-{config.encoder}-seed{seed}.ckpt")
    valid = (pixels["valid"], parts["valid"].Y) if "valid" in parts else None
    test = (pixels["test"], parts["test"].Y, f"test metrics ({len(parts['test'])} images):") if "test" in parts else None
    # absolute paths: evaluate / predict read the table again, maybe from another folder
    metadata = {"dataset": str(table), "image_table": {k: str(Path(v).resolve()) if k in ("images_dir", "hierarchy")
                                                       else v for k, v in reading.items()},
                "splits": {"test_fraction": test_fraction, "valid_fraction": valid_fraction, "seed": split_seed}}
    description = f"{len(parts['train'])} training images of {data!r}"
    _train_and_save((pixels["train"], parts["train"].Y), data.hierarchy, config, path, valid, test, metadata,
                    description, quiet, resume, save_every)


@main.command("make-images")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n", "n_images", type=click.IntRange(min=10), default=600, show_default=True, help="Images.")
@click.option("--size", type=click.IntRange(min=16), default=32, show_default=True, help="Pixels per side.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layout", type=click.Choice(["paths", "levels", "benthicnet"]), default="paths", show_default=True,
              help="Table layout: label paths, one column per level, or BenthicNet index lists.")
def make_images(out_dir: str, n_images: int, size: int, seed: int, layout: str) -> None:
    """Write synthetic seafloor-like images with hierarchical, long-tailed labels into OUT_DIR.

    Images under OUT_DIR/images, the table OUT_DIR/labels.csv (with a train / test partition) and
    OUT_DIR/hierarchy.txt: ready for `hmlearn train-images OUT_DIR/labels.csv`.
    """
    from hmlearn.data.synthetic_images import write_synthetic_images

    table = write_synthetic_images(out_dir, n_images, size, seed, layout)
    images = " --images " + str(Path(out_dir) / "images") if layout == "benthicnet" else ""
    click.echo(f"{n_images} images of {size} x {size} pixels; table: {table}\n"
               f"train with: hmlearn train-images {table}{images} --hierarchy {Path(out_dir) / 'hierarchy.txt'} "
               f"--encoder small-cnn --image-size {size}")


# ---------------------------------------------------------------------------------- sweeps
_SEED_TOKEN = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")  # 3, 0-9, 0,1,2


class _SweepCommand(click.Command):
    """Lets ``--seeds`` take several values (``--seeds 0 1 2``): the seed tokens after it are joined into one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        joined, i = [], 0
        while i < len(args):
            joined.append(args[i])
            i += 1
            if joined[-1] == "--seeds":
                start = i
                while i < len(args) and _SEED_TOKEN.fullmatch(args[i]):
                    i += 1
                if i > start:
                    joined.append(",".join(args[start:i]))
        return super().parse_args(ctx, joined)


def _parse_seeds(ctx, param, value: str | None) -> list[int] | None:
    """'0,1,2', '0 1 2' or ranges '0-9' -> [0, 1, ...]."""
    if value is None:
        return None
    seeds: list[int] = []
    for token in value.replace(",", " ").split():
        if not _SEED_TOKEN.fullmatch(token):
            raise click.BadParameter(f"{token!r} is not a seed (integers, or ranges such as 0-9)")
        low, _, high = token.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    if not seeds:
        raise click.BadParameter("give at least one seed")
    return list(dict.fromkeys(seeds))


@main.command(cls=_SweepCommand)
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--runs", "runs_dir", type=click.Path(file_okay=False), default=None,
              help="Runs directory holding results.sqlite [runs/<spec name>].")
@click.option("--executor", type=click.Choice(["sequential", "process", "ray"]), default="sequential",
              show_default=True, help="Where cells run: this process, a local process pool, or Ray.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Process-pool size, or CPUs of a local Ray instance [cores // threads_per_cell].")
@click.option("--ray-address", default=None, help="Ray cluster to join (e.g. auto or ray://host:10001) "
              "[a local instance].")
@click.option("--seeds", default=None, callback=_parse_seeds, metavar="SEED...",
              help="Run these seeds instead of the spec's: --seeds 0 1 2, or a range: --seeds 0-9.")
@click.option("--no-resume", is_flag=True, help="Run every cell again, replacing stored results "
              "[default: run only the cells not stored with status ok].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(spec_file: str, runs_dir: str | None, executor: str, workers: int | None, ray_address: str | None,
          seeds: list[int] | None, no_resume: bool, quiet: bool) -> None:
    """Run the sweep SPEC (a YAML file: datasets x methods x seeds), storing every finished cell.

    Results go to RUNS/results.sqlite, one row per cell as it finishes, so the same command run
    again (after a crash, a kill or Ctrl-C) runs only the cells that are missing or failed.
    Prints mean AU(PRC), recall and F1 over seeds per dataset and method at the end; exits with
    code 1 if any cell failed (a failed cell is recorded with its error and the others still run).
    """
    from hmlearn.experiments.runner import default_runs_dir, plan, run_sweep
    from hmlearn.experiments.spec import load_spec

    spec = load_spec(spec_file)
    if seeds is not None:
        spec = spec.with_seeds(seeds)
    runs = Path(runs_dir) if runs_dir else default_runs_dir(spec)
    todo = plan(spec, runs, resume=not no_resume)
    n_cells, n_todo = len(todo["cells"]), len(todo["todo"])
    retry = f", {len(todo['retry'])} of them failed before" if todo["retry"] else ""
    if no_resume:
        click.echo(f"sweep {spec.name}: {n_cells} cells, running all of them (--no-resume); results: "
                   f"{runs / 'results.sqlite'}")
    else:
        click.echo(f"sweep {spec.name}: {n_cells} cells, {len(todo['done'])} already done, {n_todo} to run{retry}; "
                   f"results: {runs / 'results.sqlite'}")
    store = run_sweep(spec, runs, executor=executor, workers=workers, resume=not no_resume,
                      ray_address=ray_address, progress=not quiet)
    try:
        keys = {cell.key for cell in todo["cells"]}
        frame = store.frame(status=None, per_node=False)
    finally:
        store.close()
    frame = frame[frame["key"].isin(keys)]
    click.echo(_sweep_table(frame))
    failed = frame[frame["status"] == "failed"]
    for row in failed.itertuples():
        click.echo(f"failed: {row.dataset} / {row.method} / seed {row.seed}: {row.error.splitlines()[0]}", err=True)
    click.echo(f"{int((frame['status'] == 'ok').sum())} of {n_cells} cells done, {len(failed)} failed; "
               f"results: {runs / 'results.sqlite'}")
    if len(failed):
        click.echo(f"{len(failed)} cells failed (their errors are stored); run the same command again to retry them",
                   err=True)
        sys.exit(1)


def _sweep_table(frame) -> str:
    """dataset x method: mean AU(PRC), recall and F1 over the seeds stored with status ok."""
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return "no finished cells"
    metrics = ok["metrics"]
    table = ok[["dataset", "method"]].assign(
        seeds=1,
        au_prc=metrics.map(lambda m: m["au_prc"]),
        recall=metrics.map(lambda m: m["recall"]),
        f1=metrics.map(lambda m: m["f1"]),
    )
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["method"]))}
    summary = (table.groupby(["dataset", "method"], sort=False)
               .agg(seeds=("seeds", "sum"), au_prc=("au_prc", "mean"), recall=("recall", "mean"), f1=("f1", "mean"))
               .reset_index())
    summary = summary.sort_values(["dataset", "method"], key=lambda c: c.map(order) if c.name == "method" else c,
                                  kind="stable")
    return tabulate(summary.values.tolist(), headers=["dataset", "method", "seeds", "AU(PRC)", "recall %", "F1 %"],
                    floatfmt=("", "", "d", ".4f", ".2f", ".2f"))


@main.command()
@click.argument("runs", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["md", "html", "latex"]), default="md", show_default=True,
              help="md: tables + PNG plots in REPORT_files/; html: one self-contained file; latex: booktabs + PDF plots.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Report file [RUNS/report.md|.html|.tex].")
@click.option("--baseline", default="C-HMCNN", show_default=True, help="The method every other one is compared with.")
@click.option("--metric", "metrics", multiple=True,
              help="Metric of a results table; repeat or comma-separate [au_prc, binary_ap, precision, recall, f1, "
                   "recall_rare].")
@click.option("--sweep", default=None, help="Only the runs of this sweep [all in the store].")
@click.option("--blocks", type=click.Choice(["dataset", "dataset-seed"]), default="dataset", show_default=True,
              help="Friedman test blocks: datasets (mean over seeds) or (dataset, seed) pairs.")
@click.option("--pr-dataset", default=None, help="Precision-recall curves of this dataset only [a panel per dataset].")
def report(runs: str, fmt: str, out: str | None, baseline: str, metrics: tuple[str, ...], sweep: str | None,
           blocks: str, pr_dataset: str | None) -> None:
    """Tables, statistical tests and plots of the runs in RUNS (a runs folder holding results.sqlite, or that file)."""
    import os
    import sqlite3
    os.environ.setdefault("MPLBACKEND", "Agg")  # plots are files: never a window
    from hmlearn.experiments.report import DEFAULT_METRICS, report_path, write_report
    from hmlearn.experiments.store import FILENAME, ResultStore

    path = Path(runs)
    store_file = path / FILENAME if path.is_dir() else path
    if not path.exists():
        raise HMLError(f"{runs}: no such runs folder or results file")
    if not store_file.is_file():
        raise HMLError(f"{runs}: no {FILENAME} in this folder; `hmlearn sweep` writes one")
    if store_file.suffix not in (".sqlite", ".sqlite3", ".db"):
        raise HMLError(f"{runs}: not a results store (a {FILENAME} file or the folder holding one)")
    try:
        with ResultStore(store_file) as store:
            frame = store.frame(status=None, per_node=False)
    except sqlite3.DatabaseError as error:
        raise HMLError(f"{store_file}: cannot be read as a results store ({error})") from None
    if frame.empty:
        raise HMLError(f"{store_file}: no runs stored yet")
    if sweep is not None:
        sweeps = sorted({str(s) for s in frame["sweep"].dropna()})
        if sweep not in sweeps:
            raise HMLError(f"{store_file}: no sweep {sweep!r}; sweeps found: {', '.join(sweeps) or 'none'}")
        frame = frame[frame["sweep"] == sweep]
    chosen = [name.strip() for item in metrics for name in item.split(",") if name.strip()] or list(DEFAULT_METRICS)
    target = Path(out) if out else report_path(store_file.parent, fmt)
    write_report(frame, target, fmt, baseline=baseline, metrics=chosen, blocks=blocks, pr_dataset=pr_dataset)
    click.echo(f"report written to {target}")
    if fmt != "html" and target.with_name(f"{target.stem}_files").is_dir():
        click.echo(f"plots in {target.with_name(f'{target.stem}_files')}")


@main.command()
@click.option("--dataset", default="derisi_FUN", show_default=True)
@click.option("--seeds", type=int, default=3, show_default=True)
@click.option("--preset", type=click.Choice(["paper", "medium", "fast"]), default="fast", show_default=True)
@click.option("--runs", "runs_dir", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Runs directory: results store and report.html.")
@click.option("--executor", type=click.Choice(["sequential", "process"]), default="process", show_default=True)
def demo(dataset: str, seeds: int, preset: str, runs_dir: str, executor: str) -> None:
    """Plain C-HMCNN vs the rare-node objective: a small sweep, a table and an HTML report."""
    from hmlearn.demo import run_demo

    click.echo(run_demo(dataset, seeds, preset, runs_dir, executor))


if __name__ == "__main__":
    main()
