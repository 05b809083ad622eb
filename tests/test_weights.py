from __future__ import annotations

import numpy as np
import pytest
import torch

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.objectives.weights import NodeWeights, balanced_weights, node_positive_counts, rescale


@pytest.fixture()
def small():
    h = Hierarchy.from_paths(["a/b", "c"])  # root, a, c, a/b
    Y = h.encode([["a/b"], ["a"], ["c"], ["a/b"]])
    return h, Y


def test_counts_plain_and_descendant_summed(small):
    h, Y = small
    plain = node_positive_counts(Y, h, descendant_sum=False)
    assert plain[h.index["a"]] == 3 and plain[h.index["a/b"]] == 2 and plain[h.index["c"]] == 1
    summed = node_positive_counts(Y, h, descendant_sum=True)
    assert summed[h.index["a"]] == 3 + 2 and summed[h.index["a/b"]] == 2 and summed[h.index["root"]] == 4 + 3 + 2 + 1


def test_balanced_weights_and_degenerate_nodes():
    counts = np.array([10.0, 5.0, 0.0, 100.0])
    np.testing.assert_allclose(balanced_weights(counts, 100, "binary"), [5.0, 10.0, 1.0, 1.0])
    np.testing.assert_allclose(balanced_weights(counts, 100, "class-wise"), [2.5, 5.0, 1.0, 1.0])
    with pytest.raises(HMLError, match="unknown node-weight mode"):
        balanced_weights(counts, 100, "inverse")


def test_rescale_to_the_minimum_weight_omega():
    np.testing.assert_allclose(rescale(np.array([1.0, 2.0, 3.0]), 0.25), [0.25, 1.75, 3.25])


def test_rare_nodes_weigh_more_and_tables_follow_the_side(small):
    h, Y = small
    weights = NodeWeights.fit(Y, h, mode="binary", omega=0.25, descendant_sum=False, side="positive")
    rare, common = h.index["c"], h.index["a"]
    assert weights.positive[rare] > weights.positive[common]
    assert weights.positive[h.evaluated].min() == pytest.approx(0.25)  # omega is the floor
    assert weights.positive[h.index["root"]] == 1.0 and np.all(weights.negative == 1.0)
    y = torch.tensor(Y[:2], dtype=torch.float64)
    positive_side = weights.for_labels(y)
    assert positive_side[0, h.index["a/b"]] == pytest.approx(weights.positive[h.index["a/b"]])
    assert positive_side[0, rare] == 1.0  # y = 0 term, negative table
    published = NodeWeights(weights.positive, weights.negative, side="published").for_labels(y)
    assert published[0, rare] == pytest.approx(weights.positive[rare])  # rare-node weight on the y = 0 term
    assert published[0, h.index["a/b"]] == 1.0


def test_negative_side_table_uses_negative_counts(small):
    h, Y = small
    weights = NodeWeights.fit(Y, h, negative_weights=True, descendant_sum=False)
    # node c has 3 negatives of 4, node a 1 negative: the node with fewer negatives weighs more
    assert weights.negative[h.index["a"]] > weights.negative[h.index["c"]]


def test_rescale_of_constant_weights_is_omega_plus_the_weight():
    """All nodes equally frequent: w' = omega + max(w) (not omega alone), as the formula's limit."""
    np.testing.assert_allclose(rescale(np.array([2.0, 2.0, 2.0]), 0.25), [2.25, 2.25, 2.25])
