"""Training on images: frozen encoders equal tabular training on their features, fine-tuning trains
the encoder, checkpoints and resumed runs reproduce predictions exactly, and a small CNN learns
stripes from dots."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from hmlearn.errors import HMLError, TrainingInterrupted
from hmlearn.hierarchy import Hierarchy
from hmlearn.metrics import au_prc, is_coherent
from hmlearn.nn.encoders import build_encoder, encode_images, save_encoder_weights
from hmlearn.objectives.rare_node import Objective
from hmlearn.training import checkpoint
from hmlearn.training.checkpoint import load_checkpoint, load_training_state, save_checkpoint
from hmlearn.training.config import IMAGE_FIELDS, TrainConfig, config_differences
from hmlearn.training.fit import fit

LEAVES = ("stripes/horizontal", "stripes/vertical", "dots")
IMAGES = TrainConfig(encoder="small-cnn", image_size=32, hidden_dim=32, dropout=0.2, batch_size=16, epochs=3,
                     lr=3e-3, threads=1)


def patterns(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, Hierarchy]:
    """(n, 3, 32, 32) uint8 images of horizontal stripes, vertical stripes or dots (random period,
    phase and colours, plus noise), their (n, N) labels and the hierarchy root > stripes > {h, v}, dots."""
    rng = np.random.default_rng(seed)
    hierarchy = Hierarchy.from_paths(LEAVES)
    kind = rng.integers(0, 3, n)
    grid = np.arange(32)
    images = np.empty((n, 3, 32, 32), dtype=np.float64)
    for i in range(n):
        period, phase = rng.integers(4, 9), rng.integers(0, 8)
        on = ((grid + phase) // (period // 2)) % 2 == 0
        if kind[i] == 0:
            mask = np.repeat(on[:, None], 32, axis=1)
        elif kind[i] == 1:
            mask = np.repeat(on[None, :], 32, axis=0)
        else:
            mask = ((grid[:, None] + phase) % period < 2) & ((grid[None, :] + phase) % period < 2)
        fore, back = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        images[i] = np.where(mask, fore[:, None, None], back[:, None, None]) + rng.normal(0, 20, (3, 32, 32))
    Y = hierarchy.encode([[LEAVES[k]] for k in kind])
    return np.clip(images, 0, 255).astype(np.uint8), Y, hierarchy


@pytest.fixture(scope="module")
def data():
    X, Y, hierarchy = patterns(240, seed=0)
    return X[:160], Y[:160], X[160:], Y[160:], hierarchy


@pytest.fixture(scope="module")
def models(data):
    """A frozen and a fine-tuned small-cnn model, trained once for several tests."""
    X, Y, _, _, hierarchy = data
    frozen = fit(X, Y, hierarchy, IMAGES, progress=False)
    tuned = fit(X, Y, hierarchy, IMAGES.updated(fine_tune=True, encoder_lr=1e-3), progress=False)
    return frozen, tuned


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_frozen_training_is_tabular_training_on_the_encoded_features(data, models):
    X, Y, X_test, _, hierarchy = data
    encoder = build_encoder("small-cnn", 32, seed=IMAGES.seed)
    features = encode_images(encoder, X)
    tabular = fit(features, Y, hierarchy, replace(IMAGES, encoder=None), progress=False)
    frozen, _ = models
    assert all(torch.equal(v, frozen.network.state_dict()[k]) for k, v in tabular.network.state_dict().items())
    assert np.array_equal(frozen.predict_proba(X_test), tabular.predict_proba(encode_images(encoder, X_test)))
    assert np.array_equal(frozen.predict_proba(X_test), frozen.predict_proba(encode_images(encoder, X_test)))


def test_frozen_keeps_the_encoder_and_fine_tuning_trains_it(data, models):
    _, _, X_test, _, hierarchy = data
    initial = _weights(build_encoder("small-cnn", 32, seed=IMAGES.seed))
    frozen, tuned = models
    assert all(torch.equal(v, initial[k]) for k, v in _weights(frozen.encoder).items())
    changed = [k for k, v in _weights(tuned.encoder).items() if not torch.equal(v, initial[k])]
    assert "backbone.features.0.weight" in changed and "backbone.features.1.running_mean" in changed  # batch norm ran in train mode
    for model in models:
        proba = model.predict_proba(X_test)
        assert proba.shape == (len(X_test), len(hierarchy)) and is_coherent(proba, hierarchy)
        assert not model.encoder.training and not model.network.training
        members = model.member_probabilities(X_test, mc_samples=2)
        assert members.shape == (2, len(X_test), len(hierarchy)) and not model.encoder.training


@pytest.mark.parametrize("which", ["frozen", "fine-tuned"])
def test_checkpoint_round_trip_needs_no_weights_file(data, models, tmp_path, which):
    _, _, X_test, _, _ = data
    model = models[which == "fine-tuned"]
    path = save_checkpoint(model, tmp_path / "images.ckpt")
    again, _ = load_checkpoint(path)
    assert np.array_equal(again.predict_proba(X_test), model.predict_proba(X_test))
    assert vars(again.config) == vars(model.config) and again.encoder.out_features == 128


def test_training_from_a_weights_file_keeps_only_its_name(data, tmp_path):
    X, Y, X_test, _, hierarchy = data
    source = build_encoder("small-cnn", 32, seed=11)
    weights = save_encoder_weights(source, tmp_path / "pretrained.pth")
    config = IMAGES.updated(encoder_weights=str(weights), encoder_alpha=0.25, epochs=1)
    model = fit(X, Y, hierarchy, config, progress=False)
    expected = build_encoder("small-cnn", 32, weights=weights, alpha=0.25, seed=config.seed)
    assert all(torch.equal(v, _weights(model.encoder)[k]) for k, v in _weights(expected).items())
    path = save_checkpoint(model, tmp_path / "model.ckpt")
    weights.unlink()
    again, _ = load_checkpoint(path)
    assert np.array_equal(again.predict_proba(X_test), model.predict_proba(X_test))


@pytest.mark.parametrize("fine_tune", [False, True])
def test_resumed_image_run_equals_an_uninterrupted_one(data, tmp_path, monkeypatch, fine_tune):
    X, Y, X_test, _, hierarchy = data
    source = save_encoder_weights(build_encoder("small-cnn", 32, seed=5), tmp_path / "start.pth")
    config = IMAGES.updated(fine_tune=fine_tune, encoder_weights=str(source), encoder_alpha=0.5, dropout=0.5)
    expected = fit(X, Y, hierarchy, config, progress=False).predict_proba(X_test)
    state = tmp_path / "run.state"
    calls, real = [0], Objective.__call__

    def interrupted(self, *args, **kwargs):  # Ctrl-C in epoch 3, after its first batch was applied
        calls[0] += 1
        if calls[0] == 2 * 10 + 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Objective, "__call__", interrupted)
    with pytest.raises(TrainingInterrupted, match="interrupted at epoch 3; the state after epoch 2 is kept"):
        fit(X, Y, hierarchy, config, progress=False, state_path=state)
    monkeypatch.undo()
    assert set(load_training_state(state)["encoder"]) == set(_weights(build_encoder("small-cnn", 32)))
    source.unlink()  # the state holds the encoder: resuming needs no weights file
    resumed = fit(X, Y, hierarchy, config, progress=False, state_path=state, resume=True)
    assert np.array_equal(resumed.predict_proba(X_test), expected)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]


def test_fine_tuned_validation_keeps_the_best_epoch_encoder_included(data):
    X, Y, X_test, Y_test, hierarchy = data
    config = IMAGES.updated(fine_tune=True, epochs=3, patience=5, encoder_lr=3e-3)
    model = fit(X, Y, hierarchy, config, X_test, Y_test, progress=False)
    best = max(record["valid_au_prc"] for record in model.history)
    assert au_prc(Y_test, model.predict_proba(X_test), hierarchy) == pytest.approx(best, abs=1e-6)


def test_small_cnn_learns_stripes_from_dots(data):
    X, Y, X_test, Y_test, hierarchy = data
    prior = au_prc(Y_test, np.tile(Y.mean(axis=0), (len(Y_test), 1)), hierarchy)  # chance: node frequencies
    config = IMAGES.updated(fine_tune=True, epochs=8, lr=1e-3, batch_size=8)  # 0.89-0.95 over seeds 0-3
    score = au_prc(Y_test, fit(X, Y, hierarchy, config, progress=False).predict_proba(X_test), hierarchy)
    assert score > prior + 0.3, (score, prior)  # prior 0.49


def test_image_inputs_are_checked(data):
    X, Y, _, _, hierarchy = data
    with pytest.raises(HMLError, match="training images are 32 x 32 pixels but the encoder takes 64 x 64"):
        fit(X, Y, hierarchy, IMAGES.updated(image_size=64), progress=False)
    with pytest.raises(HMLError, match="validation images must be"):
        fit(X, Y, hierarchy, IMAGES, X[:, 0], Y, progress=False)
    with pytest.raises(HMLError, match="images need an image encoder"):
        fit(X, Y, hierarchy, TrainConfig(epochs=1), progress=False)
    with pytest.raises(HMLError, match="fine_tune, encoder_weights and encoder_alpha apply to an image encoder"):
        fit(X.reshape(len(X), -1), Y, hierarchy, TrainConfig(fine_tune=True), progress=False)
    tabular = fit(X.reshape(len(X), -1)[:, :20].astype(np.float32), Y, hierarchy, TrainConfig(epochs=1, hidden_dim=8),
                  progress=False)
    with pytest.raises(HMLError, match="this model has no image encoder: it takes \\(samples, 20\\) features"):
        tabular.predict_proba(X)


def test_files_written_before_encoders_still_load_and_resume(data, tmp_path):
    X, Y, _, _, hierarchy = data
    features = X.reshape(len(X), -1)[:, :20].astype(np.float32)
    config = TrainConfig(epochs=2, hidden_dim=8, batch_size=32)
    old = {k: v for k, v in vars(config).items() if k not in IMAGE_FIELDS}
    assert config_differences(old, config) == []
    model = fit(features, Y, hierarchy, config.updated(epochs=1), progress=False, state_path=tmp_path / "run.state")
    for path, kind in [(save_checkpoint(model, tmp_path / "old.ckpt"), checkpoint.MODEL),
                       (tmp_path / "run.state", checkpoint.TRAINING_STATE)]:
        payload = checkpoint._read(path, kind, "cpu")
        payload["config"] = json.dumps({**old, "epochs": 1})
        checkpoint._write(path, payload, kind)
    again, _ = load_checkpoint(tmp_path / "old.ckpt")
    assert again.encoder is None and np.array_equal(again.predict_proba(features), model.predict_proba(features))
    resumed = fit(features, Y, hierarchy, config, progress=False, state_path=tmp_path / "run.state", resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2]


def test_the_estimator_takes_images_too(data):
    from hmlearn.estimator import HMCClassifier

    X, Y, X_test, _, hierarchy = data
    clf = HMCClassifier(encoder="small-cnn", image_size=32, hidden_dim=8, epochs=1, batch_size=32)
    proba = clf.fit(X, Y, hierarchy).predict_proba(X_test)
    assert proba.shape == (len(X_test), int(hierarchy.evaluated.sum()))
    assert is_coherent(clf.model_.predict_proba(X_test), hierarchy)
    assert clf.model_.encoder is not None and clf.n_features_in_ == 128
