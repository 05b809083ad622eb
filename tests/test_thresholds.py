"""Tuned decision thresholds, the published loss reduction and weight table, AdamW, and --rare-nodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmlearn.data.synthetic import make_hmc_data, random_hierarchy, train_test_split
from hmlearn.metrics import evaluate
from hmlearn.nn.constraint import MaxConstraint
from hmlearn.objectives.rare_node import Objective
from hmlearn.objectives.weights import NodeWeights
from hmlearn.training.checkpoint import load_checkpoint, save_checkpoint
from hmlearn.training.config import RARE_NODE_SETTINGS, TrainConfig, with_rare_node_settings
from hmlearn.training.fit import adam, fit
from hmlearn.training.presets import preset_config
from hmlearn.training.thresholds import GRID, coherent_thresholds, frequency_bucket, tune_thresholds


def _rare_scores(seed=0):
    """Validation labels and probabilities where node probabilities sit near each node's prior."""
    h = random_hierarchy(30, 3, seed=seed)
    rng = np.random.default_rng(seed)
    Y = h.close(rng.random((400, len(h))) < 0.04)
    P = np.clip(0.02 + 0.25 * Y + 0.05 * rng.random(Y.shape), 0, 1)  # positives: about 0.3, never 0.5
    # make P coherent, as an MCM output is
    P = P.copy()
    for node in h.topological_order[::-1]:
        for child in h.children[node]:
            P[:, node] = np.maximum(P[:, node], P[:, child])
    return h, Y, P


@pytest.mark.parametrize("mode", ["global", "depth", "frequency", "node"])
def test_tuned_thresholds_raise_f1_and_stay_coherent(mode):
    h, Y, P = _rare_scores()
    thresholds = tune_thresholds(Y, P, h, train_Y=Y, mode=mode)
    assert thresholds.shape == (len(h),)
    fixed, tuned = evaluate(Y, P, h, threshold=0.5), evaluate(Y, P, h, threshold=thresholds)
    assert fixed["f1"] < 1.0 and tuned["f1"] > 50.0  # 0.5 never fires; tuned thresholds find the positives
    for node in range(len(h)):
        for child in h.children[node]:
            assert thresholds[node] <= thresholds[child]
    predicted = P >= thresholds
    assert np.array_equal(h.close(predicted), predicted)  # every predicted set is closed upwards


def test_fixed_mode_is_one_half_everywhere_and_coherence_lowers_parents():
    h, Y, P = _rare_scores(1)
    assert np.all(tune_thresholds(Y, P, h, Y, "fixed") == 0.5)
    raw = np.full(len(h), 0.5)
    leaf = int(np.flatnonzero([len(c) == 0 for c in h.children])[0])
    raw[leaf] = 0.1
    lowered = coherent_thresholds(raw, h)
    assert all(lowered[a] == 0.1 for a in h.ancestors(leaf))
    assert GRID.min() < 0.01 and GRID.max() >= 0.5
    assert list(frequency_bucket(np.array([0, 4, 5, 19, 20, 99, 100]))) == [0, 0, 1, 1, 2, 2, 3]


def test_fit_tunes_thresholds_on_a_holdout_and_checkpoints_keep_them(tmp_path):
    data = make_hmc_data(n_samples=300, n_features=6, n_nodes=20, signal=3.0, seed=5)
    train, test = train_test_split(data, 0.3, seed=0)
    config = TrainConfig(hidden_dim=16, epochs=3, batch_size=16, thresholds="frequency", threshold_holdout=0.25)
    model = fit(train.X, train.Y, train.hierarchy, config, progress=False)
    assert model.thresholds is not None and model.thresholds.shape == (len(data.hierarchy),)
    assert np.any(model.thresholds < 0.5)
    np.testing.assert_array_equal(model.predict(test.X), model.predict_proba(test.X) >= model.thresholds)
    save_checkpoint(model, tmp_path / "m.ckpt")
    loaded, _ = load_checkpoint(tmp_path / "m.ckpt")
    np.testing.assert_array_equal(loaded.thresholds, model.thresholds)
    plain = fit(train.X, train.Y, train.hierarchy, TrainConfig(hidden_dim=16, epochs=3, batch_size=16), progress=False)
    assert plain.thresholds is None and plain.decision_thresholds == 0.5


