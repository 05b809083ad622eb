from __future__ import annotations

import numpy as np

from hmlearn.data.synthetic import make_hmc_data
from hmlearn.hierarchy import Hierarchy
from hmlearn.sampling import hierarchical_oversample, inverse_frequency_sample_weights, label_paths


def test_paths_are_distinct_label_sets_with_depth():
    h = Hierarchy.from_paths(["a/b", "c"])
    Y = h.encode([["a/b"], ["a/b"], ["c"], ["a"]])
    path, depth = label_paths(Y, h)
    assert path[0] == path[1] and len({path[0], path[2], path[3]}) == 3
    assert depth[path[0]] == 2 and depth[path[2]] == 1


def test_oversampling_tops_up_minority_paths_within_budget():
    data = make_hmc_data(n_samples=1000, n_nodes=40, tail=1.5, seed=2)
    rows = hierarchical_oversample(data.Y, data.hierarchy, budget=0.1, seed=0)
    assert np.array_equal(rows[:1000], np.arange(1000))
    added = rows[1000:]
    assert 0 < len(added) <= 100
    path, _ = label_paths(data.Y, data.hierarchy)
    counts = np.bincount(path)
    assert np.all(counts[path[added]] < counts.mean())  # only below-average paths are duplicated
    assert np.array_equal(rows, hierarchical_oversample(data.Y, data.hierarchy, budget=0.1, seed=0))


def test_sample_weights_favour_samples_with_rare_labels():
    h = Hierarchy.from_paths(["a", "b"])
    Y = h.encode([["a"], ["a"], ["a"], ["b"]])
    w = inverse_frequency_sample_weights(Y, h)
    assert abs(w.mean() - 1) < 1e-12
    assert w[3] == w.max() and w[3] / w[0] == 3.0
