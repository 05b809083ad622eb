"""Checkpoints: weights, hierarchy, preprocessing and full config in one verifiable file.

Layout: a magic line, one JSON line (format version, kind, payload size and SHA-256), then the
payload written by ``torch.save`` holding only tensors, numbers and strings. Loading checks the
magic, the version, the kind, the size (truncation) and the checksum (tampering) before it reads
the payload with ``torch.load(weights_only=True)``, so a checkpoint never executes code. Writing
is atomic.

Two kinds share the format: ``"model"``, a trained predictor (``save_checkpoint``), and
``"training-state"``, everything ``fit`` needs to continue an unfinished run bit-identically
(``training_state``, ``save_training_state``, ``load_training_state``): the model's fields plus
the optimizer state, the random generators, the epoch, the best validation epoch and a
fingerprint of the data. Files without a kind (written before there were two) are models.

A model with an image encoder also holds the encoder's state dict (``"encoder"``); its
architecture comes from the config, so loading needs no weights file. Files written before
encoders (or before any other TrainConfig field) load with that field's default.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import fields
from pathlib import Path

import torch

from hmlearn.data.preprocessing import Standardizer
from hmlearn.errors import HMLError
from hmlearn.fileio import atomic_write
from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.encoders import restore_encoder
from hmlearn.nn.heads import HeadsMLP
from hmlearn.training.config import TrainConfig
from hmlearn.training.model import HMCModel

MAGIC = b"HMLEARN-CHECKPOINT\n"
FORMAT_VERSION = 1
MODEL, TRAINING_STATE = "model", "training-state"
NOUNS = {MODEL: "checkpoint", TRAINING_STATE: "training state"}


class CheckpointError(HMLError):
    """A checkpoint that is not one, is from a newer hmlearn, or is truncated or altered."""


def save_checkpoint(model: HMCModel, path: str | Path, metadata: dict | None = None, overwrite: bool = True) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path. ``overwrite=False``: CheckpointError if
    ``path`` exists when the file is complete (two runs racing for one name: one of them succeeds)."""
    payload = _model_payload(model)
    payload["metadata"] = json.dumps(metadata or {})
    try:
        return _write(path, payload, MODEL, overwrite)
    except FileExistsError:
        raise CheckpointError(f"{path} was written by another run meanwhile; it is kept, this model is not saved "
                              "(choose another --out)") from None


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[HMCModel, dict]:
    """Read a checkpoint back into an identical predictor; returns (model, metadata).

    The payload's structure is checked before anything is built (CheckpointError naming the file
    and the field otherwise): a checkpoint with a valid envelope but a wrong payload, or written
    by a newer hmlearn, is one clear error, and no tensor is allocated from sizes it merely claims.
    """
    payload = _read(path, MODEL, device)
    metadata = _json_field(path, payload, "metadata", dict, MODEL)
    return _model_from_payload(path, payload, device), metadata


def training_state(model: HMCModel, optimizer: torch.optim.Optimizer, generator: torch.Generator, epoch: int,
                   best: tuple, fingerprint: str) -> dict:
    """A snapshot (copied tensors) of everything needed to continue training after ``epoch`` epochs.

    ``best`` is fit's (validation score, network state or None, epoch); ``fingerprint`` is
    :func:`hmlearn.training.state.data_fingerprint` of the training data. Numpy's random generator is not
    part of it: training draws from torch's generators only (over-sampling seeds its own).
    """
    device = model.device
    payload = _model_payload(model, copy=True)
    payload.update(
        optimizer=_on_cpu(optimizer.state_dict(), copy=True),
        generator=generator.get_state(),  # the shuffling order
        torch_rng=torch.get_rng_state(),  # dropout on the CPU
        cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        epoch=int(epoch),
        best_score=float(best[0]),
        best_state=None if best[1] is None else _on_cpu(best[1], copy=False),  # fit never changes it in place
        best_epoch=int(best[2]),
        fingerprint=fingerprint,
    )
    return payload


def save_training_state(state: dict, path: str | Path) -> Path:
    """Write a :func:`training_state` snapshot to ``path`` atomically; returns the path."""
    return _write(path, state, TRAINING_STATE)


def load_training_state(path: str | Path) -> dict:
    """Read a training state back (verified like a checkpoint); config, hierarchy and history decoded."""
    state = _read(path, TRAINING_STATE, "cpu")
    for key in ("optimizer", "generator", "torch_rng", "epoch", "best_score", "best_epoch", "fingerprint"):
        if key not in state:
            raise CheckpointError(f"{path}: training state lacks {key!r}; it was not written by hmlearn, or is damaged")
    _model_from_payload(path, state, "cpu")  # the model part checked as a checkpoint's is
    state.update(config=json.loads(state["config"]), hierarchy=json.loads(state["hierarchy"]),
                 history=json.loads(state["history"]))
    return state


