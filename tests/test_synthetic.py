from __future__ import annotations

import numpy as np

from hmlearn.data.synthetic import make_hmc_data, random_hierarchy, train_test_split


def test_labels_closed_seeded_and_long_tailed():
    data = make_hmc_data(n_samples=2000, n_nodes=80, seed=4)
    assert data.hierarchy.is_closed(data.Y)
    again = make_hmc_data(n_samples=2000, n_nodes=80, seed=4)
    np.testing.assert_array_equal(data.X, again.X)
    counts = np.sort(data.Y[:, data.hierarchy.evaluated].sum(axis=0))[::-1]
    assert counts[0] > 20 * max(counts[len(counts) // 2], 1)  # a head and a long tail


def test_signal_controls_how_much_features_say_about_labels():
    def separation(signal: float) -> float:
        data = make_hmc_data(n_samples=1500, n_nodes=30, signal=signal, seed=1)
        node = int(np.argmax(data.Y[:, data.hierarchy.evaluated].sum(0) < 0.5 * len(data)))
        node = np.flatnonzero(data.hierarchy.evaluated)[node]
        pos, neg = data.X[data.Y[:, node]], data.X[~data.Y[:, node]]
        return float(np.linalg.norm(pos.mean(0) - neg.mean(0)))

    assert separation(3.0) > 3 * separation(0.0)


def test_dag_option_gives_multiple_parents_and_split_is_disjoint():
    h = random_hierarchy(200, 6, dag=True, extra_parent_prob=0.5, seed=2)
    assert not h.is_tree and h.max_depth <= 6
    data = make_hmc_data(n_samples=100, hierarchy=h, seed=0)
    train, test = train_test_split(data, 0.25, seed=0)
    assert len(train) == 75 and len(test) == 25
    rows = {tuple(r) for r in train.X.round(5)} & {tuple(r) for r in test.X.round(5)}
    assert not rows
