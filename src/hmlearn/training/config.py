"""TrainConfig: every training option, declared once, with its type, default, range, choices and help.

The command line (cli.py), the sweep spec's validation (experiments/spec.py) and the estimator's
parameters (estimator.py) are all generated from these declarations, so an option added here is
everywhere at once, and ``--epochs 0`` is refused with the same words as ``epochs: 0`` in a spec.
Torch-free: ``hmlearn --help`` imports this module. The variant names below (activations,
uncertainty measures, ...) are spelled out; tests keep them equal to the torch-side registries.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from hmlearn.errors import HMLError

ACTIVATIONS = ("relu", "gelu", "tanh", "elu")  # nn/heads.py ACTIVATIONS
OBJECTIVES = ("mcloss", "bce")  # objectives/rare_node.py
SCHEDULERS = ("linear", "polynomial", "alternating")  # objectives/rare_node.py
UNCERTAINTY_MEASURES = ("mean", "predictive", "aleatoric", "epistemic", "epistemic_kl", "gated")  # uncertainty.py
THRESHOLD_MODES = ("fixed", "global", "depth", "frequency", "node")  # training/thresholds.py
MCM_METHODS = ("auto", "dense", "levels", "pairs")  # "auto" + nn/constraint.py METHODS
ENCODERS = ("small-cnn", "resnet18", "resnet50", "vit_b_16")  # nn/encoders.py ENCODERS
DEVICE_PATTERN = re.compile(r"cpu|auto|mps|cuda(:\d+)?")


class OptionError(HMLError):
    """A training option value that is of the wrong type, out of range or not one of its choices."""


@dataclass(frozen=True)
class Option:
    """How one TrainConfig field is checked and offered on the command line.

    ``low`` / ``high`` bound numbers (``*_open``: the bound itself is excluded); ``group`` is
    ``"image"`` for options only image training takes; ``flag`` / ``off_flag`` rename the CLI
    switch (``--alpha``; ``--plain-counts`` for a boolean's off side).
    """

    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    group: str = "training"
    flag: str | None = None
    off_flag: str | None = None


def option(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field carrying its :class:`Option` (help text, range, choices)."""
    return field(default=default, metadata={"option": Option(help, **checks)})


@dataclass
class TrainConfig:
    """Everything that determines a trained model, besides the data. Stored in checkpoints."""

    hidden_dim: int = option(500, "Width of the hidden layers.", low=1)
    num_layers: int = option(3, "Linear layers per head.", low=1)
    dropout: float = option(0.7, "Dropout rate.", low=0.0, high=1.0, high_open=True)
    activation: str = option("relu", "Hidden-layer activation.", choices=ACTIVATIONS)
    heads: int = option(1, "Ensemble members trained together, predicting the mean of their coherent outputs; "
                           "with several, --loss-reduction per-head gives each member one network's weight decay "
                           "(the better ensembles in docs/rare-nodes.md).", low=1)
    objective: str = option("mcloss", "mcloss (C-HMCNN) or bce (flat baseline: the hierarchy is ignored in training).",
                            choices=OBJECTIVES)
    node_weights: str | None = option(None, "Node-wise imbalance weights: rare nodes weigh more (METHOD.md 4).",
                                      choices=("class-wise", "binary"))
    omega: float = option(0.25, "Minimum node weight.", low=0.0, high=1.0)
    weight_side: str = option("published", "Label side the node weights multiply: published (y = 0 terms, as the "
                              "published code) or positive (y = 1).", choices=("published", "positive"))
    descendant_counts: bool = option(False, "Node counts summed over descendants, or plain (plain: matches the "
                                     "published code's figures).", off_flag="--plain-counts")
    negative_weights: bool = option(False, "Also weight the y = 0 terms from negative counts.")
    weight_table: str = option("hmlearn", "Node-weight table: hmlearn (counts of the training rows, evaluated nodes "
                               "rescaled) or published (descendant-summed counts, the root in the rescale).",
                               choices=("hmlearn", "published"))
    focal: str | None = option(None, "Focal weight from this ensemble uncertainty measure (METHOD.md 5).",
                               choices=UNCERTAINTY_MEASURES)
    focal_k: float = option(2.0, "Focal power k.", low=0.0)
    focal_min: float = option(0.25, "Focal floor gamma_min.", low=0.0, high=1.0)
    focal_gamma: float = option(0.0, "Baseline: standard focal loss gamma on the MCLoss terms (0: off).", low=0.0)
    scheduler: str | None = option(None, "Baseline: move node weights towards 1 within each epoch.",
                                   choices=SCHEDULERS)
    scheduler_power: float = option(2.0, "Power k of the polynomial scheduler.", low=0.0, low_open=True)
    mixed_lambda: float | None = option(None, "Baseline: lambda * weighted + (1 - lambda) * plain loss.",
                                        low=0.0, high=1.0)
    resample: str | None = option(None, "Baseline: over-sample minority label paths.", choices=("hierarchical",))
    sample_weights: str | None = option(None, "Baseline: observation-level inverse-frequency weights.",
                                        choices=("inverse-frequency",))
    lr: float = option(1e-4, "Adam learning rate.", low=0.0, low_open=True)
    weight_decay: float = option(1e-5, "Weight decay: coupled L2 with adam, decoupled with adamw.", low=0.0)
    optimizer: str = option("adam", "adam (weight decay as coupled L2, the published protocol) or adamw (decoupled "
                            "weight decay, unaffected by the loss scale).", choices=("adam", "adamw"))
    loss_reduction: str = option("mean", "Reduce the loss terms over heads, samples and nodes by their mean; by "
                                 "their sum, as the published focal code does (which weakens coupled weight decay "
                                 "about heads x batch x nodes times); or per-head: each head's mean, summed over the "
                                 "heads, so each head trains under the decay one network has (a mean over H heads "
                                 "makes it H times stronger).", choices=("mean", "sum", "per-head"))
    batch_size: int = option(4, "Samples per training step.", low=1)
    epochs: int = option(100, "Passes over the training data.", low=1)
    seed: int = option(0, "Random seed (weights, dropout, shuffling).", low=0)
    patience: int | None = option(None, "Early stopping: epochs without a better validation AU(PRC).", low=1)
    mcm_method: str = option("auto", "Max-constraint implementation (auto picks by hierarchy size).",
                             choices=MCM_METHODS)
    device: str = option("cpu", "cpu, cuda, cuda:1, mps or auto.")
    threads: int | None = option(None, "torch CPU threads (default: 1 for batches <= 32, else torch's).", low=1)
    encoder: str | None = option(None, "Image encoder feeding the heads (small-cnn: small, for CPUs and tests).",
                                 choices=ENCODERS, group="image")
    encoder_weights: str | None = option(None, "Local weights file for the encoder (torchvision .pth or "
                                         "hmlearn's); default: random initialisation.", group="image")
    encoder_alpha: float = option(0.0, "Suboptimal encoder: weights moved towards a random initialisation by alpha.",
                                  low=0.0, high=1.0, group="image", flag="--alpha")
    fine_tune: bool = option(False, "Train the encoder too (else frozen: images encoded once).", group="image",
                             off_flag="--frozen")
    image_size: int = option(224, "Images are resized and centre-cropped to this square size.", low=8, group="image")
    encoder_lr: float | None = option(None, "Fine-tuning learning rate of the encoder (default: lr).", low=0.0,
                                      low_open=True, group="image")
    thresholds: str = option("fixed", "Decision thresholds: fixed at 0.5, or tuned on a validation split for the "
                             "best node-macro F1: one global, per depth, per training-frequency bucket, or per node "
                             "(shrunk towards its bucket).", choices=THRESHOLD_MODES)
    threshold_holdout: float = option(0.2, "Tuned thresholds without a validation split: the fraction of the "
                                      "training rows (stratified) held out to tune them.", low=0.0, high=1.0,
                                      low_open=True, high_open=True)
    threshold_refit: bool = option(True, "After tuning thresholds on a held-out part, train again on every "
                                   "training row (else keep the model trained without it).", off_flag="--no-refit")
    rare_nodes: bool = option(False, "The configuration measured to find rare nodes (docs/rare-nodes.md): sets "
                              "each option of RARE_NODE_SETTINGS left at its default.")
    train_fraction: float = option(1.0, "Limited data: train on this fraction of the training rows, stratified on "
                                   "the hierarchy.", low=0.0, high=1.0, low_open=True)

    def updated(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied; unknown names and ``None`` values are ignored."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in changes.items() if k in known and v is not None})

    def validate(self) -> TrainConfig:
        """Every field checked against its declaration; OptionError naming the first bad one."""
        for name in OPTIONS:
            value = getattr(self, name)
            try:
                check_option(name, value)
            except OptionError as error:
                raise OptionError(f"{name}: {error}") from None
        return self


OPTIONS: dict[str, Option] = {f.name: f.metadata["option"] for f in fields(TrainConfig)}
"""Every training option in declaration order: name -> its Option."""


def option_type(name: str) -> tuple[type, bool]:
    """(base type, optional) of an option: ``float | None`` -> (float, True)."""
    kind = typing.get_type_hints(TrainConfig)[name]
    args = typing.get_args(kind)
    if not args:
        return kind, False
    return next(a for a in args if a is not type(None)), type(None) in args


def suggest(word: str, candidates: Any) -> str:
    """'; did you mean X?' for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def check_option(name: str, value: Any) -> Any:
    """``value`` checked against option ``name``'s type, range and choices; returns it normalised
    (an integral float as int, a number written as a string as float). OptionError otherwise."""
    base, optional = option_type(name)
    spec = OPTIONS[name]
    if value is None:
        if optional:
            return None
        raise OptionError("must not be null")
    if base is bool:
        if not isinstance(value, bool):
            raise OptionError(f"expected true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise OptionError(f"expected an integer, got {value!r}")
        value = int(value)
    elif base is float:
        value = _number(value)
    elif not isinstance(value, str):
        raise OptionError(f"expected a string, got {value!r}")
    elif spec.choices and value not in spec.choices:
        allowed = ", ".join(spec.choices) + (" or null" if optional else "")
        raise OptionError(f"{value!r} is not one of {allowed}{suggest(value, spec.choices)}")
    elif name == "device" and not DEVICE_PATTERN.fullmatch(value):
        raise OptionError(f"{value!r} is not a device; use cpu, cuda, cuda:N, mps or auto")
    else:
        return value
    _check_range(spec, value)
    return value


def _number(value: Any) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise OptionError(f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(f"expected a number, got {value!r}")
    return float(value)


def _check_range(spec: Option, value: float) -> None:
    low = -math.inf if spec.low is None else spec.low
    high = math.inf if spec.high is None else spec.high
    below = value < low or (value == low and spec.low_open)
    above = value > high or (value == high and spec.high_open)
    if below or above:
        low_in, high_in = not spec.low_open and spec.low is not None, not spec.high_open and spec.high is not None
        interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        raise OptionError(f"{value!r} is out of range {interval}")


IMAGE_FIELDS = tuple(name for name, spec in OPTIONS.items() if spec.group == "image")
"""The image fields of TrainConfig: at their defaults in every tabular run (and absent from configs saved
before them)."""
LATER_FIELDS = (*IMAGE_FIELDS, "train_fraction", "optimizer", "loss_reduction", "weight_table", "thresholds",
                "threshold_holdout", "threshold_refit", "rare_nodes")
"""Fields added after results were first stored: left out of :func:`config_record` at their defaults, so the
keys of cells stored before them (hashes of the config) stay the same."""


RARE_NODE_SETTINGS: dict[str, Any] = {"thresholds": "node"}
"""What ``rare_nodes=True`` sets, where the option is left at its default (docs/rare-nodes.md)."""


def with_rare_node_settings(config: TrainConfig) -> TrainConfig:
    """``config`` with RARE_NODE_SETTINGS applied to the options left at their defaults, if ``rare_nodes``."""
    if not config.rare_nodes:
        return config
    defaults = TrainConfig()
    return replace(config, **{name: value for name, value in RARE_NODE_SETTINGS.items()
                              if getattr(config, name) == getattr(defaults, name)})


def config_record(config: TrainConfig) -> dict:
    """The config as a plain dict for results and keys: every field, except, in a tabular config (no
    encoder), LATER_FIELDS at their defaults."""
    defaults = vars(TrainConfig())
    return {name: value for name, value in vars(config).items()
            if config.encoder is not None or name not in LATER_FIELDS or value != defaults[name]}


def config_summary(config: TrainConfig) -> str:
    """The settings that differ from TrainConfig's defaults, ``name=value`` joined by commas (one log line)."""
    defaults = TrainConfig()
    changed = [f"{name}={getattr(config, name)!r}" if isinstance(getattr(config, name), str)
               else f"{name}={getattr(config, name):g}" if isinstance(getattr(config, name), float)
               else f"{name}={getattr(config, name)}"
               for name in OPTIONS if getattr(config, name) != getattr(defaults, name)]
    return ", ".join(changed) or "all defaults"


RESUMABLE_CHANGES = ("epochs", "patience", "lr", "encoder_lr", "device", "threads")
"""Config fields a resumed run may change: more or fewer epochs, a lower learning rate (heads or
encoder) after a diverged loss, another device or thread count (learning rates, device and threads
end bit-identity with an uninterrupted run, not correctness)."""


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
