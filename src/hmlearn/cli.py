"""The `hmlearn` command. User mistakes end with one line on stderr and a non-zero exit."""

from __future__ import annotations

import contextlib
import math
import re
import sqlite3
import sys
import warnings
from pathlib import Path

import click
from tabulate import tabulate

from hmlearn.errors import HMLError
from hmlearn.training.config import OPTIONS, UNCERTAINTY_MEASURES, OptionError, TrainConfig, check_option, option_type
from hmlearn.training.presets import IMAGE_SETTINGS, PRESET_HELP, PRESET_NAMES, preset_config

TABLE_FORMATS = click.Choice(["simple", "github", "plain"])


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
        except (OSError, sqlite3.Error) as error:  # a full disk, a read-only folder, a damaged results store
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {_system_error(error)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt as stop:
            if ctx.params.get("debug"):
                raise
            click.echo(str(stop) or "interrupted", err=True)
            sys.exit(130)


def _system_error(error: BaseException) -> str:
    """One line for an OSError or SQLite error: the file, what happened, what to do."""
    import errno

    if isinstance(error, sqlite3.Error):
        full = "full" in str(error).lower()
        hint = "free some disk space and run the command again" if full else "move the file aside to start afresh"
        return f"results store: {error}; {hint} (finished results stay stored)"
    where = f"{error.filename}: " if getattr(error, "filename", None) else ""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        return f"{where}{reason}; free some disk space and run the command again (earlier files are untouched)"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}{reason}; choose a folder you can write to"
    return f"{where}{reason}"


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
@click.option("--quiet", is_flag=True, help="No progress bar.")
def datasets_fetch(names: tuple[str, ...], data_dir: str | None, quiet: bool) -> None:
    """Download missing files of NAMES ('all' for every standard dataset), checking SHA-256."""
    from hmlearn.data.registry import DATASETS
    from hmlearn.data.store import fetch

    selected = list(DATASETS) if names == ("all",) else list(names)
    for name in selected:
        paths = fetch(name, data_dir=data_dir, progress=not quiet)
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


FRACTIONS = ("au_prc", "binary_ap")  # the metrics' units, as hmlearn.metrics.evaluate gives them


def _print_metrics(metrics: dict, header: str) -> None:
    """The metrics with their units: AU(PRC) and binary AP as fractions, node-macro ones in percent."""
    click.echo(header)
    rows = [(k, str(v) if isinstance(v, bool) else f"{v:.4f}",
             "" if isinstance(v, bool) else ("fraction" if k in FRACTIONS else "%")) for k, v in metrics.items()]
    click.echo(tabulate(rows, headers=["metric", "value", "unit"], tablefmt="simple"))


class _TrainingOptionType(click.ParamType):
    """A TrainConfig option on the command line: converted and checked by training/config.py's
    ``check_option``, so a bad value is one line in the spec validator's words (``--epochs: 0 is out
    of range [1, inf)``)."""

    def __init__(self, option: str, flag: str) -> None:
        self.option, self.flag = option, flag
        self.base, _ = option_type(option)
        self.name = {int: "integer", float: "float"}.get(self.base, "text")

    def convert(self, value, param, ctx):
        if isinstance(value, str) and self.base in (int, float):
            try:
                value = self.base(value)
            except ValueError:
                kind = "an integer" if self.base is int else "a number"
                raise HMLError(f"{self.flag}: expected {kind}, got {value!r}") from None
        try:
            return check_option(self.option, value)
        except OptionError as error:
            raise HMLError(f"{self.flag}: {error}") from None

    def get_metavar(self, param, ctx=None) -> str:
        choices = OPTIONS[self.option].choices
        return f"[{'|'.join(choices)}]" if choices else self.name.upper()

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(c) for c in OPTIONS[self.option].choices if c.startswith(incomplete)]


