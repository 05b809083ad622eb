"""Training and prediction, readable top to bottom.

``fit`` standardises the features (fitted on the training rows only), builds H C-HMCNN heads
and the max constraint module, and minimises the objective (mean MCLoss, optionally with
node weights and a focal weight: objectives/rare_node.py) with Adam. With a validation
split it keeps the epoch with the best validation AU(PRC) and stops after ``patience`` epochs
without improvement (for users' data); without one it trains for ``epochs`` and keeps the last
weights (the benchmark protocol: train on train + valid, evaluate on test). With a state file it
saves everything needed to continue after each epoch, and a resumed run ends bit-identical (on
the CPU) to one that was never interrupted.

Images (``config.encoder`` set, METHOD.md section 11): X is (S, 3, H, W) pixels and an image
encoder (nn/encoders.py) turns them into features for the same heads. Frozen (the default), the
images are encoded once in eval mode and training is exactly the tabular path on those features.
Fine-tuned, the encoder sits in the graph, in train mode (BatchNorm on batch statistics), and Adam
trains it too, at ``encoder_lr``; its features are standardised with the statistics of the initial
encoder's features as training sees them, batch statistics included (a random encoder's untrained
running statistics give features a hundred times smaller: standardised with those, the first
batches would saturate every sigmoid).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hmlearn.data.preprocessing import Standardizer
from hmlearn.errors import HMLError, TrainingDiverged, TrainingInterrupted
from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.constraint import MaxConstraint
from hmlearn.nn.encoders import ImageEncoder, build_encoder, check_images, encode_images, restore_encoder
from hmlearn.nn.heads import HeadsMLP
from hmlearn.objectives.rare_node import Objective
from hmlearn.objectives.weights import NodeWeights
from hmlearn.sampling import hierarchical_oversample, inverse_frequency_sample_weights
from hmlearn.training.checkpoint import save_training_state, training_state
from hmlearn.training.config import TrainConfig, with_rare_node_settings
from hmlearn.training.model import FineTuned, HMCModel, param_groups, resolve_device
from hmlearn.training.state import data_fingerprint, restore, saved_state


def fit(
    X: np.ndarray,
    Y: np.ndarray,
    hierarchy: Hierarchy,
    config: TrainConfig,
    X_valid: np.ndarray | None = None,
    Y_valid: np.ndarray | None = None,
    progress: bool = True,
    state_path: str | Path | None = None,
    resume: bool = False,
    save_every: int = 1,
    log_every: int = 1,
) -> HMCModel:
    """Train H C-HMCNN heads on (X, Y); Y is (S, N) bool aligned with ``hierarchy.nodes``.

    X is (S, F) features, or with ``config.encoder`` (S, 3, image_size, image_size) uint8 images
    (X_valid likewise); the returned model then predicts from images.

    With ``state_path`` the training state (weights, optimizer, random generators, history, best
    validation epoch, config, data fingerprint; checkpoint.training_state) is written there
    atomically after every ``save_every`` epochs and after the last one, and left there. With
    ``resume`` and a state file saved for the same data and config (only ``RESUMABLE_CHANGES`` may
    differ) training continues after its epoch: on the CPU the model is bit-identical to an
    uninterrupted run. Without ``resume`` an existing state file is replaced.

    ``progress``: a progress bar on a terminal; elsewhere (a log file, a pipe) one line per
    ``log_every`` epochs on stderr, with the loss and the validation AU(PRC).

    Ctrl-C saves the last completed epoch, if not yet saved, and raises TrainingInterrupted (a
    KeyboardInterrupt); a non-finite loss raises TrainingDiverged and leaves the state of the last
    completed epoch as it is, to resume from with a lower learning rate.
    """
    config = with_rare_node_settings(config).validate()
    _check_training_data(X, Y, hierarchy, config, X_valid)
    if save_every < 1:
        raise HMLError(f"save_every must be at least 1 epoch, got {save_every}")
    if config.train_fraction != 1.0:  # limited data: everything below sees only the kept rows
        from hmlearn.data.splitting import training_fraction

        kept = training_fraction(Y, hierarchy, config.train_fraction, config.seed)
        X, Y = X[kept], Y[kept]
    if log_every < 1:
        raise HMLError(f"log_every must be at least 1 epoch, got {log_every}")
    reporting = _Reporting(progress, log_every)
    if config.thresholds == "fixed":
        return _fit_model(X, Y, hierarchy, config, X_valid, Y_valid, reporting, state_path, resume, save_every)
    return _fit_with_thresholds(X, Y, hierarchy, config, X_valid, Y_valid, reporting, state_path, resume, save_every)


@dataclass(frozen=True)
class _Reporting:
    """How training shows progress: a bar on a terminal, one line per ``every`` epochs elsewhere."""

    progress: bool
    every: int = 1

    @property
    def bar(self) -> bool:
        return self.progress and sys.stderr.isatty()

    def __bool__(self) -> bool:  # where a plain "progress" flag is wanted (image encoding bars)
        return self.bar


def _fit_with_thresholds(X, Y, hierarchy: Hierarchy, config: TrainConfig, X_valid, Y_valid, progress: _Reporting,
                         state_path, resume: bool, save_every: int) -> HMCModel:
    """A model with decision thresholds tuned on the validation split, or, without one, on a stratified
    held-out part of the training rows (then, with ``threshold_refit``, trained again on every row)."""
    from hmlearn.training.thresholds import tune_thresholds

    if X_valid is not None and Y_valid is not None:
        model = _fit_model(X, Y, hierarchy, config, X_valid, Y_valid, progress, state_path, resume, save_every)
        model.thresholds = tune_thresholds(Y_valid, model.predict_proba(X_valid), hierarchy, Y, config.thresholds)
        return model
    from hmlearn.data.splitting import stratified_split

    kept, held = stratified_split(Y, hierarchy, config.threshold_holdout, seed=config.seed)
    first = _fit_model(X[kept], Y[kept], hierarchy, config, None, None, progress, None, False, save_every)
    thresholds = tune_thresholds(Y[held], first.predict_proba(X[held]), hierarchy, Y[kept], config.thresholds)
    model = first
    if config.threshold_refit:
        model = _fit_model(X, Y, hierarchy, config, None, None, progress, state_path, resume, save_every)
    model.thresholds = thresholds
    return model


def _fit_model(X, Y, hierarchy: Hierarchy, config: TrainConfig, X_valid, Y_valid, progress: _Reporting, state_path,
               resume: bool, save_every: int) -> HMCModel:
    """The training proper: resume checks, setup, epochs; torch's thread count restored afterwards."""
    saved, fingerprint = None, ""
    if state_path is not None:
        fingerprint = data_fingerprint(X, Y, hierarchy, X_valid, Y_valid)
        if resume:
            saved = saved_state(state_path, config, fingerprint)
        else:
            Path(state_path).unlink(missing_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or previous_threads)
    try:
        run = _setup(X, Y, hierarchy, config, X_valid, Y_valid, saved, progress)
        saver = _StateSaver(state_path, save_every, fingerprint, run.start)
        _train_epochs(run, saver, progress)
        return run.finish()
    finally:
        torch.set_num_threads(previous_threads)


