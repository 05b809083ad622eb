from __future__ import annotations

import numpy as np
import pytest
import torch

from hmlearn.data.synthetic import make_hmc_data, train_test_split
from hmlearn.errors import HMLError, TrainingDiverged, TrainingInterrupted
from hmlearn.metrics import au_prc, is_coherent
from hmlearn.objectives.rare_node import Objective
from hmlearn.training.config import TrainConfig
from hmlearn.training.fit import fit
from hmlearn.training.presets import preset_config

SMALL = TrainConfig(hidden_dim=32, dropout=0.2, batch_size=16, epochs=8, lr=3e-3, threads=1)


@pytest.fixture(scope="module")
def data():
    return train_test_split(make_hmc_data(n_samples=600, n_features=12, n_nodes=30, signal=3.0, seed=0), 0.3, seed=0)


def test_same_seed_same_model_different_seed_different(data):
    train, test = data
    a = fit(train.X, train.Y, train.hierarchy, SMALL, progress=False).predict_proba(test.X)
    b = fit(train.X, train.Y, train.hierarchy, SMALL, progress=False).predict_proba(test.X)
    c = fit(train.X, train.Y, train.hierarchy, SMALL.updated(seed=1), progress=False).predict_proba(test.X)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_learns_the_signal_and_predicts_coherently(data):
    train, test = data
    model = fit(train.X, train.Y, train.hierarchy, SMALL, progress=False)
    proba = model.predict_proba(test.X)
    assert is_coherent(proba, train.hierarchy)
    prior = np.tile(train.Y.mean(axis=0), (len(test), 1))  # predicting node frequencies, no features
    assert au_prc(test.Y, proba, train.hierarchy) > au_prc(test.Y, prior, train.hierarchy) + 0.1
    assert model.history[-1]["loss"] < model.history[0]["loss"]
    predicted = model.predict(test.X)
    assert train.hierarchy.is_closed(predicted)


def test_validation_keeps_the_best_epoch(data):
    train, test = data
    model = fit(train.X, train.Y, train.hierarchy, SMALL.updated(epochs=6, patience=100), test.X, test.Y, progress=False)
    scores = [record["valid_au_prc"] for record in model.history]
    assert len(scores) == 6
    assert au_prc(test.Y, model.predict_proba(test.X), train.hierarchy) == pytest.approx(max(scores), abs=1e-7)


def test_patience_stops_early(data):
    train, test = data
    config = SMALL.updated(epochs=50, patience=1, lr=0.3)  # a learning rate that cannot keep improving
    model = fit(train.X, train.Y, train.hierarchy, config, test.X, test.Y, progress=False)
    assert len(model.history) < 50


def test_heads_are_initialised_independently_and_averaged(data):
    train, test = data
    model = fit(train.X, train.Y, train.hierarchy, SMALL.updated(heads=3, epochs=1), progress=False)
    first = model.network.layers[0].weight
    assert first.shape[0] == 3 and not torch.allclose(first[0], first[1])
    x = torch.from_numpy(model.standardizer.transform(test.X[:5]))
    with torch.no_grad():
        per_head = model.constraint(torch.sigmoid(model.network(x)).reshape(15, -1)).reshape(3, 5, -1)
    np.testing.assert_allclose(model.predict_proba(test.X[:5]), per_head.mean(0).numpy(), rtol=1e-6)


def test_bad_training_input_is_refused(data):
    train, _ = data
    with pytest.raises(HMLError, match="training split is empty"):
        fit(train.X[:0], train.Y[:0], train.hierarchy, SMALL, progress=False)
    with pytest.raises(HMLError, match="X has 10 rows but Y has 9"):
        fit(train.X[:10], train.Y[:9], train.hierarchy, SMALL, progress=False)
    with pytest.raises(HMLError, match="Y has 5 columns but the hierarchy has 30 nodes"):
        fit(train.X[:10], train.Y[:10, :5], train.hierarchy, SMALL, progress=False)


def test_presets_start_from_the_published_settings():
    published = {"hidden_dim": 500, "epochs": 67, "lr": 1e-4, "batch_size": 4, "dropout": 0.7}
    paper = preset_config(published, "paper")
    assert (paper.hidden_dim, paper.epochs, paper.lr, paper.batch_size) == (500, 67, 1e-4, 4)
    fast = preset_config(published, "fast", 500, seed=3)
    assert fast.hidden_dim == 500 and fast.dropout == 0.7 and fast.batch_size > 4 and fast.lr > 1e-4 and fast.seed == 3
    assert fast.epochs == 67  # fewer epochs lost AU(PRC) on most FUN datasets
    large = preset_config(published, "fast", 4120)
    assert 4 < large.batch_size < fast.batch_size
    others = preset_config({**published, "lr": 1e-5}, "fast", 500)
    assert others.batch_size < fast.batch_size and others.lr > 1e-5  # scaled from the dataset's own rate
    medium = preset_config(published, "medium", 500)
    assert medium.epochs == 67 and 4 < medium.batch_size < fast.batch_size and 1e-4 < medium.lr < fast.lr
    assert preset_config(published, "fast", 500, epochs=3, lr=0.5).epochs == 3  # explicit options win
    with pytest.raises(HMLError, match="unknown preset"):
        preset_config(published, "turbo")