def _shown_default(value) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _training_options(*groups: str, published: tuple[str, ...] = ()):
    """Adds a click option for every TrainConfig field of ``groups`` (training/config.py declares them).

    Each ends up in the command's ``**overrides`` under its field name, None when not given (the
    preset and the dataset's published settings decide then). ``published``: fields whose default
    comes from the dataset, said so in the help.
    """
    defaults = TrainConfig()

    def decorate(command):
        for name, spec in reversed(list(OPTIONS.items())):
            if spec.group not in groups:
                continue
            flag = spec.flag or "--" + name.replace("_", "-")
            shown = "dataset's published value, else " if name in published else ""
            help_text = f"{spec.help} [{shown}{_shown_default(getattr(defaults, name))}]"
            if option_type(name)[0] is bool:
                off = spec.off_flag or "--no-" + flag.removeprefix("--")
                command = click.option(f"{flag}/{off}", name, default=None, help=help_text)(command)
            else:
                command = click.option(flag, name, type=_TrainingOptionType(name, flag), default=None,
                                       help=help_text)(command)
        return command

    return decorate


PUBLISHED = ("hidden_dim", "num_layers", "dropout", "lr", "weight_decay", "batch_size", "epochs")
"""TrainConfig fields a standard dataset publishes (data/registry.py hyperparameters)."""
RUN_OPTIONS = [
    click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
                 help="Checkpoint path [runs/NAME-seedN.ckpt]."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
    click.option("--force", is_flag=True, help="Replace OUT if it exists [refuse]."),
    click.option("--log-every", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Without a terminal (a log file, a pipe): one line every N epochs instead of a progress bar."),
    click.option("--resume", is_flag=True,
                 help="Continue the unfinished run saved in OUT.state (after a crash, a kill or Ctrl-C): same data "
                      "and options, though --epochs, --patience, --lr, --threads and --device may change. Starts "
                      "afresh where there is no state; does nothing when OUT is already complete."),
    click.option("--save-every", type=click.IntRange(min=0), default=1, show_default=True,
                 help="Save the training state to OUT.state every N epochs (0: never). It is deleted once OUT is "
                      "written, so a finished run leaves only its checkpoint."),
]


def _run_options(command):
    for option in reversed(RUN_OPTIONS):
        command = option(command)
    return command


@main.command()
@click.argument("dataset")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default="paper", show_default=True, help=PRESET_HELP)
@_training_options("training", published=PUBLISHED)
@click.option("--valid", type=click.Path(dir_okay=False), default=None, help="Validation ARFF or table (own data).")
@click.option("--test", type=click.Path(dir_okay=False), default=None, help="Test ARFF or table (own data).")
@click.option("--labels-column", default=None, help="Table: the column of label paths joined by ';' [labels].")
@click.option("--hierarchy", "hierarchy_file", type=click.Path(dir_okay=False), default=None,
              help="Table: hierarchy file, one path per line or 'parent,child' edges [built from the labels].")
@click.option("--id-column", default=None, help="Table: the sample id column [id, sample, gene, ... or a text first column].")
@click.option("--strict", is_flag=True, help="Table: refuse a label listed without its ancestors instead of adding them.")
@click.option("--label-delimiter", default=None, help="Table: what joins a sample's labels in its cell [;] (choose "
              "another where label names hold ';').")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@_run_options
def train(dataset: str, preset: str, valid: str | None, test: str | None, labels_column: str | None,
          hierarchy_file: str | None, id_column: str | None, strict: bool, label_delimiter: str | None,
          data_dir: str | None, out: str | None,
          quiet: bool, force: bool, log_every: int, resume: bool, save_every: int, **overrides) -> None:
    """Train C-HMCNN on DATASET (a standard dataset's name, an ARFF file or a CSV / Parquet table).

    A standard dataset trains on train + valid with its published hyper-parameters and is
    evaluated on its test split (the benchmark protocol). A table has one row per sample:
    numeric feature columns, an optional id column and a column of label paths (01/05;02).

    The training state is saved beside the checkpoint (OUT.state) after every epoch; Ctrl-C
    stops with the last completed epoch saved (exit code 130), a diverged loss stops with it
    untouched, and the same command with --resume continues from there, ending with the same
    model as an uninterrupted run (on the CPU). Without --resume an existing OUT.state is refused.
    """
    from hmlearn.data.sources import open_dataset

    table = {"labels_column": labels_column, "hierarchy": hierarchy_file, "id_column": id_column, "strict": strict,
             "label_delimiter": label_delimiter}
    with _warnings_as_lines():
        source = open_dataset(dataset, valid, test, data_dir, table)
    config = preset_config(source.published, preset, source.n_outputs, **overrides)
    path = Path(out or f"runs/{source.name}-seed{config.seed}.ckpt")
    _train_and_report(source, config, path, quiet, resume, save_every, force, log_every)