def test_sum_reduction_is_the_mean_times_the_number_of_terms():
    h = random_hierarchy(25, 3, seed=2)
    constraint = MaxConstraint(h)
    p = torch.rand(2, 4, len(h), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor(h.close(np.random.default_rng(0).random((4, len(h))) < 0.2), dtype=torch.float64)
    mean, total = Objective(constraint)(p, y), Objective(constraint, reduction="sum")(p, y)
    terms = 2 * 4 * int(h.evaluated.sum())
    assert total.item() == pytest.approx(mean.item() * terms, rel=1e-12)


def test_per_head_reduction_gives_each_head_a_single_networks_gradient():
    h = random_hierarchy(25, 3, seed=4)
    constraint = MaxConstraint(h)
    p = torch.rand(3, 4, len(h), dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()
    y = torch.tensor(h.close(np.random.default_rng(1).random((4, len(h))) < 0.2), dtype=torch.float64)
    per_head = Objective(constraint, reduction="per-head")(p, y)
    assert per_head.item() == pytest.approx(3 * Objective(constraint)(p, y).item(), rel=1e-12)
    (gradient,) = torch.autograd.grad(per_head, p)
    for head in range(3):
        alone = p[head:head + 1].detach().clone().requires_grad_()
        (single,) = torch.autograd.grad(Objective(constraint)(alone, y), alone)
        torch.testing.assert_close(gradient[head:head + 1], single, rtol=1e-12, atol=0)
    (mean_gradient,) = torch.autograd.grad(Objective(constraint)(p, y), p)
    torch.testing.assert_close(mean_gradient * 3, gradient, rtol=1e-12, atol=1e-15)  # the mean: 1/H of it


def test_the_published_weight_table_sums_descendants_and_rescales_the_root_too():
    h = random_hierarchy(25, 3, seed=3)
    Y = h.close(np.random.default_rng(3).random((60, len(h))) < 0.1)
    ours = NodeWeights.fit(Y, h, omega=0.25)
    published = NodeWeights.fit(Y, h, omega=0.25, descendant_sum=True, root_in_rescale=True)
    roots = ~h.evaluated
    assert np.all(ours.positive[roots] == 1.0)
    assert published.positive.min() == pytest.approx(0.25)  # the rescale runs over every node, root included
    assert np.all(published.positive[roots] != 1.0)  # the root's weight (1: all samples positive) is rescaled too
    assert not np.allclose(ours.positive[h.evaluated], published.positive[h.evaluated])


def test_adamw_is_decoupled_adam():
    layer = torch.nn.Linear(3, 2)
    groups = [{"params": list(layer.parameters()), "lr": 1e-3}]
    assert isinstance(adam(groups, TrainConfig(optimizer="adamw")), torch.optim.AdamW)
    assert type(adam(groups, TrainConfig())) is torch.optim.Adam


def test_rare_nodes_sets_only_what_is_left_at_its_default():
    given = with_rare_node_settings(TrainConfig(rare_nodes=True, thresholds="global"))
    assert given.thresholds == "global"  # given: kept
    config = with_rare_node_settings(TrainConfig(rare_nodes=True))
    assert all(getattr(config, k) == v for k, v in RARE_NODE_SETTINGS.items())
    assert config != TrainConfig(rare_nodes=True)
    assert with_rare_node_settings(TrainConfig()) == TrainConfig()
    assert preset_config({}, "paper", 10, rare_nodes=True).thresholds == RARE_NODE_SETTINGS["thresholds"]
