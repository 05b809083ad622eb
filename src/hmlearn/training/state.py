"""Resuming: what a resumed run must match (config, data fingerprint) and putting a saved state back.

The state file itself is written and read by training/checkpoint.py (kind ``training-state``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.training.checkpoint import load_training_state
from hmlearn.training.config import RESUMABLE_CHANGES, TrainConfig, config_differences
from hmlearn.training.model import HMCModel, param_groups


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


def saved_state(path: str | Path, config: TrainConfig, fingerprint: str) -> dict | None:
    """The training state at ``path`` if there is one, checked against this run; None if there is none."""
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


def restore(state: dict, model: HMCModel, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> int:
    """Put a saved training state back into fit's objects; returns the number of completed epochs."""
    model.network.load_state_dict(state["state"])  # the encoder was restored when it was built
    optimizer.load_state_dict(state["optimizer"])
    for group, wanted in zip(optimizer.param_groups, param_groups(model, model.config)):
        group["lr"] = wanted["lr"]  # a resume may lower the learning rate
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and model.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], model.device)
    model.history = list(state["history"])
    return state["epoch"]