@dataclass
class _Run:
    """Everything fit's epochs work on, built once by :func:`_setup`."""

    model: HMCModel
    trained: torch.nn.Module  # the heads, or encoder + heads when fine-tuning
    objective: Objective
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    x_all: torch.Tensor
    y_all: torch.Tensor
    w_all: torch.Tensor | None
    valid: tuple[np.ndarray, np.ndarray] | None  # (features the model predicts from, labels)
    best: tuple  # (validation score, trained state or None, epoch)
    start: int  # epochs completed before this call (a resumed run)

    def validate(self, record: dict, epoch: int) -> bool:
        """Scores the epoch on the validation split; True when patience has run out."""
        from hmlearn.metrics import au_prc

        features, labels = self.valid
        record["valid_au_prc"] = au_prc(labels, self.model.predict_proba(features), self.model.hierarchy)
        if record["valid_au_prc"] > self.best[0]:
            self.best = (record["valid_au_prc"], copy.deepcopy(self.trained.state_dict()), epoch + 1)
            return False
        patience = self.model.config.patience
        return patience is not None and epoch + 1 - self.best[2] >= patience

    def finish(self) -> HMCModel:
        """The best validation epoch's weights (or the last epoch's), in eval mode."""
        if self.valid is not None and self.best[1] is not None:
            self.trained.load_state_dict(self.best[1])
        self.trained.eval()
        return self.model


