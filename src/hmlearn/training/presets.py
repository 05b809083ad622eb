"""Presets: how a dataset's published settings become a TrainConfig (METHOD.md section 10). Torch-free.

"paper" is exactly the published protocol. The other presets keep the network and change batch
size, learning rate and epochs, in three variants by output size and published learning rate,
all chosen by measurement (the reproduction and rare-node sweeps, configs/):
- "medium": batch 32 with a 4x learning rate for all the published epochs: within 0.01 of the
  paper protocol's AU(PRC) on every FUN dataset.
- "fast": batch 128 with a 10x learning rate, still all the published epochs: a third of the
  epochs (tried at batch 64 and 256) loses 0.01-0.08 AU(PRC) on cellcycle, eisen, seq and spo.
Large output layers (GO, ~4,100 nodes) keep improving with the number of updates, so they get
batch 16; datasets published with a small learning rate (1e-5, the "others") diverge at large
batches and get batch 16 for half their epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmlearn.errors import HMLError
from hmlearn.training.config import TrainConfig, with_rare_node_settings


@dataclass(frozen=True)
class Preset:
    """How a preset changes a dataset's published settings.

    ``lr_scale`` and ``epochs_scale`` multiply the published learning rate and epochs, so the
    "others" datasets (published lr 1e-5) scale from their own value.
    """

    batch_size: int | None = None
    lr_scale: float = 1.0
    epochs_scale: float = 1.0


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
PRESET_NAMES = tuple(PRESETS)
PRESET_HELP = ("paper: the dataset's published hyper-parameters; medium: batch 32, 4x lr; fast: batch 128, 10x lr "
               "(GO, both: batch 16, 5x lr; 'others': batch 16, 10x lr, half the epochs).")

IMAGE_SETTINGS = {"epochs": 20, "batch_size": 128, "lr": 1e-3, "encoder": "resnet50"}
"""The paper's image runs (METHOD.md section 11): the defaults of image training, where no dataset has
published settings."""


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
    return with_rare_node_settings(base.updated(**settings).updated(**overrides))