def _train_and_report(source, config, path: Path, quiet: bool, resume: bool, save_every: int,
                      force: bool = False, log_every: int = 1) -> None:
    """workflows.train_and_save with the command's lines: progress, where the checkpoint is, test metrics,
    and on Ctrl-C or a diverged loss the command that continues the run."""
    from hmlearn.errors import TrainingDiverged, TrainingInterrupted
    from hmlearn.workflows import train_and_save

    state = Path(f"{path}.state")
    try:
        result = train_and_save(source, config, path, resume, save_every, progress=not quiet, log=click.echo,
                                force=force, log_every=log_every)
    except TrainingDiverged as error:
        if not error.saved_epoch:
            raise
        raise HMLError(f"{error}: {_resume_command(lr=config.lr / 10)}") from None
    except KeyboardInterrupt as stop:
        where = f"interrupted at epoch {stop.epoch}" if isinstance(stop, TrainingInterrupted) else "interrupted"
        if not save_every or not state.exists():
            raise KeyboardInterrupt(f"{where}; nothing was saved") from None
        saved = f" (epochs 1-{stop.saved_epoch} saved in {state})" if isinstance(stop, TrainingInterrupted) else ""
        raise KeyboardInterrupt(f"{where}{saved}; resume with: {_resume_command()}") from None
    if result.model is None:
        click.echo(f"{path} is already complete ({result.already_complete_epochs} epochs); nothing to do")
        return
    history = result.model.history
    last = f", final loss {history[-1]['loss']:.4f}" if history else ""
    valid = [r["valid_au_prc"] for r in history if "valid_au_prc" in r]
    best = f", best valid AU(PRC) {max(valid):.4f}" if valid else ""
    click.echo(f"trained in {result.seconds:.1f} s ({len(history)} epochs{last}{best}); checkpoint: {path}")
    if result.test_metrics is not None:
        unit = "images" if source.metadata.get("image_table") else "samples"
        _print_metrics(result.test_metrics, f"test metrics ({len(source.test)} {unit}):")


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
@click.option("--mc-samples", type=click.IntRange(min=0), default=0, show_default=True,
              help="MC-dropout passes (0: off).")
@click.option("--breakdown", is_flag=True, help="Also print recall by depth and by training-frequency bucket.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Decision threshold for every node [the model's tuned thresholds, else 0.5].")
@click.option("--labels-column", default="labels", show_default=True, help="Table: the column of label paths.")
@click.option("--id-column", default=None, help="Table: the sample id column [id, sample, gene, ... or a text first column].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, mps or auto.")
def evaluate_command(checkpoint: str, dataset: str, split: str, data_dir: str | None, images: str | None,
                     per_node: str | None, measure: str, mc_samples: int, breakdown: bool, threshold: float,
                     labels_column: str, id_column: str | None, quiet: bool, device: str) -> None:
    """Metrics of CHECKPOINT on DATASET (a standard dataset's name, an ARFF file or a CSV / Parquet table;
    for a model trained with train-images, an image table read as in training)."""
    from hmlearn.fileio import atomic_write
    from hmlearn.workflows import evaluate_checkpoint, per_node_report

    with _warnings_as_lines():
        result = evaluate_checkpoint(checkpoint, dataset, split, data_dir, images, labels_column, id_column,
                                     mc_samples, threshold, progress=not quiet, device=device)
    _print_metrics(result.metrics, f"{dataset} [{split}], {len(result.data)} samples:")
    if breakdown:
        _print_breakdown(result, result.threshold)
    if per_node:
        table = per_node_report(result, measure)
        with atomic_write(per_node, "w") as handle:
            table.to_csv(handle, index=False)
        click.echo(f"per-node table: {per_node}")