def _setup(X, Y, hierarchy: Hierarchy, config: TrainConfig, X_valid, Y_valid, saved: dict | None,
           progress: bool) -> _Run:
    """Encoder (images), standardizer, training tensors, heads, objective and Adam; a saved state restored."""
    device = resolve_device(config.device)
    # Images go through an encoder. Frozen, they are encoded once here and the rest is the tabular path.
    encoder = None if config.encoder is None else _image_encoder(config, saved).to(device)
    features, valid_features = X, X_valid  # what the heads train on and are validated with
    if encoder is not None and not config.fine_tune:
        features = encode_images(encoder, X, progress=progress)
        if X_valid is not None:
            valid_features = encode_images(encoder, X_valid, progress=progress, desc="encode valid")
    if config.threads is None and config.batch_size <= 32 and not config.fine_tune:
        torch.set_num_threads(1)  # small batches through the heads: thread hand-offs cost more than they save
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    standardizer = _standardizer(config, features, encoder, X, saved, progress)
    rows = _training_rows(Y, hierarchy, config)
    if config.fine_tune:  # the images themselves: the encoder is part of the graph
        x_all = torch.from_numpy(np.ascontiguousarray(X[rows])).to(device)
    else:
        x_all = torch.from_numpy(standardizer.transform(features[rows])).to(device)
    y_all = torch.from_numpy(np.asarray(Y[rows], dtype=np.float32)).to(device)
    network = HeadsMLP(
        standardizer.n_features, len(hierarchy), config.hidden_dim, config.num_layers, config.dropout,
        config.activation, config.heads,
    ).to(device)
    model = HMCModel(network, hierarchy, standardizer, config, encoder)
    model.train_positives = np.asarray(Y, dtype=bool).sum(axis=0).astype(np.int64)
    trained = FineTuned(encoder, standardizer, network).to(device) if config.fine_tune else network
    optimizer = adam(param_groups(model, config), config)
    valid = (valid_features, Y_valid) if X_valid is not None and Y_valid is not None else None
    run = _Run(model, trained, build_objective(config, model.constraint, Y, hierarchy), optimizer, generator,
               x_all, y_all, _sample_weights(Y[rows], hierarchy, config, device), valid, (-np.inf, None, 0), 0)
    if saved is not None:
        run.start = restore(saved, model, optimizer, generator)
        run.best = (saved["best_score"], saved["best_state"], saved["best_epoch"])
    return run


def _log_epoch(record: dict, epochs: int) -> None:
    """One plain line per logged epoch (no carriage returns: readable in a log file)."""
    valid = f", valid AU(PRC) {record['valid_au_prc']:.4f}" if "valid_au_prc" in record else ""
    print(f"epoch {record['epoch']}/{epochs}: loss {record['loss']:.4f}{valid} ({record['seconds']:.1f} s)",
          file=sys.stderr, flush=True)


def _standardizer(config: TrainConfig, features, encoder, X, saved: dict | None, progress: bool) -> Standardizer:
    """Fitted on the training features; when fine-tuning, on the initial encoder's (saved with the state)."""
    if not config.fine_tune:
        return Standardizer.fit(features)
    if saved is not None:  # fitted on the features of the encoder before it was trained
        return Standardizer(**{k: v.numpy() for k, v in saved["standardizer"].items()})
    return Standardizer.fit(encode_images(encoder, X, config.batch_size, progress, batch_statistics=True))


