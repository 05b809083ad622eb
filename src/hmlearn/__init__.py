"""hmlearn: hierarchical multi-label learning that finds the rare, deep nodes of a hierarchy.

The public API; everything else is internal and may move. Names are imported on first use
(PEP 562), so ``import hmlearn`` and ``hmlearn --help`` do not import torch::

    from hmlearn import HMCClassifier, TrainConfig, fit, load_dataset, read_table, evaluate, Hierarchy, HMLError
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy

__version__ = "0.1.0"

_LAZY = {
    "HMCClassifier": "hmlearn.estimator",
    "TrainConfig": "hmlearn.training.config",
    "fit": "hmlearn.training.fit",
    "load_dataset": "hmlearn.data.store",
    "read_table": "hmlearn.data.table",
    "evaluate": "hmlearn.metrics",
}
__all__ = ["HMCClassifier", "HMLError", "Hierarchy", "TrainConfig", "evaluate", "fit", "load_dataset", "read_table",
           "__version__"]

if TYPE_CHECKING:
    from hmlearn.data.store import load_dataset
    from hmlearn.data.table import read_table
    from hmlearn.estimator import HMCClassifier
    from hmlearn.metrics import evaluate
    from hmlearn.training.config import TrainConfig
    from hmlearn.training.fit import fit


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hmlearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