def _print_breakdown(result, threshold) -> None:
    from hmlearn.metrics import recall_by_depth, recall_by_frequency

    hierarchy = result.model.hierarchy
    click.echo("\nnode-macro recall (percent) by depth:")
    formats = ("g", ".0f", ".0f", ".2f")  # index, n_nodes, n_present, recall
    click.echo(tabulate(recall_by_depth(result.data.Y, result.proba, hierarchy, threshold), headers="keys",
                        floatfmt=formats))
    if result.train_Y is not None:
        click.echo("\nnode-macro recall (percent) by training positives:")
        by_bucket = recall_by_frequency(result.data.Y, result.proba, hierarchy, result.train_Y, threshold=threshold)
        click.echo(tabulate(by_bucket, headers="keys", floatfmt=formats))


@main.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--out", "out", type=click.Path(dir_okay=False, allow_dash=True), required=True,
              help="Predictions: .csv, .parquet or .jsonl (JSON lines) by the suffix; - for CSV on standard output.")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Decision threshold for every node [the model's tuned thresholds, else 0.5].")
@click.option("--labels-column", default=None, help="Table: the labels column to ignore [as in training, else labels].")
@click.option("--id-column", default=None, help="Table: the sample id column [as in training, else id, sample, gene, "
              "... or a text first column].")
@click.option("--ignore-extra", is_flag=True, help="Table: ignore columns the model was not trained on [refuse].")
@click.option("--wide", is_flag=True, help="Also one probability column per node.")
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Image models, INPUT a table: the folder its image cells are relative to [the table's folder].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, mps or auto.")
def predict(checkpoint: str, input_path: str, out: str, threshold: float | None, labels_column: str | None,
            id_column: str | None, ignore_extra: bool, wide: bool, images: str | None, quiet: bool,
            device: str) -> None:
    """Predict label paths for INPUT into OUT.

    INPUT: ARFF, or a CSV / Parquet table like the one the model was trained on (its labels
    column is ignored; features are matched by column name); for a model trained with
    train-images, a folder of images (every image below it) or a table with an image column.
    """
    from hmlearn.predict_io import output_format, read_features, write_predictions
    from hmlearn.training.checkpoint import load_checkpoint
    from hmlearn.training.model import resolve_device

    output_format(out)  # an unknown suffix is refused before any work
    model, metadata = load_checkpoint(checkpoint, str(resolve_device(device)))
    id_name = "sample"
    if model.encoder is not None:
        from hmlearn.data.images import list_images, load_pixels

        reading = metadata.get("image_table", {})
        paths, ids = list_images(input_path, images, reading.get("image_column"))
        X = load_pixels(paths, model.config.image_size, progress=not quiet and sys.stderr.isatty())
    else:
        if Path(input_path).is_dir():
            raise HMLError(f"{input_path}: is a folder; this model reads features from an ARFF, CSV or Parquet file")
        table = metadata.get("table", {})
        X, ids = read_features(input_path, model.standardizer.n_features, model.standardizer,
                               metadata.get("feature_names") or None,
                               labels_column or table.get("labels_column") or "labels",
                               id_column or table.get("id_column"), ignore_extra)
        id_name = ids.column or "sample"  # the id column keeps its name
    proba = model.predict_proba(X)
    cutoff = model.decision_thresholds if threshold is None else threshold
    write_predictions(out, ids, proba, model.hierarchy, cutoff, id_name=id_name, wide=wide)
    click.echo(f"{len(X)} predictions written to {'standard output' if out == '-' else out}", err=out == "-")


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


@main.command("train-images")
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Folder the table's image cells are relative to [the table's folder].")
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
@_training_options("image", "training", published=tuple(IMAGE_SETTINGS))
@_run_options
def train_images(table: str, images: str | None, hierarchy_file: str | None, labels_column: str | None,
                 level_columns: str | None, image_column: str | None, split_column: str | None,
                 separator: str | None, strict: bool, test_fraction: float, valid_fraction: float, split_seed: int,
                 out: str | None, quiet: bool, force: bool, log_every: int, resume: bool, save_every: int,
                 **overrides) -> None:
    """Train the heads on images listed in TABLE (CSV / Parquet: one row per image, its labels).

    Labels are hierarchy paths (several per image joined by ';'), one column per level, or
    BenthicNet-style index lists into --hierarchy. The table's split column gives train / valid /
    test; without one, a stratified split by --test-fraction. Images go through the encoder
    (frozen: encoded once; --fine-tune: trained too) into the H heads. Defaults follow the
    paper's image runs (METHOD.md section 11): ResNet-50, 20 epochs, batch 128, learning rate 1e-3.
    """
    from hmlearn.data.sources import open_images

    reading = _image_table_options(images, hierarchy_file, labels_column, level_columns, image_column,
                                   split_column, separator, strict)
    config = TrainConfig().updated(**IMAGE_SETTINGS).updated(**overrides)
    if config.encoder_weights is not None:
        config = config.updated(encoder_weights=str(Path(config.encoder_weights).resolve()))
    with _warnings_as_lines():
        source = open_images(table, reading, test_fraction, valid_fraction, split_seed, config.image_size,
                             progress=not quiet)
    path = Path(out or f"runs/{source.name}-{config.encoder}-seed{config.seed}.ckpt")
    _train_and_report(source, config, path, quiet, resume, save_every, force, log_every)


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
MAX_SEEDS = 10_000  # experiments/spec.py MAX_SEEDS (kept equal by a test; this module imports no pydantic)
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
        if int(high or low) - int(low) + 1 + len(seeds) > MAX_SEEDS:
            raise HMLError(f"--seeds: {value} makes more than {MAX_SEEDS} seeds; a sweep runs every one of them")
        if int(high or low) < int(low):
            raise HMLError(f"--seeds: {token} is an empty range; write the lower seed first")
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
                      ray_address=ray_address, progress=not quiet, todo=todo["todo"])
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
        au_prc=metrics.map(lambda m: m.get("au_prc", math.nan)),  # results imported from older runs may lack some
        recall=metrics.map(lambda m: m.get("recall", math.nan)),
        f1=metrics.map(lambda m: m.get("f1", math.nan)),
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
@click.option("--compare", "comparisons", nargs=2, multiple=True, metavar="METHOD AGAINST",
              help="Also compare METHOD with AGAINST (mean difference and Wilcoxon p per metric); repeat for more "
                   "pairs.")