class _StateSaver:
    """Writes the training state every ``save_every`` epochs; on Ctrl-C or divergence, keeps the last
    completed epoch and says where it is."""

    def __init__(self, path: str | Path | None, save_every: int, fingerprint: str, start: int) -> None:
        self.path, self.save_every, self.fingerprint = path, save_every, fingerprint
        self.snapshot, self.saved_epoch = None, start  # the last completed epoch in memory, and on disk

    def after_epoch(self, run: _Run, epoch: int) -> None:
        if self.path is None:
            return
        self.snapshot = training_state(run.model, run.optimizer, run.generator, epoch + 1, run.best, self.fingerprint)
        if (epoch + 1) % self.save_every == 0 or epoch + 1 == run.model.config.epochs:
            save_training_state(self.snapshot, self.path)
            self.saved_epoch = epoch + 1

    def stopped(self, stop: BaseException, epochs: int) -> BaseException:
        """The exception to raise for ``stop`` (Ctrl-C or TrainingDiverged), the last completed epoch saved."""
        if self.snapshot is not None and self.snapshot["epoch"] > self.saved_epoch:  # completed, not yet on disk
            save_training_state(self.snapshot, self.path)
            self.saved_epoch = self.snapshot["epoch"]
        saved = self.saved_epoch
        kept = (f"the state after epoch {saved} is kept in {self.path}" if saved
                else "no epoch was completed, so nothing is saved")
        if isinstance(stop, TrainingDiverged):
            return TrainingDiverged(f"{stop}; {kept}" + (", to resume from with a lower learning rate" if saved else ""),
                                    stop.epoch, stop.batch, self.path, saved)
        running = min(saved + 1, epochs)  # the epoch after the last completed one
        return TrainingInterrupted(f"interrupted at epoch {running}; {kept}", running, self.path, saved)


def _train_epochs(run: _Run, saver: _StateSaver, progress: _Reporting) -> None:
    """Epochs from ``run.start`` to ``config.epochs``, with validation, early stopping and saved states."""
    config = run.model.config
    bar = tqdm(range(run.start, config.epochs), desc="train", unit="epoch", disable=not progress.bar, leave=False,
               initial=run.start, total=config.epochs)
    try:
        for epoch in bar:
            started = time.perf_counter()
            loss = train_epoch(run.trained, run.objective, run.optimizer, run.x_all, run.y_all, run.w_all,
                               config.batch_size, run.generator, epoch)
            record = {"epoch": epoch + 1, "loss": loss, "seconds": time.perf_counter() - started}
            if run.valid is not None and run.validate(record, epoch):
                run.model.history.append(record)
                break  # not saved: a resume repeats this epoch and stops here again
            run.model.history.append(record)
            saver.after_epoch(run, epoch)
            if progress.progress and not progress.bar and ((epoch + 1) % progress.every == 0
                                                          or epoch + 1 == config.epochs):
                _log_epoch(record, config.epochs)
            bar.set_postfix(loss=f"{loss:.4f}", **({"valid": f"{record['valid_au_prc']:.3f}"} if run.valid else {}))
    except (KeyboardInterrupt, TrainingDiverged) as stop:
        if saver.path is None:
            raise
        raise saver.stopped(stop, config.epochs) from None


def build_objective(config: TrainConfig, constraint: MaxConstraint, Y: np.ndarray, hierarchy: Hierarchy) -> Objective:
    """The loss the config asks for; node weights come from the training labels ``Y``."""
    weights = None
    if config.node_weights is not None:
        published = config.weight_table == "published"
        weights = NodeWeights.fit(Y, hierarchy, config.node_weights, config.omega,
                                  config.descendant_counts or published, config.negative_weights, config.weight_side,
                                  root_in_rescale=published)
    return Objective(
        constraint, config.objective, weights, config.focal, config.focal_k, config.focal_min, config.focal_gamma,
        config.scheduler, config.scheduler_power, config.mixed_lambda, config.loss_reduction,
    )


