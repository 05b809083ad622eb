"""Checkpoints: weights, hierarchy, preprocessing and full config in one verifiable file.

Layout: a magic line, one JSON line (format version, payload size and SHA-256), then the
payload written by ``torch.save`` holding only tensors and strings. Loading checks the magic,
the version, the size (truncation) and the checksum (tampering) before it reads the payload
with ``torch.load(weights_only=True)``, so a checkpoint never executes code. Writing is atomic.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch

from hmlearn.data.preprocessing import Standardizer
from hmlearn.errors import HMLError
from hmlearn.fileio import atomic_write
from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.heads import HeadsMLP
from hmlearn.train import HMCModel, TrainConfig

MAGIC = b"HMLEARN-CHECKPOINT\n"
FORMAT_VERSION = 1


class CheckpointError(HMLError):
    """A checkpoint that is not one, is from a newer hmlearn, or is truncated or altered."""


def save_checkpoint(model: HMCModel, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path."""
    payload = {
        "state": {k: v.detach().cpu() for k, v in model.network.state_dict().items()},
        "standardizer": {k: torch.from_numpy(v) for k, v in model.standardizer.to_arrays().items()},
        "n_features": torch.tensor(model.standardizer.n_features),
        "hierarchy": json.dumps(model.hierarchy.to_dict()),
        "config": json.dumps(vars(model.config)),
        "history": json.dumps(model.history),
        "metadata": json.dumps(metadata or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    header = {"format": FORMAT_VERSION, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(MAGIC)
        handle.write(json.dumps(header).encode() + b"\n")
        handle.write(data)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[HMCModel, dict]:
    """Read a checkpoint back into an identical predictor; returns (model, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise CheckpointError(f"{path}: not an hmlearn checkpoint")
    header_end = raw.find(b"\n", len(MAGIC))
    try:
        header = json.loads(raw[len(MAGIC) : header_end])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: checkpoint header is corrupt") from None
    if header.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {header['format']} is newer than this hmlearn reads ({FORMAT_VERSION}); upgrade hmlearn"
        )
    data = raw[header_end + 1 :]
    if len(data) != header.get("size"):
        raise CheckpointError(f"{path}: checkpoint is truncated ({len(data)} of {header.get('size')} bytes)")
    if hashlib.sha256(data).hexdigest() != header.get("sha256"):
        raise CheckpointError(f"{path}: checkpoint checksum mismatch: the file was altered or corrupted")
    try:
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as error:  # weights_only refuses anything but tensors and plain data
        raise CheckpointError(f"{path}: checkpoint payload is unsafe or unreadable ({type(error).__name__})") from None
    config = TrainConfig(**json.loads(payload["config"]))
    config.device = device
    hierarchy = Hierarchy.from_dict(json.loads(payload["hierarchy"]))
    standardizer = Standardizer(**{k: v.numpy() for k, v in payload["standardizer"].items()})
    network = HeadsMLP(
        int(payload["n_features"]), len(hierarchy), config.hidden_dim, config.num_layers, config.dropout,
        config.activation, config.heads,
    )
    network.load_state_dict(payload["state"])
    network.to(device).eval()
    model = HMCModel(network, hierarchy, standardizer, config)
    model.history = json.loads(payload["history"])
    return model, json.loads(payload["metadata"])
