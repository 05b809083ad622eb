"""What the commands do, in one place: train and save a model, evaluate a checkpoint, run a sweep cell.

The CLI (cli.py), the sweep runner (experiments/runner.py), the demo and the benchmarks call
these; they print nothing themselves (``log`` receives the lines a command shows), so each
caller decides how to show progress and errors.
"""

from __future__ import annotations

import contextlib
import datetime
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmlearn.data.sources import Source, evaluation_split, sweep_source
from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy

PR_CURVE_POINTS = 200


# ---------------------------------------------------------------------------------- train and save
@dataclass
class Trained:
    """The outcome of :func:`train_and_save`: the model (None when the checkpoint was already complete)."""

    path: Path
    model: Any = None
    seconds: float = 0.0
    test_metrics: dict | None = None
    already_complete_epochs: int = 0


def train_and_save(source: Source, config: Any, path: str | Path, resume: bool = False, save_every: int = 1,
                   progress: bool = True, log: Callable[[str], None] = lambda line: None,
                   force: bool = False, log_every: int = 1) -> Trained:
    """fit on ``source.train`` (validated on ``source.valid``) -> checkpoint at ``path`` -> test metrics.

    The resumable training state lives at ``path.state`` (unless ``save_every`` is 0) and is
    deleted once the checkpoint is written. With ``resume`` a complete checkpoint of this run is
    not trained again; without it an unfinished state is refused rather than overwritten, and so is an
    existing checkpoint unless ``force``.
    TrainingDiverged and TrainingInterrupted pass through with the saved epoch in them.
    """
    from hmlearn.training.checkpoint import save_checkpoint
    from hmlearn.training.fit import fit
    from hmlearn.training.state import data_fingerprint

    path = Path(path)
    state = Path(f"{path}.state") if save_every else None
    X, Y = source.train.X, source.train.Y
    X_valid, Y_valid = (source.valid.X, source.valid.Y) if source.valid is not None else (None, None)
    fingerprint = data_fingerprint(X, Y, source.hierarchy, X_valid, Y_valid)
    if resume and path.exists():
        epochs = finished_run(path, config, fingerprint)
        if state is not None:
            state.unlink(missing_ok=True)  # left by a stop between writing the checkpoint and deleting it
        return Trained(path, already_complete_epochs=epochs)
    if state is not None and state.exists() and not resume:
        raise HMLError(f"{state} holds an unfinished run; continue it with --resume, or delete it to start afresh")
    if path.exists() and not resume and not force:
        raise HMLError(f"{path} already exists; --force replaces it, --out writes another file")
    from hmlearn.training.config import config_summary

    log(f"training on {source.description}\nsettings (other than the defaults): {config_summary(config)}")
    if resume and state is not None and state.exists():
        log(f"resuming from {state}")
    started = time.perf_counter()
    model = fit(X, Y, source.hierarchy, config, X_valid, Y_valid, progress=progress, state_path=state, resume=resume,
                save_every=max(save_every, 1), log_every=log_every)
    seconds = time.perf_counter() - started
    save_checkpoint(model, path, {**source.metadata, "seconds": seconds, "data_sha256": fingerprint}, overwrite=force)
    if state is not None:
        state.unlink(missing_ok=True)
    metrics = None
    if source.test is not None:
        metrics = score(model, source.test.X, source.test.Y, source.hierarchy, train_Y=Y)
    return Trained(path, model, seconds, metrics)


def finished_run(path: str | Path, config: Any, fingerprint: str) -> int:
    """Epochs of the complete checkpoint at ``path``, which must hold this run (same config and data)."""
    from hmlearn.training.checkpoint import load_checkpoint
    from hmlearn.training.config import config_differences

    model, metadata = load_checkpoint(path)
    differences = config_differences(vars(model.config), config, ignore=("device", "threads"))
    if metadata.get("data_sha256") != fingerprint:
        differences.append("the training data or hierarchy")
    if differences:
        raise HMLError(f"{path} exists but holds another run ({'; '.join(differences)}); "
                       "delete it or choose another --out")
    return len(model.history)


def score(model: Any, X: np.ndarray, Y: np.ndarray, hierarchy: Hierarchy, train_Y: np.ndarray | None = None,
          threshold: float | None = None) -> dict:
    """The metrics of ``model`` on (X, Y): AU(PRC), binary AP, node-macro P / R / F1, rare-node recall, ...

    ``threshold``: default the model's decision thresholds (tuned, or 0.5).
    """
    from hmlearn.metrics import evaluate

    threshold = model.decision_thresholds if threshold is None else threshold
    return evaluate(Y, model.predict_proba(X), hierarchy, train_Y=train_Y, threshold=threshold)


# ---------------------------------------------------------------------------------- evaluate a checkpoint
@dataclass
class Evaluation:
    """A checkpoint scored on a dataset split: the data, its probabilities, metrics and training labels."""

    model: Any
    data: Any
    X: np.ndarray  # features as the heads see them (standardised / encoded)
    proba: np.ndarray
    metrics: dict
    train_Y: np.ndarray | None
    mc_samples: int = 0
    threshold: float | np.ndarray = 0.5  # what the metrics used: one value, or the model's (N,) thresholds


