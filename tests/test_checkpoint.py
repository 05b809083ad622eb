from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from hmlearn.data.synthetic import make_hmc_data
from hmlearn.training.checkpoint import MAGIC, CheckpointError, load_checkpoint, load_training_state, save_checkpoint
from hmlearn.training.config import TrainConfig
from hmlearn.training.fit import fit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = make_hmc_data(n_samples=200, n_features=6, n_nodes=20, seed=2)
    data.X[0, 0] = np.nan
    model = fit(data.X, data.Y, data.hierarchy, TrainConfig(hidden_dim=16, epochs=2, batch_size=32, heads=2), progress=False)
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "model.ckpt", {"dataset": "synthetic"})
    return model, path, data


def test_reloaded_checkpoint_predicts_bit_identical(trained):
    model, path, data = trained
    again, metadata = load_checkpoint(path)
    assert np.array_equal(model.predict_proba(data.X), again.predict_proba(data.X))
    assert again.hierarchy == model.hierarchy and vars(again.config) == vars(model.config)
    assert metadata == {"dataset": "synthetic"} and again.history == model.history
    assert [p.name for p in path.parent.iterdir()] == ["model.ckpt"]  # nothing half-written left


def test_truncated_checkpoint_is_refused(trained, tmp_path):
    _, path, _ = trained
    broken = tmp_path / "cut.ckpt"
    broken.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(broken)


def test_tampered_checkpoint_is_refused(trained, tmp_path):
    _, path, _ = trained
    raw = bytearray(path.read_bytes())
    raw[-50] ^= 0xFF
    tampered = tmp_path / "tampered.ckpt"
    tampered.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(tampered)


def test_newer_format_and_foreign_files_are_refused(trained, tmp_path):
    _, path, _ = trained
    raw = path.read_bytes()
    end = raw.index(b"\n", len(MAGIC))
    header = json.loads(raw[len(MAGIC):end])
    header["format"] = 99
    newer = tmp_path / "newer.ckpt"
    newer.write_bytes(MAGIC + json.dumps(header).encode() + raw[end:])
    with pytest.raises(CheckpointError, match="format 99 is newer"):
        load_checkpoint(newer)
    foreign = tmp_path / "foreign.ckpt"
    foreign.write_bytes(b"PK\x03\x04 something else")
    with pytest.raises(CheckpointError, match="not an hmlearn checkpoint"):
        load_checkpoint(foreign)


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_with_pickled_code_is_refused_even_with_a_valid_checksum(tmp_path):
    import hashlib

    buffer = io.BytesIO()
    torch.save({"state": Exploit()}, buffer)
    data = buffer.getvalue()
    header = {"format": 1, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + data)
    with pytest.raises(CheckpointError, match="unsafe or unreadable"):
        load_checkpoint(evil)


def test_training_state_is_verified_like_a_checkpoint_and_is_not_one(trained, tmp_path):
    import hashlib

    _, path, data = trained
    state = tmp_path / "run.state"
    fit(data.X, data.Y, data.hierarchy, TrainConfig(hidden_dim=8, epochs=1, batch_size=64), progress=False,
        state_path=state)
    saved = load_training_state(state)
    assert saved["epoch"] == 1 and saved["config"]["hidden_dim"] == 8 and len(saved["history"]) == 1
    assert saved["hierarchy"] == data.hierarchy.to_dict() and set(saved["optimizer"]) == {"state", "param_groups"}
    with pytest.raises(CheckpointError, match="this is a training state file, not a checkpoint; finish the run"):
        load_checkpoint(state)
    with pytest.raises(CheckpointError, match="this is a checkpoint file, not a training state"):
        load_training_state(path)
    raw = state.read_bytes()
    (tmp_path / "cut.state").write_bytes(raw[:-10])
    with pytest.raises(CheckpointError, match="cut.state: training state is truncated"):
        load_training_state(tmp_path / "cut.state")
    tampered = bytearray(raw)
    tampered[-50] ^= 0xFF
    (tmp_path / "tampered.state").write_bytes(bytes(tampered))
    with pytest.raises(CheckpointError, match="training state checksum mismatch"):
        load_training_state(tmp_path / "tampered.state")
    buffer = io.BytesIO()
    torch.save({"optimizer": Exploit()}, buffer)
    evil = buffer.getvalue()
    header = {"format": 1, "kind": "training-state", "size": len(evil), "sha256": hashlib.sha256(evil).hexdigest()}
    (tmp_path / "evil.state").write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + evil)
    with pytest.raises(CheckpointError, match="training state payload is unsafe or unreadable"):
        load_training_state(tmp_path / "evil.state")


def _envelope(payload: dict, header_changes: dict | None = None) -> bytes:
    """A checkpoint file around ``payload``: valid magic, header, size and checksum."""
    import hashlib

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    header = {"format": 1, "kind": "model", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              **(header_changes or {})}
    return MAGIC + json.dumps(header).encode() + b"\n" + data


def _payload(path) -> dict:
    raw = path.read_bytes()
    end = raw.index(b"\n", len(MAGIC))
    return torch.load(io.BytesIO(raw[end + 1:]), weights_only=True)


def _config_changed(payload: dict, **changes) -> dict:
    return {**payload, "config": json.dumps({**json.loads(payload["config"]), **changes})}


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda p: {k: v for k, v in p.items() if k != "config"}, "field 'config' is missing"),
    (lambda p: {**p, "config": "{not json"}, "field 'config' is missing or not a JSON dict"),
    (lambda p: _config_changed(p, layer_norm=True), "settings this hmlearn .* does not know \\(layer_norm\\).*newer"),
    (lambda p: _config_changed(p, hidden_dim=2_000_000_000), "weights 'layers.0.weight' have shape"),
    (lambda p: _config_changed(p, dropout=1.5), "config dropout: 1.5 is out of range"),
    (lambda p: _config_changed(p, encoder="small-cnn"), "names the encoder 'small-cnn' but holds no encoder weights"),
    (lambda p: {**p, "n_features": torch.tensor(7)}, "weights 'layers.0.weight' have shape"),
    (lambda p: {**p, "n_features": torch.tensor(0.5)}, "'n_features' is missing or not a positive integer"),
    (lambda p: {**p, "history": "{}"}, "field 'history' is missing or not a JSON list"),
    (lambda p: {**p, "standardizer": {}}, "field 'standardizer'"),
    (lambda p: {**p, "hierarchy": json.dumps({"nodes": ["a"]})}, "'hierarchy' is not a hierarchy"),
    (lambda p: {**p, "state": {"x": torch.zeros(1)}}, "weights do not match its config"),
    (lambda p: [1, 2], "payload is not a mapping"),
])
def test_a_valid_envelope_with_a_wrong_payload_is_one_clear_error(trained, tmp_path, mutate, words):
    _, path, _ = trained
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(_envelope(mutate(_payload(path))))
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(bad)


@pytest.mark.parametrize("header", [{"format": "2"}, {"size": "12"}, {"format": 1.5}, {"sha256": 3}])
def test_a_malformed_header_is_corrupt_not_a_traceback(trained, tmp_path, header):
    _, path, _ = trained
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(_envelope(_payload(path), header))
    with pytest.raises(CheckpointError, match="header is corrupt"):
        load_checkpoint(bad)


def test_bytes_appended_are_not_called_truncation(trained, tmp_path):
    _, path, _ = trained
    longer = tmp_path / "longer.ckpt"
    longer.write_bytes(path.read_bytes() + b"extra!!")
    with pytest.raises(CheckpointError, match="has 7 bytes after its end"):
        load_checkpoint(longer)