def report(runs: str, fmt: str, out: str | None, baseline: str, metrics: tuple[str, ...], sweep: str | None,
           blocks: str, pr_dataset: str | None, comparisons: tuple[tuple[str, str], ...]) -> None:
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
    write_report(frame, target, fmt, baseline=baseline, metrics=chosen, blocks=blocks, pr_dataset=pr_dataset,
                 comparisons=comparisons)
    click.echo(f"report written to {target}")
    if fmt != "html" and target.with_name(f"{target.stem}_files").is_dir():
        click.echo(f"plots in {target.with_name(f'{target.stem}_files')}")


@main.command(cls=_SweepCommand)
@click.option("--dataset", default="derisi_FUN", show_default=True)
@click.option("--seeds", default="0-2", show_default=True, callback=_parse_seeds, metavar="SEED...",
              help="Seeds, as for sweep: --seeds 0 1 2, or a range: --seeds 0-9.")
@click.option("--preset", type=click.Choice(["paper", "medium", "fast"]), default="fast", show_default=True)
@click.option("--runs", "runs_dir", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Runs directory: results store and report.html.")
@click.option("--executor", type=click.Choice(["sequential", "process"]), default="process", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(dataset: str, seeds: list[int], preset: str, runs_dir: str, executor: str, quiet: bool) -> None:
    """Plain C-HMCNN vs the rare-node objective: a small sweep, a table and an HTML report."""
    from hmlearn.demo import run_demo

    click.echo(run_demo(dataset, seeds, preset, runs_dir, executor, progress=not quiet))


if __name__ == "__main__":
    main()
