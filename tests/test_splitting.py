from __future__ import annotations

import numpy as np
import pytest

from hmlearn.data.splitting import strata, stratified_split, training_fraction
from hmlearn.data.synthetic import make_hmc_data
from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy


@pytest.fixture(scope="module")
def data():
    """Long-tailed labels: many nodes have only a handful of rows."""
    return make_hmc_data(n_samples=1500, n_features=4, n_nodes=60, tail=1.5, seed=3)


def test_strata_are_each_rows_rarest_positive_node():
    h = Hierarchy.from_paths(["a/b", "a/c", "d"])
    Y = h.encode([["a/b"], ["a/b"], ["a/c", "a/b"], ["d"], []])
    s = strata(Y, h)
    assert [h.nodes[i] for i in s[:4]] == ["a/b", "a/b", "a/c", "d"]  # a/c (1 row) is rarer than a/b (3 rows)
    assert s[4] == -1
    assert strata(h.encode([["a/b"]]), h)[0] == h.index["a/b"]  # a and a/b tie on count: the deeper one


def test_stratified_split_is_disjoint_complete_exact_and_seeded(data):
    train, test = stratified_split(data.Y, data.hierarchy, 0.3, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(data)))
    assert abs(len(test) - round(0.3 * len(data))) <= 3  # exact but for rows moved to cover nodes in train
    again = stratified_split(data.Y, data.hierarchy, 0.3, seed=0)
    np.testing.assert_array_equal(again[1], test)
    assert not np.array_equal(stratified_split(data.Y, data.hierarchy, 0.3, seed=1)[1], test)


def test_stratified_split_keeps_every_node_in_train_and_shares_strata(data):
    Y, h = data.Y, data.hierarchy
    train, test = stratified_split(Y, h, 0.3, seed=0)
    present = Y.any(axis=0)
    assert np.array_equal(Y[train].any(axis=0), present)  # no node seen only in test
    s = strata(Y, h)
    for stratum in np.unique(s):
        rows = np.flatnonzero(s == stratum)
        share = np.isin(rows, test).sum()
        assert abs(share - 0.3 * len(rows)) <= 2, (stratum, len(rows), share)
    # nodes with a few rows are tested too (a random split of these data misses 6% of them)
    counts = Y.sum(axis=0)
    assert Y[test].any(axis=0)[(counts >= 4) & h.evaluated].all()


def test_training_fraction_keeps_rare_leaves_where_random_subsampling_loses_them(data):
    Y, h = data.Y, data.hierarchy
    rows = training_fraction(Y, h, 0.1, seed=0)
    leaves = np.intersect1d(h.leaves, np.flatnonzero(Y.any(axis=0)))
    assert Y[rows][:, leaves].any(axis=0).all()  # every leaf with an example keeps one
    lost_by_random = [
        int((~Y[np.random.default_rng(seed).choice(len(Y), len(rows), replace=False)][:, leaves].any(axis=0)).sum())
        for seed in range(5)
    ]
    assert min(lost_by_random) > 0  # the property is not free: plain sampling drops some
    assert abs(len(rows) - 0.1 * len(Y)) <= 0.02 * len(Y)
    counts, kept = Y.sum(axis=0), Y[rows].sum(axis=0)
    frequent = counts >= 100
    assert np.all(np.abs(kept[frequent] / counts[frequent] - 0.1) < 0.05)
    np.testing.assert_array_equal(training_fraction(Y, h, 0.1, seed=0), rows)
    assert not np.array_equal(training_fraction(Y, h, 0.1, seed=1), rows)
    assert np.all(np.diff(rows) > 0)


def test_training_fraction_bounds(data):
    np.testing.assert_array_equal(training_fraction(data.Y, data.hierarchy, 1.0, seed=0), np.arange(len(data)))
    half = training_fraction(data.Y, data.hierarchy, 0.5, seed=0)
    assert abs(len(half) - 750) <= 5
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(HMLError, match=r"training fraction must be in \(0, 1\]"):
            training_fraction(data.Y, data.hierarchy, bad)


def test_split_refuses_bad_fractions_and_too_few_rows():
    h = Hierarchy.from_paths(["a", "b"])
    Y = h.encode([["a"], ["b"], ["a"]])
    for bad in (0.0, 1.0, 1.2):
        with pytest.raises(HMLError, match="test fraction"):
            stratified_split(Y, h, bad)
    with pytest.raises(HMLError, match="at least 2"):
        stratified_split(Y[:1], h, 0.3)
    _, test = stratified_split(Y, h, 0.5, seed=0)  # a and b each keep their train row
    assert len(test) == 1 and Y[test[0], h.index["a"]]