def _model_payload(model: HMCModel, copy: bool = False) -> dict:
    payload = {
        "state": _on_cpu(model.network.state_dict(), copy),
        "standardizer": {k: torch.from_numpy(v.copy() if copy else v) for k, v in model.standardizer.to_arrays().items()},
        "n_features": torch.tensor(model.standardizer.n_features),
        "hierarchy": json.dumps(model.hierarchy.to_dict()),
        "config": json.dumps(vars(model.config)),
        "history": json.dumps(model.history),
    }
    if model.encoder is not None:
        payload["encoder"] = _on_cpu(model.encoder.state_dict(), copy)
    if model.thresholds is not None:
        payload["thresholds"] = torch.tensor(model.thresholds, dtype=torch.float64)
    if model.train_positives is not None:
        payload["train_positives"] = torch.tensor(model.train_positives, dtype=torch.int64)
    return payload


def _on_cpu(value, copy: bool):
    """Tensors in nested dicts / lists / tuples moved to the CPU, and copied where ``copy``."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return value.to("cpu", copy=True) if copy else value.cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v, copy) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v, copy) for v in value)
    return value


def _write(path: str | Path, payload: dict, kind: str, overwrite: bool = True) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    header = {"format": FORMAT_VERSION, "kind": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "hmlearn": _version()}
    path = Path(path)
    with atomic_write(path, overwrite=overwrite) as handle:
        handle.write(MAGIC)
        handle.write(json.dumps(header).encode() + b"\n")
        handle.write(data)
    return path


def _read(path: str | Path, kind: str, device: str) -> dict:
    """The verified payload of a file of ``kind``; CheckpointError naming the file otherwise."""
    path, noun = Path(path), NOUNS[kind]
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {noun} file")
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise CheckpointError(f"{path}: not an hmlearn {noun}")
    header_end = raw.find(b"\n", len(MAGIC))
    try:
        header = json.loads(raw[len(MAGIC) : header_end]) if header_end > 0 else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or not _whole_number(header.get("format", 0)) \
            or not _whole_number(header.get("size")) or not isinstance(header.get("sha256"), str):
        raise CheckpointError(f"{path}: {noun} header is corrupt")
    if header.get("format", 0) > FORMAT_VERSION:
        written = f", written by hmlearn {header['hmlearn']}," if isinstance(header.get("hmlearn"), str) else ""
        raise CheckpointError(f"{path}: {noun} format {header['format']} is newer than this hmlearn "
                              f"({_version()}) reads ({FORMAT_VERSION}){written}; upgrade hmlearn")
    found = header.get("kind", MODEL)
    if found != kind:
        hint = "; finish the run with `hmlearn train ... --resume`" if found == TRAINING_STATE else ""
        raise CheckpointError(f"{path}: this is {_article(NOUNS.get(found, found))} file, not {_article(noun)}{hint}")
    data = raw[header_end + 1 :]
    if len(data) < header["size"]:
        raise CheckpointError(f"{path}: {noun} is truncated ({len(data)} of {header['size']} bytes)")
    if len(data) > header["size"]:
        raise CheckpointError(f"{path}: {noun} has {len(data) - header['size']} bytes after its end: the file was "
                              "altered or appended to")
    if hashlib.sha256(data).hexdigest() != header.get("sha256"):
        raise CheckpointError(f"{path}: {noun} checksum mismatch: the file was altered or corrupted")
    try:
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 -- weights_only refuses anything but tensors and plain data
        raise CheckpointError(f"{path}: {noun} payload is unsafe or unreadable ({type(error).__name__})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: {noun} payload is not a mapping; the file was not written by hmlearn")
    return payload


def _article(noun: str) -> str:
    return f"a {noun}" if noun[0] not in "aeiou" else f"an {noun}"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hmlearn")
    except PackageNotFoundError:
        return "unknown"


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_field(path: Path, payload: dict, key: str, kind: type, noun_kind: str = MODEL):
    """``payload[key]``: a JSON string decoding to ``kind``; CheckpointError naming the field otherwise."""
    noun = NOUNS[noun_kind]
    text = payload.get(key)
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: {noun} field {key!r} is missing or not a JSON {kind.__name__}; the file was "
                              "not written by hmlearn, or is damaged")
    return value


def _checked_config(path: Path, payload: dict) -> TrainConfig:
    """The payload's TrainConfig: every field known (else: written by a newer hmlearn) and valid."""
    raw = _json_field(path, payload, "config", dict)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise CheckpointError(f"{path}: checkpoint has settings this hmlearn ({_version()}) does not know "
                              f"({', '.join(unknown[:5])}): it was written by a newer hmlearn; upgrade hmlearn")
    try:
        return TrainConfig(**raw).validate()
    except HMLError as error:
        raise CheckpointError(f"{path}: checkpoint config {error}") from None
    except TypeError as error:
        raise CheckpointError(f"{path}: checkpoint config is invalid ({error})") from None