def evaluate_checkpoint(checkpoint: str | Path, reference: str, split: str = "test", data_dir: str | None = None,
                        images: str | None = None, labels_column: str = "labels", id_column: str | None = None,
                        mc_samples: int = 0, threshold: float | None = None, progress: bool = True,
                        device: str = "cpu") -> Evaluation:
    """Load ``checkpoint`` and score it on ``split`` of ``reference`` (read as training read it), at
    ``threshold`` (default: the model's decision thresholds, tuned or 0.5)."""
    from hmlearn.metrics import evaluate
    from hmlearn.training.checkpoint import load_checkpoint

    model, metadata = load_checkpoint(checkpoint, _device(device))
    data, X, train_Y = evaluation_split(reference, model, metadata, split, data_dir, images, labels_column, id_column,
                                       progress)
    if train_Y is None:  # a user's table or ARFF: the training positives the checkpoint kept
        train_Y = model.train_positives
    proba = model.predict_proba(X, mc_samples, standardized=True)
    threshold = model.decision_thresholds if threshold is None else threshold
    metrics = evaluate(data.Y, proba, model.hierarchy, train_Y=train_Y, threshold=threshold)
    return Evaluation(model, data, X, proba, metrics, train_Y, mc_samples, threshold)


def per_node_report(result: Evaluation, measure: str = "predictive"):
    """Per-node table (node, depth, positives, P, R, F1) with the mean ``measure`` uncertainty per node."""
    import torch

    from hmlearn.metrics import per_node_table
    from hmlearn.objectives.uncertainty import uncertainty

    model = result.model
    table = per_node_table(result.data.Y, result.proba, model.hierarchy, threshold=result.threshold,
                           train_Y=result.train_Y)
    members = model.member_probabilities(result.X, result.mc_samples, standardized=True)  # only the table needs them
    node_uncertainty = uncertainty(torch.from_numpy(members), measure).mean(dim=0).numpy()
    table[f"mean_uncertainty_{measure}"] = np.round(node_uncertainty[model.hierarchy.evaluated], 4)
    return table


def _device(name: str) -> str:
    """A device name as torch takes it: ``auto`` resolved, CUDA without a GPU refused in one line."""
    from hmlearn.training.model import resolve_device

    return str(resolve_device(name))


# ---------------------------------------------------------------------------------- a sweep cell
def run_cell(cell: Any) -> dict[str, Any]:
    """Train and evaluate one sweep cell in this process; returns its results-store row (never raises).

    The cell's dataset comes from :func:`hmlearn.data.sources.sweep_source` (cached per process), its
    config is the one the spec's expansion resolved (``cell.config``).
    """
    import torch

    started = time.perf_counter()
    row: dict[str, Any] = {"key": cell.key, "sweep": cell.sweep, "dataset": cell.dataset, "method": cell.method,
                           "seed": cell.seed, "config": cell.config}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cell.threads)  # prediction too: one thread count, one result
    try:
        from hmlearn.training.config import TrainConfig
        from hmlearn.training.fit import fit

        source = sweep_source(cell.location)
        with contextlib.suppress(ImportError):  # imported by torch in the first fit (1-2 s), which is no
            import torch._dynamo  # cell's own time
        started = time.perf_counter()  # seconds: training and evaluation, not loading the data
        config = TrainConfig(**{k: v for k, v in cell.config.items() if k != "preset"})
        model = fit(source.train.X, source.train.Y, source.hierarchy, config, progress=False)
        row.update(cell_results(source.test.Y, model.predict_proba(source.test.X), source.hierarchy, source.train.Y,
                                model.decision_thresholds))
        row["status"] = "ok"
    except Exception as error:  # noqa: BLE001 - a failed cell is a result; the sweep goes on
        row["status"], row["error"] = "failed", error_text(error)
    finally:
        torch.set_num_threads(previous_threads)
    row["seconds"] = time.perf_counter() - started
    row["versions"] = versions()
    row["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return row


def cell_results(Y: np.ndarray, proba: np.ndarray, hierarchy: Hierarchy, train_Y: np.ndarray,
                 threshold: float | np.ndarray = 0.5) -> dict[str, Any]:
    """A results-store row's metrics, per-node table and curves (precision-recall, recall by depth / frequency)."""
    from hmlearn.metrics import evaluate, per_node_table, recall_by_depth, recall_by_frequency

    return {
        "metrics": evaluate(Y, proba, hierarchy, train_Y=train_Y, threshold=threshold),
        "per_node": per_node_table(Y, proba, hierarchy, threshold=threshold, train_Y=train_Y).to_dict("records"),
        "curves": {
            "pr": pr_curve(Y, proba, hierarchy),
            "by_depth": recall_by_depth(Y, proba, hierarchy, threshold).reset_index().to_dict("records"),
            "by_frequency": recall_by_frequency(Y, proba, hierarchy, train_Y, threshold=threshold)
            .reset_index().to_dict("records"),
        },
    }


def pr_curve(Y: np.ndarray, P: np.ndarray, hierarchy: Hierarchy, points: int = PR_CURVE_POINTS) -> dict[str, list]:
    """Micro precision-recall curve of the coherent probabilities over the evaluated nodes, <= ``points`` points."""
    from sklearn.metrics import precision_recall_curve

    columns = hierarchy.evaluated
    truth, scores = Y[:, columns].ravel(), P[:, columns].ravel()
    if not truth.any():
        return {"precision": [], "recall": []}
    precision, recall, _ = precision_recall_curve(truth, scores)
    if len(precision) > points:
        keep = np.unique(np.round(np.linspace(0, len(precision) - 1, points)).astype(int))
        precision, recall = precision[keep], recall[keep]
    return {"precision": [float(v) for v in precision], "recall": [float(v) for v in recall]}


def versions() -> dict[str, str]:
    """Library versions stored with every result."""
    import numpy
    import torch

    import hmlearn

    return {"hmlearn": hmlearn.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def error_text(error: BaseException) -> str:
    """One line for a user-facing error; the traceback after it for anything unexpected."""
    line = f"{type(error).__name__}: {error}"
    if isinstance(error, (HMLError, FileNotFoundError)):
        return line
    return line + "\n\n" + "".join(traceback.format_exception(error)).rstrip()
