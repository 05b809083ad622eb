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
import hashlib
import json
import time
from dataclasses import dataclass, fields, replace
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


@dataclass
class TrainConfig:
    """Everything that determines a trained model, besides the data. Stored in checkpoints."""

    hidden_dim: int = 500
    num_layers: int = 3
    dropout: float = 0.7
    activation: str = "relu"
    heads: int = 1
    objective: str = "mcloss"  # "mcloss" (C-HMCNN) or "bce" (flat baseline: hierarchy ignored in training)
    node_weights: str | None = None  # None, "class-wise" or "binary" (METHOD.md section 4)
    omega: float = 0.25  # minimum node weight
    weight_side: str = "published"  # label side the rare-node table multiplies: "published" (y = 0, as the
    # published code does; the better one in bench/rare_nodes.py) or "positive" (y = 1)
    descendant_counts: bool = False  # node counts summed over D(i) (METHOD.md's reading); plain counts match
    # the published code's measured figures (bench/rare_nodes.py)
    negative_weights: bool = False  # also weight y = 0 terms (same formula on negative counts); else 1
    focal: str | None = None  # uncertainty measure for the focal weight (METHOD.md section 5), or None
    focal_k: float = 2.0
    focal_min: float = 0.25
    focal_gamma: float = 0.0  # baseline: standard focal loss on the MCLoss terms (0 = off)
    scheduler: str | None = None  # baseline: "linear", "polynomial" or "alternating" node-weight schedule
    scheduler_power: float = 2.0
    mixed_lambda: float | None = None  # baseline: lambda * weighted + (1 - lambda) * plain loss
    resample: str | None = None  # baseline: "hierarchical" random over-sampling of minority label paths
    sample_weights: str | None = None  # baseline: "inverse-frequency" observation weights
    lr: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 4
    epochs: int = 100
    seed: int = 0
    patience: int | None = None  # early stopping on validation AU(PRC), when a validation split is given
    mcm_method: str = "auto"
    device: str = "cpu"
    threads: int | None = None  # torch CPU threads during training; None: 1 for batches <= 32 through the heads,
    # else (and while encoding or fine-tuning images) torch's default
    encoder: str | None = None  # images: an nn/encoders.py ENCODERS name; None: tabular features
    encoder_weights: str | None = None  # local weights file the encoder started from (provenance: the trained
    # encoder is in the checkpoint); None: random initialisation drawn with ``seed``
    encoder_alpha: float = 0.0  # suboptimal encoder: (1 - alpha) * weights + alpha * random init (drawn with seed)
    fine_tune: bool = False  # train the encoder too; False: frozen, images encoded once
    image_size: int = 224  # images are image_size x image_size pixels
    encoder_lr: float | None = None  # the encoder's learning rate when fine-tuning; None: lr
    train_fraction: float = 1.0  # limited-data runs: train on this fraction of the training rows, stratified on
    # the hierarchy (data/splitting.training_fraction, drawn with seed); node weights come from those rows

    def updated(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied; unknown names and ``None`` values are ignored."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if k in known and v is not None})


IMAGE_FIELDS = ("encoder", "encoder_weights", "encoder_alpha", "fine_tune", "image_size", "encoder_lr")
"""The image fields of TrainConfig: at their defaults in every tabular run (and absent from configs saved
before them)."""
IMAGE_SETTINGS = {"epochs": 20, "batch_size": 128, "lr": 1e-3}
"""The paper's image runs (METHOD.md section 11): the defaults of image training, where no dataset has
published settings."""
LATER_FIELDS = (*IMAGE_FIELDS, "train_fraction")
"""Fields added after results were first stored: left out of :func:`config_record` at their defaults, so the
keys of cells stored before them (hashes of the config) stay the same."""


def config_record(config: TrainConfig) -> dict:
    """The config as a plain dict for results and keys: every field, except, in a tabular config (no
    encoder), LATER_FIELDS at their defaults."""
    defaults = vars(TrainConfig())
    return {name: value for name, value in vars(config).items()
            if config.encoder is not None or name not in LATER_FIELDS or value != defaults[name]}


@dataclass(frozen=True)
class Preset:
    """How a preset changes a dataset's published settings (METHOD.md section 10).

    ``lr_scale`` and ``epochs_scale`` multiply the published learning rate and epochs, so the
    "others" datasets (published lr 1e-5) scale from their own value.
    """

    batch_size: int | None = None
    lr_scale: float = 1.0
    epochs_scale: float = 1.0


# "paper": exactly the published protocol. The other presets keep the network and change batch
# size, learning rate and epochs, in three variants by output size and published learning rate,
# all chosen by measurement (bench/reproduce_chmcnn.py, bench/rare_nodes.py):
# - "medium": batch 32 with a 4x learning rate for all the published epochs: within 0.01 of the
#   paper protocol's AU(PRC) on every FUN dataset (the protocol of bench/rare_nodes.py).
# - "fast": batch 128 with a 10x learning rate, still all the published epochs: a third of the
#   epochs (tried at batch 64 and 256) loses 0.01-0.08 AU(PRC) on cellcycle, eisen, seq and spo.
# Large output layers (GO, ~4,100 nodes) keep improving with the number of updates, so they get
# batch 16; datasets published with a small learning rate (1e-5, the "others") diverge at large
# batches and get batch 16 for half their epochs.
LARGE_OUTPUT = 1000
SMALL_LR = 1e-4
PRESETS: dict[str, dict[str, Preset]] = {
    "paper": {"default": Preset(), "large-output": Preset(), "small-lr": Preset()},
    "medium": {
        "default": Preset(batch_size=32, lr_scale=4.0),
        "large-output": Preset(batch_size=16, lr_scale=5.0),
        "small-lr": Preset(batch_size=16, lr_scale=10.0, epochs_scale=0.5),
    },
    "fast": {
        "default": Preset(batch_size=128, lr_scale=10.0),
        "large-output": Preset(batch_size=16, lr_scale=5.0, epochs_scale=1.0),
        "small-lr": Preset(batch_size=16, lr_scale=10.0, epochs_scale=0.5),
    },
}


def preset_config(published: dict, preset: str = "paper", n_outputs: int = 0, **overrides) -> TrainConfig:
    """A TrainConfig from a dataset's published settings, a preset, then explicit overrides.

    ``n_outputs`` (hierarchy size) and the published learning rate pick the preset's variant.
    """
    if preset not in PRESETS:
        raise HMLError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    base = TrainConfig().updated(**published)
    variant = "large-output" if n_outputs > LARGE_OUTPUT else ("small-lr" if base.lr < SMALL_LR else "default")
    change = PRESETS[preset][variant]
    settings = {
        "batch_size": change.batch_size or base.batch_size,
        "lr": base.lr * change.lr_scale,
        "epochs": max(1, int(round(base.epochs * change.epochs_scale))),
    }
    return base.updated(**settings).updated(**overrides)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HMLError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


class HMCModel:
    """A trained predictor: [image encoder] + standardizer + heads + max constraint, over one hierarchy."""

    def __init__(self, network: HeadsMLP, hierarchy: Hierarchy, standardizer: Standardizer, config: TrainConfig,
                 encoder: ImageEncoder | None = None):
        self.network = network
        self.hierarchy = hierarchy
        self.standardizer = standardizer
        self.config = config
        self.encoder = encoder
        self.constraint = MaxConstraint(hierarchy, config.mcm_method).to(next(network.parameters()).device)
        self.history: list[dict] = []

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def features(self, X: np.ndarray, standardized: bool = False) -> np.ndarray:
        """(S, F) standardised features of (S, F) raw features, or of (S, 3, H, W) images through the encoder."""
        if np.ndim(X) == 4:
            if self.encoder is None:
                raise HMLError(f"got images of shape {X.shape}, but this model has no image encoder: it takes "
                               f"(samples, {self.standardizer.n_features}) features")
            return self.standardizer.transform(encode_images(self.encoder, X))
        return X if standardized else self.standardizer.transform(X)

    def _member_batches(self, X: np.ndarray, mc_samples: int, standardized: bool, batch_size: int):
        """(start row, (M, B, N) sigmoid outputs on the model's device) per batch of rows; see member_probabilities."""
        features = self.features(X, standardized)
        passes = max(mc_samples, 1)
        self.network.train(mc_samples > 0)
        try:
            for start in range(0, len(features), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size])).to(self.device)
                yield start, torch.cat([torch.sigmoid(self.network(x)) for _ in range(passes)])
        finally:
            self.network.eval()

    @torch.no_grad()
    def member_probabilities(self, X: np.ndarray, mc_samples: int = 0, batch_size: int = 4096,
                             standardized: bool = False) -> np.ndarray:
        """(M, S, N) sigmoid outputs of every ensemble member, before the MCM.

        Members are the H heads, or with ``mc_samples = T > 0`` the H x T passes with dropout
        kept on (MC-dropout: a cheap ensemble from one trained network; the encoder stays in eval
        mode). ``X``: (S, F) raw features (standardised ones with ``standardized``), or for a model
        with an encoder (S, 3, H, W) images, or the encoder's (S, D) raw features.
        """
        chunks = [members.cpu() for _, members in self._member_batches(X, mc_samples, standardized, batch_size)]
        if not chunks:
            return np.empty((self.config.heads * max(mc_samples, 1), 0, len(self.hierarchy)), dtype=np.float32)
        return torch.cat(chunks, dim=1).numpy()

    @torch.no_grad()
    def predict_proba(self, X: np.ndarray, mc_samples: int = 0, standardized: bool = False,
                      batch_size: int = 4096) -> np.ndarray:
        """(S, F) raw features or (S, 3, H, W) images -> (S, N) coherent probabilities: the mean over
        members of MCM(sigmoid).

        Chunk by chunk on the model's device: the members never leave it (on CUDA no (M, S, N)
        round trip through host memory), and one head skips the mean's copy. The MCM works row
        by row, so the result is the same, bit for bit, as on the whole (M, S, N) at once.
        """
        out = np.empty((len(X), len(self.hierarchy)), dtype=np.float32)
        for start, members in self._member_batches(X, mc_samples, standardized, batch_size):
            coherent = self.constraint(members)
            mean = coherent[0] if len(coherent) == 1 else coherent.mean(dim=0)
            out[start : start + mean.shape[0]] = mean.cpu().numpy()
        return out

    def predict(self, X: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """(S, N) bool: coherent probabilities >= threshold (closed upwards by construction)."""
        return self.predict_proba(X) >= threshold


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

    Ctrl-C saves the last completed epoch, if not yet saved, and raises TrainingInterrupted (a
    KeyboardInterrupt); a non-finite loss raises TrainingDiverged and leaves the state of the last
    completed epoch as it is, to resume from with a lower learning rate.
    """
    _check_training_data(X, Y, hierarchy, config, X_valid)
    if save_every < 1:
        raise HMLError(f"save_every must be at least 1 epoch, got {save_every}")
    if config.train_fraction != 1.0:  # limited data: everything below sees only the kept rows
        from hmlearn.data.splitting import training_fraction

        kept = training_fraction(Y, hierarchy, config.train_fraction, config.seed)
        X, Y = X[kept], Y[kept]
    saved, fingerprint = None, ""
    if state_path is not None:
        fingerprint = data_fingerprint(X, Y, hierarchy, X_valid, Y_valid)
        if resume:
            saved = _saved_state(state_path, config, fingerprint)
        else:
            Path(state_path).unlink(missing_ok=True)
    device = resolve_device(config.device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or previous_threads)
    try:
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
        if not config.fine_tune:
            standardizer = Standardizer.fit(features)
        elif saved is not None:  # fitted on the features of the encoder before it was trained
            standardizer = Standardizer(**{k: v.numpy() for k, v in saved["standardizer"].items()})
        else:
            standardizer = Standardizer.fit(encode_images(encoder, X, config.batch_size, progress,
                                                          batch_statistics=True))
        rows = _training_rows(Y, hierarchy, config)
        if config.fine_tune:  # the images themselves: the encoder is part of the graph
            x_all = torch.from_numpy(np.ascontiguousarray(X[rows])).to(device)
        else:
            x_all = torch.from_numpy(standardizer.transform(features[rows])).to(device)
        y_all = torch.from_numpy(np.asarray(Y[rows], dtype=np.float32)).to(device)
        w_all = _sample_weights(Y[rows], hierarchy, config, device)
        network = HeadsMLP(
            standardizer.n_features, len(hierarchy), config.hidden_dim, config.num_layers, config.dropout,
            config.activation, config.heads,
        ).to(device)
        model = HMCModel(network, hierarchy, standardizer, config, encoder)
        trained = FineTuned(encoder, standardizer, network).to(device) if config.fine_tune else network
        objective = build_objective(config, model.constraint, Y, hierarchy)
        optimizer = _adam(_param_groups(model, config), config)
        validate = X_valid is not None and Y_valid is not None
        best = (-np.inf, None, 0)  # (score, state, epoch)
        start = 0 if saved is None else _restore(saved, model, optimizer, generator)
        if saved is not None:
            best = (saved["best_score"], saved["best_state"], saved["best_epoch"])
        snapshot, saved_epoch = None, start  # the last completed epoch in memory, and on disk
        bar = tqdm(range(start, config.epochs), desc="train", unit="epoch", disable=not progress, leave=False,
                   initial=start, total=config.epochs)
        try:
            for epoch in bar:
                started = time.perf_counter()
                loss = _train_epoch(trained, objective, optimizer, x_all, y_all, w_all, config.batch_size, generator,
                                    epoch)
                record = {"epoch": epoch + 1, "loss": loss, "seconds": time.perf_counter() - started}
                if validate:
                    from hmlearn.metrics import au_prc

                    record["valid_au_prc"] = au_prc(Y_valid, model.predict_proba(valid_features), hierarchy)
                    if record["valid_au_prc"] > best[0]:
                        best = (record["valid_au_prc"], copy.deepcopy(trained.state_dict()), epoch + 1)
                    elif config.patience is not None and epoch + 1 - best[2] >= config.patience:
                        model.history.append(record)
                        break  # not saved: a resume repeats this epoch and stops here again
                model.history.append(record)
                if state_path is not None:
                    from hmlearn.checkpoint import save_training_state, training_state

                    snapshot = training_state(model, optimizer, generator, epoch + 1, best, fingerprint)
                    if (epoch + 1) % save_every == 0 or epoch + 1 == config.epochs:
                        save_training_state(snapshot, state_path)
                        saved_epoch = epoch + 1
                bar.set_postfix(loss=f"{loss:.4f}", **({"valid": f"{record['valid_au_prc']:.3f}"} if validate else {}))
        except (KeyboardInterrupt, TrainingDiverged) as stop:
            if state_path is None:
                raise
            if snapshot is not None and snapshot["epoch"] > saved_epoch:  # completed, not yet on disk
                from hmlearn.checkpoint import save_training_state

                save_training_state(snapshot, state_path)
                saved_epoch = snapshot["epoch"]
            kept = (f"the state after epoch {saved_epoch} is kept in {state_path}" if saved_epoch
                    else "no epoch was completed, so nothing is saved")
            if isinstance(stop, TrainingDiverged):
                raise TrainingDiverged(
                    f"{stop}; {kept}" + (", to resume from with a lower learning rate" if saved_epoch else ""),
                    stop.epoch, stop.batch, state_path, saved_epoch,
                ) from None
            running = min(saved_epoch + 1, config.epochs)  # the epoch after the last completed one
            raise TrainingInterrupted(f"interrupted at epoch {running}; {kept}", running, state_path,
                                      saved_epoch) from None
        if validate and best[1] is not None:
            trained.load_state_dict(best[1])
        trained.eval()
        return model
    finally:
        torch.set_num_threads(previous_threads)


RESUMABLE_CHANGES = ("epochs", "patience", "lr", "encoder_lr", "device", "threads")
"""Config fields a resumed run may change: more or fewer epochs, a lower learning rate (heads or
encoder) after a diverged loss, another device or thread count (learning rates, device and threads
end bit-identity with an uninterrupted run, not correctness)."""


def data_fingerprint(X: np.ndarray, Y: np.ndarray, hierarchy: Hierarchy, X_valid: np.ndarray | None = None,
                     Y_valid: np.ndarray | None = None) -> str:
    """SHA-256 of the hierarchy and the training (and validation) arrays: what a resumed run must see again."""
    digest = hashlib.sha256(json.dumps(hierarchy.to_dict(), sort_keys=True).encode())
    for array in (X, Y, X_valid, Y_valid):
        if array is None:
            digest.update(b"none;")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def config_differences(saved: dict, config: TrainConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """'name: saved X, now Y' for each field of ``config`` that differs from ``saved`` (a config as a dict).

    A field ``saved`` lacks (written before the field existed) counts as its default.
    """
    defaults = vars(TrainConfig())
    return [
        f"{name}: saved {saved.get(name, defaults[name])!r}, now {value!r}"
        for name, value in vars(config).items()
        if name not in ignore and saved.get(name, defaults[name]) != value
    ]


def _saved_state(path: str | Path, config: TrainConfig, fingerprint: str) -> dict | None:
    """The training state at ``path`` if there is one, checked against this run; None if there is none."""
    from hmlearn.checkpoint import load_training_state

    if not Path(path).exists():
        return None
    state = load_training_state(path)
    differences = config_differences(state["config"], config, ignore=RESUMABLE_CHANGES)
    if differences:
        raise HMLError(f"{path}: cannot resume, the run was saved with other settings ({'; '.join(differences)}); "
                       "use the saved settings, or delete the file to start afresh")
    if state["fingerprint"] != fingerprint:
        raise HMLError(f"{path}: cannot resume, the run was saved for other training data or hierarchy; "
                       "delete the file to start afresh")
    if state["epoch"] > config.epochs:
        raise HMLError(f"{path}: cannot resume, {state['epoch']} epochs are saved, more than epochs={config.epochs}")
    return state


def _restore(state: dict, model: HMCModel, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> int:
    """Put a saved training state back into fit's objects; returns the number of completed epochs."""
    model.network.load_state_dict(state["state"])  # the encoder was restored when it was built
    optimizer.load_state_dict(state["optimizer"])
    for group, wanted in zip(optimizer.param_groups, _param_groups(model, model.config)):
        group["lr"] = wanted["lr"]  # a resume may lower the learning rate
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and model.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], model.device)
    model.history = list(state["history"])
    return state["epoch"]