def _checked_state(path: Path, payload: dict, config: TrainConfig, n_outputs: int) -> tuple[dict, int]:
    """(network state dict, feature count), its tensors' shapes those of the network the config describes.

    The expected shapes are computed, not built, so a config claiming a huge hidden size is refused
    before anything is allocated.
    """
    state, n_features = payload.get("state"), payload.get("n_features")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: checkpoint field 'state' is missing or not a set of tensors")
    if not isinstance(n_features, torch.Tensor) or n_features.numel() != 1 or n_features.is_floating_point() \
            or int(n_features) < 1:
        raise CheckpointError(f"{path}: checkpoint field 'n_features' is missing or not a positive integer")
    expected = HeadsMLP.parameter_shapes(int(n_features), n_outputs, config.hidden_dim, config.num_layers,
                                         config.heads)
    if set(expected) != set(state):
        raise CheckpointError(f"{path}: checkpoint weights do not match its config (layers "
                              f"{sorted(set(expected) ^ set(state))[:4]} differ); the file is damaged")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise CheckpointError(f"{path}: checkpoint weights {key!r} have shape {tuple(state[key].shape)}, its config "
                                  f"says {shape}; the file is damaged")
    return state, int(n_features)


def _checked_standardizer(path: Path, payload: dict, n_features: int) -> Standardizer:
    arrays = payload.get("standardizer")
    names = ("fill", "center", "scale")
    if not isinstance(arrays, dict) or set(arrays) != set(names) or not all(
            isinstance(arrays[k], torch.Tensor) and tuple(arrays[k].shape) == (n_features,) for k in names):
        raise CheckpointError(f"{path}: checkpoint field 'standardizer' is missing or not {n_features} values each of "
                              f"{', '.join(names)}")
    return Standardizer(**{k: arrays[k].numpy() for k in names})


def _checked_hierarchy(path: Path, payload: dict) -> Hierarchy:
    data = _json_field(path, payload, "hierarchy", dict)
    try:
        return Hierarchy.from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: checkpoint field 'hierarchy' is not a hierarchy ({error})") from None


def _model_from_payload(path: Path | str, payload: dict, device: str) -> HMCModel:
    path = Path(path)
    config = _checked_config(path, payload)
    config.device = device
    hierarchy = _checked_hierarchy(path, payload)
    state, n_features = _checked_state(path, payload, config, len(hierarchy))
    standardizer = _checked_standardizer(path, payload, n_features)
    history = _json_field(path, payload, "history", list)
    if config.encoder is not None and not isinstance(payload.get("encoder"), dict):
        raise CheckpointError(f"{path}: checkpoint config names the encoder {config.encoder!r} but holds no encoder "
                              "weights; the file is damaged")
    thresholds, positives = payload.get("thresholds"), payload.get("train_positives")
    for name, value in (("thresholds", thresholds), ("train_positives", positives)):
        if value is not None and (not isinstance(value, torch.Tensor) or tuple(value.shape) != (len(hierarchy),)):
            raise CheckpointError(f"{path}: checkpoint field {name!r} is not one value per node")
    network = HeadsMLP(n_features, len(hierarchy), config.hidden_dim, config.num_layers, config.dropout,
                       config.activation, config.heads)
    network.load_state_dict(state)
    network.to(device).eval()
    encoder = None
    if config.encoder is not None:  # the architecture from the config, the weights from the file
        encoder = restore_encoder(config.encoder, config.image_size, payload["encoder"], config.seed)
        encoder.to(device).eval()
    model = HMCModel(network, hierarchy, standardizer, config, encoder)
    model.history = history
    if thresholds is not None:
        model.thresholds = thresholds.numpy()
    if positives is not None:
        model.train_positives = positives.numpy()
    return model
