"""Training and prediction, readable top to bottom.

``fit`` standardises the features (fitted on the training rows only), builds H C-HMCNN heads
and the max constraint module, and minimises the objective (mean MCLoss, optionally with
node weights and a focal weight: objectives/rare_node.py) with Adam. With a validation
split it keeps the epoch with the best validation AU(PRC) and stops after ``patience`` epochs
without improvement (for users' data); without one it trains for ``epochs`` and keeps the last
weights (the benchmark protocol: train on train + valid, evaluate on test).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from hmlearn.data.preprocessing import Standardizer
from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.constraint import MaxConstraint
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
    weight_side: str = "positive"  # which label side the rare-node table multiplies: "positive" or "published"
    descendant_counts: bool = True  # node counts summed over D(i), as the published code does
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
    threads: int | None = None  # torch CPU threads during training; None: 1 for batches <= 32, else torch's default

    def updated(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied; unknown names and ``None`` values are ignored."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if k in known and v is not None})


@dataclass(frozen=True)
class Preset:
    """How a preset changes a dataset's published settings (METHOD.md section 10).

    ``lr_scale`` and ``epochs_scale`` multiply the published learning rate and epochs, so the
    "others" datasets (published lr 1e-5) scale from their own value.
    """

    batch_size: int | None = None
    lr_scale: float = 1.0
    epochs_scale: float = 1.0


# "paper": exactly the published protocol. "fast": same network, larger batches and a scaled
# learning rate, in three variants chosen by bench/reproduce_chmcnn.py --preset fast (AU(PRC)
# within 0.01 of the published value): small output layers converge in a third of the epochs
# at batch 256 (FUN); large output layers (GO, ~4,100 nodes) keep improving with the number of
# updates, so they keep all their epochs at batch 16; datasets published with a small learning
# rate (1e-5, the "others") diverge at batch 256 and get batch 16 for half their epochs.
LARGE_OUTPUT = 1000
SMALL_LR = 1e-4
PRESETS: dict[str, dict[str, Preset]] = {
    "paper": {"default": Preset(), "large-output": Preset(), "small-lr": Preset()},
    "fast": {
        "default": Preset(batch_size=256, lr_scale=30.0, epochs_scale=0.3),
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
    """A trained predictor: standardizer + heads + max constraint, over one hierarchy."""

    def __init__(self, network: HeadsMLP, hierarchy: Hierarchy, standardizer: Standardizer, config: TrainConfig):
        self.network = network
        self.hierarchy = hierarchy
        self.standardizer = standardizer
        self.config = config
        self.constraint = MaxConstraint(hierarchy, config.mcm_method).to(next(network.parameters()).device)
        self.history: list[dict] = []

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.no_grad()
    def member_probabilities(self, X: np.ndarray, mc_samples: int = 0, batch_size: int = 4096,
                             standardized: bool = False) -> np.ndarray:
        """(M, S, N) sigmoid outputs of every ensemble member, before the MCM.

        Members are the H heads, or with ``mc_samples = T > 0`` the H x T passes with dropout
        kept on (MC-dropout: a cheap ensemble from one trained network).
        """
        features = X if standardized else self.standardizer.transform(X)
        passes = max(mc_samples, 1)
        self.network.train(mc_samples > 0)
        chunks = []
        for start in range(0, len(features), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(features[start : start + batch_size])).to(self.device)
            chunks.append(torch.cat([torch.sigmoid(self.network(x)) for _ in range(passes)]).cpu())
        self.network.eval()
        if not chunks:
            return np.empty((self.config.heads * passes, 0, len(self.hierarchy)), dtype=np.float32)
        return torch.cat(chunks, dim=1).numpy()

    def predict_proba(self, X: np.ndarray, mc_samples: int = 0, standardized: bool = False) -> np.ndarray:
        """(S, F) raw features -> (S, N) coherent probabilities: the mean over members of MCM(sigmoid)."""
        members = torch.from_numpy(self.member_probabilities(X, mc_samples, standardized=standardized))
        M, S, N = members.shape
        with torch.no_grad():
            coherent = self.constraint(members.to(self.device).reshape(M * S, N)).reshape(M, S, N)
        return coherent.mean(dim=0).cpu().numpy()

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
) -> HMCModel:
    """Train H C-HMCNN heads on (X, Y); Y is (S, N) bool aligned with ``hierarchy.nodes``."""
    _check_training_data(X, Y, hierarchy)
    device = resolve_device(config.device)
    previous_threads = torch.get_num_threads()
    threads = config.threads or (1 if config.batch_size <= 32 else previous_threads)
    torch.set_num_threads(threads)  # small batches: thread hand-offs cost more than they save
    try:
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        standardizer = Standardizer.fit(X)
        rows = _training_rows(Y, hierarchy, config)
        x_all = torch.from_numpy(standardizer.transform(X[rows])).to(device)
        y_all = torch.from_numpy(np.asarray(Y[rows], dtype=np.float32)).to(device)
        w_all = _sample_weights(Y[rows], hierarchy, config, device)
        network = HeadsMLP(
            X.shape[1], len(hierarchy), config.hidden_dim, config.num_layers, config.dropout,
            config.activation, config.heads,
        ).to(device)
        model = HMCModel(network, hierarchy, standardizer, config)
        objective = build_objective(config, model.constraint, Y, hierarchy)
        optimizer = _adam(network, config)
        validate = X_valid is not None and Y_valid is not None
        best = (-np.inf, None, 0)  # (score, state, epoch)
        bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            started = time.perf_counter()
            loss = _train_epoch(network, objective, optimizer, x_all, y_all, w_all, config.batch_size, generator, epoch)
            record = {"epoch": epoch + 1, "loss": loss, "seconds": time.perf_counter() - started}
            if validate:
                from hmlearn.metrics import au_prc

                record["valid_au_prc"] = au_prc(Y_valid, model.predict_proba(X_valid), hierarchy)
                if record["valid_au_prc"] > best[0]:
                    best = (record["valid_au_prc"], copy.deepcopy(network.state_dict()), epoch + 1)
                elif config.patience is not None and epoch + 1 - best[2] >= config.patience:
                    model.history.append(record)
                    break
            model.history.append(record)
            bar.set_postfix(loss=f"{loss:.4f}", **({"valid": f"{record['valid_au_prc']:.3f}"} if validate else {}))
        if validate and best[1] is not None:
            network.load_state_dict(best[1])
        network.eval()
        return model
    finally:
        torch.set_num_threads(previous_threads)


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
            raise HMLError(
                f"training diverged: loss is {loss.item()} at epoch {epoch + 1}, batch {steps + 1}; "
                "lower the learning rate or check the features for extreme values"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        steps += 1
    return float(total) / max(steps, 1)


def _adam(network: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, fused into one kernel where this torch supports it (about 3x faster steps at batch 4)."""
    try:
        return torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def _check_training_data(X: np.ndarray, Y: np.ndarray, hierarchy: Hierarchy) -> None:
    if X.ndim != 2 or Y.ndim != 2:
        raise HMLError(f"X must be (samples, features) and Y (samples, nodes); got {X.shape} and {Y.shape}")
    if len(X) == 0:
        raise HMLError("the training split is empty")
    if len(X) != len(Y):
        raise HMLError(f"X has {len(X)} rows but Y has {len(Y)}")
    if Y.shape[1] != len(hierarchy):
        raise HMLError(f"Y has {Y.shape[1]} columns but the hierarchy has {len(hierarchy)} nodes")