def test_mc_dropout_members_differ_and_average_coherently(data):
    train, test = data
    model = fit(train.X, train.Y, train.hierarchy, SMALL.updated(dropout=0.5, epochs=2), progress=False)
    members = model.member_probabilities(test.X[:20], mc_samples=4)
    assert members.shape == (4, 20, len(train.hierarchy)) and not np.allclose(members[0], members[1])
    assert np.array_equal(model.member_probabilities(test.X[:20])[0], model.member_probabilities(test.X[:20])[0])
    mc = model.predict_proba(test.X[:20], mc_samples=4)
    assert is_coherent(mc, train.hierarchy) and not np.allclose(mc, model.predict_proba(test.X[:20]))
    assert not model.network.training


def test_non_finite_loss_stops_naming_epoch_and_batch(data):
    train, _ = data
    with pytest.raises(HMLError, match=r"training diverged: loss is (nan|inf) at epoch \d+, batch \d+; lower"):
        fit(train.X, train.Y, train.hierarchy, SMALL.updated(lr=1e30, dropout=0.0), progress=False)


def _interrupt_at_batch(monkeypatch, batch: int) -> None:
    """Make the objective raise KeyboardInterrupt (as Ctrl-C would) on its ``batch``-th call."""
    calls, real = [0], Objective.__call__

    def interrupted(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == batch:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Objective, "__call__", interrupted)


@pytest.mark.parametrize(("heads", "save_every"), [(1, 1), (2, 2)])
def test_resumed_training_is_bit_identical_to_an_uninterrupted_run(data, tmp_path, monkeypatch, heads, save_every):
    train, test = data
    config = SMALL.updated(heads=heads, dropout=0.5, epochs=5)
    expected = fit(train.X, train.Y, train.hierarchy, config, progress=False).predict_proba(test.X)
    state = tmp_path / "run.state"
    batches = -(-len(train.X) // config.batch_size)
    _interrupt_at_batch(monkeypatch, 3 * batches + 2)  # in epoch 4, with its first batch already applied
    with pytest.raises(TrainingInterrupted, match="interrupted at epoch 4; the state after epoch 3 is kept in") as stop:
        fit(train.X, train.Y, train.hierarchy, config, progress=False, state_path=state, save_every=save_every)
    assert (stop.value.epoch, stop.value.saved_epoch) == (4, 3)  # epoch 3 written at the interrupt when not due
    monkeypatch.undo()
    resumed = fit(train.X, train.Y, train.hierarchy, config, progress=False, state_path=state, resume=True,
                  save_every=save_every)
    assert np.array_equal(resumed.predict_proba(test.X), expected)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4, 5]
    assert [p.name for p in tmp_path.iterdir()] == ["run.state"]  # kept for the caller; nothing half-written


def test_resume_with_more_epochs_keeps_the_best_validation_epoch(data, tmp_path):
    train, test = data
    config = SMALL.updated(epochs=6, patience=4)
    expected = fit(train.X, train.Y, train.hierarchy, config, test.X, test.Y, progress=False)
    state = tmp_path / "run.state"
    fit(train.X, train.Y, train.hierarchy, config.updated(epochs=3), test.X, test.Y, progress=False, state_path=state)
    resumed = fit(train.X, train.Y, train.hierarchy, config, test.X, test.Y, progress=False, state_path=state,
                  resume=True)
    assert np.array_equal(resumed.predict_proba(test.X), expected.predict_proba(test.X))
    assert [r["valid_au_prc"] for r in resumed.history] == [r["valid_au_prc"] for r in expected.history]
    again = fit(train.X, train.Y, train.hierarchy, config, test.X, test.Y, progress=False, state_path=state,
                resume=True)  # all epochs saved: nothing left to train, the same model
    assert np.array_equal(again.predict_proba(test.X), expected.predict_proba(test.X))


def test_diverged_loss_keeps_the_last_good_state_untouched(data, tmp_path):
    train, _ = data
    config = SMALL.updated(epochs=2, dropout=0.0)
    state = tmp_path / "run.state"
    fit(train.X, train.Y, train.hierarchy, config, progress=False, state_path=state)
    before = state.read_bytes()
    with pytest.raises(TrainingDiverged, match=r"at epoch 3, batch \d+; lower .*; the state after epoch 2 is kept "
                                               r"in .*run.state, to resume from with a lower learning rate") as error:
        fit(train.X, train.Y, train.hierarchy, config.updated(epochs=4, lr=1e30), progress=False, state_path=state,
            resume=True)
    assert (error.value.epoch, error.value.saved_epoch) == (3, 2)
    assert state.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["run.state"]
    model = fit(train.X, train.Y, train.hierarchy, config.updated(epochs=4, lr=1e-3), progress=False,
                state_path=state, resume=True)  # a lower learning rate may continue the run
    assert [r["epoch"] for r in model.history] == [1, 2, 3, 4]


def test_resume_refuses_other_settings_or_data(data, tmp_path):
    train, _ = data
    config = SMALL.updated(epochs=2)
    state = tmp_path / "run.state"
    fit(train.X, train.Y, train.hierarchy, config.updated(epochs=1), progress=False, state_path=state)
    with pytest.raises(HMLError, match=r"run.state: cannot resume, .*other settings \(hidden_dim: saved 32, now 8\)"):
        fit(train.X, train.Y, train.hierarchy, config.updated(hidden_dim=8), progress=False, state_path=state,
            resume=True)
    with pytest.raises(HMLError, match="cannot resume, the run was saved for other training data"):
        fit(train.X[1:], train.Y[1:], train.hierarchy, config, progress=False, state_path=state, resume=True)
    fit(train.X, train.Y, train.hierarchy, config.updated(hidden_dim=8), progress=False, state_path=state)
    assert [p.name for p in tmp_path.iterdir()] == ["run.state"]  # without resume: replaced, not refused