def build_objective(config: TrainConfig, constraint: MaxConstraint, Y: np.ndarray, hierarchy: Hierarchy) -> Objective:
    """The loss the config asks for; node weights come from the training labels ``Y``."""
    weights = None
    if config.node_weights is not None:
        weights = NodeWeights.fit(Y, hierarchy, config.node_weights, config.omega, config.descendant_counts,
                                  config.negative_weights, config.weight_side)
    return Objective(
        constraint, config.objective, weights, config.focal, config.focal_k, config.focal_min, config.focal_gamma,
        config.scheduler, config.scheduler_power, config.mixed_lambda,
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


def _train_epoch(
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


def _param_groups(model: HMCModel, config: TrainConfig) -> list[dict]:
    """What Adam trains: the heads at ``lr``, and a fine-tuned encoder at ``encoder_lr`` (default ``lr``)."""
    groups = [{"params": list(model.network.parameters()), "lr": config.lr}]
    if config.fine_tune:
        groups.append({"params": list(model.encoder.parameters()), "lr": config.lr if config.encoder_lr is None else config.encoder_lr})
    return groups


def _adam(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch supports it (about 3x faster steps at batch 4)."""
    try:
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


class FineTuned(torch.nn.Module):
    """(B, 3, H, W) images -> encoder -> standardise -> heads -> (H, B, N) logits: what fine-tuning trains.

    The standardisation is the Standardizer's (fitted on the initial features; finite features
    need no imputation) as torch ops, so gradients reach the encoder.
    """

    def __init__(self, encoder: ImageEncoder, standardizer: Standardizer, heads: HeadsMLP) -> None:
        super().__init__()
        self.encoder, self.heads = encoder, heads
        self.register_buffer("center", torch.tensor(standardizer.center, dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.tensor(standardizer.scale, dtype=torch.float32), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads((self.encoder(images) - self.center) / self.scale)


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
