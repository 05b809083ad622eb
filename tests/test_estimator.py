from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from hmlearn.data.synthetic import make_hmc_data, train_test_split
from hmlearn.errors import HMLError
from hmlearn.estimator import HMCClassifier


@pytest.fixture(scope="module")
def data():
    return train_test_split(make_hmc_data(n_samples=300, n_features=8, n_nodes=20, signal=3.0, seed=5), 0.3, seed=1)


def small(**kw) -> HMCClassifier:
    return HMCClassifier(**{"hidden_dim": 24, "epochs": 5, "batch_size": 16, "lr": 3e-3, "dropout": 0.1, **kw})


def test_get_set_params_and_clone():
    clf = small(heads=2)
    assert clf.get_params()["heads"] == 2 and clf.get_params()["hidden_dim"] == 24
    clf.set_params(heads=4, epochs=2)
    assert clf.heads == 4 and clone(clf).get_params() == clf.get_params()


def test_fit_predict_coherent_and_closed(data):
    train, test = data
    clf = small().fit(train.X, train.Y, train.hierarchy)
    proba = clf.predict_proba(test.X)
    assert proba.shape == (len(test), len(train.hierarchy))
    for parent, child in train.hierarchy.edges:
        assert np.all(proba[:, parent] >= proba[:, child])
    assert train.hierarchy.is_closed(clf.predict(test.X))
    assert 0.0 < clf.score(test.X, test.Y) <= 1.0
    assert clf.n_features_in_ == 8 and list(clf.classes_) == list(train.hierarchy.nodes)


def test_fit_accepts_label_names_and_closes_them(data):
    train, test = data
    h = train.hierarchy
    leaves = [[h.nodes[i] for i in np.flatnonzero(row & h.evaluated) if i in set(h.leaves)] or
              [h.nodes[np.flatnonzero(row & h.evaluated)[-1]]] for row in train.Y]
    by_names = small().fit(train.X, leaves, h)
    by_matrix = small().fit(train.X, h.encode(leaves), h)
    assert np.array_equal(by_names.predict_proba(test.X), by_matrix.predict_proba(test.X))


def test_errors_are_clear(data):
    train, test = data
    with pytest.raises(HMLError, match="not fitted yet"):
        small().predict(test.X)
    with pytest.raises(HMLError, match=r"Y has shape \(10, 3\), expected \(10, 20\)"):
        small().fit(train.X[:10], np.zeros((10, 3)), train.hierarchy)
    clf = small(epochs=1).fit(train.X, train.Y, train.hierarchy)
    with pytest.raises(HMLError, match="the model was fitted on 8 features"):
        clf.predict_proba(test.X[:, :5])


def test_every_training_option_is_an_estimator_parameter():
    from dataclasses import fields

    from hmlearn.training.config import TrainConfig

    assert {f.name for f in fields(TrainConfig)} <= set(HMCClassifier().get_params())


def test_rare_node_options_reach_training(data):
    train, test = data
    clf = small(heads=2, node_weights="class-wise", focal="gated", epochs=2).fit(train.X, train.Y, train.hierarchy)
    config = clf.model_.config
    assert (config.heads, config.node_weights, config.focal) == (2, "class-wise", "gated")