def _training_rows(Y: np.ndarray, hierarchy: Hierarchy, config: TrainConfig) -> np.ndarray:
    """All rows, or the rows of a hierarchically over-sampled set (baseline)."""
    if config.resample is None:
        return np.arange(len(Y))
    if config.resample != "hierarchical":
        raise HMLError(f"unknown resampling {config.resample!r}; choose 'hierarchical'")
    return hierarchical_oversample(Y, hierarchy, seed=config.seed)


def _sample_weights(Y: np.ndarray, hierarchy: Hierarchy, config: TrainConfig, device) -> torch.Tensor | None:
    if config.sample_weights is None:
        return None
    if config.sample_weights != "inverse-frequency":
        raise HMLError(f"unknown sample weights {config.sample_weights!r}; choose 'inverse-frequency'")
    return torch.from_numpy(inverse_frequency_sample_weights(Y, hierarchy).astype(np.float32)).to(device)


def train_epoch(
    network: HeadsMLP, objective: Objective, optimizer: torch.optim.Optimizer, x_all: torch.Tensor,
    y_all: torch.Tensor, w_all: torch.Tensor | None, batch_size: int, generator: torch.Generator, epoch: int = 0,
) -> float:
    """One pass over shuffled mini-batches; returns the mean training loss.

    A non-finite loss stops training before the step that would spread it into the weights.
    """
    network.train()
    order = torch.randperm(len(x_all), generator=generator).to(x_all.device)
    total = torch.zeros((), device=x_all.device)
    steps = 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        x, y = x_all.index_select(0, index), y_all.index_select(0, index)
        w = None if w_all is None else w_all.index_select(0, index)
        p = torch.sigmoid(network(x))  # (H, B, N)
        try:
            loss = objective(p, y, w, progress=start / len(order), step=steps)
        except RuntimeError:  # BCE refuses NaN probabilities before the loss can be NaN
            if bool(torch.isfinite(p).all()):
                raise
            loss = torch.tensor(float("nan"))
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, batch {steps + 1}; "
                "lower the learning rate or check the features for extreme values",
                epoch + 1, steps + 1,
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        steps += 1
    return float(total) / max(steps, 1)


def adam(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam (or AdamW: ``optimizer="adamw"``), fused into one kernel where this torch supports it (about
    3x faster steps at batch 4)."""
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    try:
        return kind(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return kind(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def _image_encoder(config: TrainConfig, saved: dict | None) -> ImageEncoder:
    """The encoder to train with: from its weights file, or as saved in the state being resumed (no file needed)."""
    if saved is None:
        return build_encoder(config.encoder, config.image_size, config.encoder_weights, config.encoder_alpha,
                             config.seed)
    return restore_encoder(config.encoder, config.image_size, saved["encoder"], config.seed)


def _check_training_data(X: np.ndarray, Y: np.ndarray, hierarchy: Hierarchy, config: TrainConfig,
                         X_valid: np.ndarray | None = None) -> None:
    if config.encoder is not None:
        check_images(X, config.image_size, "training images")
        if X_valid is not None:
            check_images(X_valid, config.image_size, "validation images")
    elif config.fine_tune or config.encoder_weights is not None or config.encoder_alpha:
        raise HMLError("fine_tune, encoder_weights and encoder_alpha apply to an image encoder; set encoder")
    elif X.ndim == 4:
        raise HMLError(f"X has shape {X.shape}: images need an image encoder (set encoder)")
    if (X.ndim != 2 and config.encoder is None) or Y.ndim != 2:
        raise HMLError(f"X must be (samples, features) and Y (samples, nodes); got {X.shape} and {Y.shape}")
    if len(X) == 0:
        raise HMLError("the training split is empty")
    if len(X) != len(Y):
        raise HMLError(f"X has {len(X)} rows but Y has {len(Y)}")
    if Y.shape[1] != len(hierarchy):
        raise HMLError(f"Y has {Y.shape[1]} columns but the hierarchy has {len(hierarchy)} nodes")
