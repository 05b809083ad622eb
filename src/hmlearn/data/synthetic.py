"""Synthetic hierarchies and hierarchical multi-label data, for tests and the offline demo."""

from __future__ import annotations

import numpy as np

from hmlearn.data.dataset import HMCDataset
from hmlearn.hierarchy import Hierarchy


def random_hierarchy(
    n_nodes: int = 50,
    max_depth: int = 5,
    dag: bool = False,
    extra_parent_prob: float = 0.3,
    seed: int | np.random.Generator = 0,
) -> Hierarchy:
    """A random tree (``dag=False``) or DAG under one not-evaluated ``root``.

    Nodes are attached level by level to a random node of the level above, so the depth is
    at most ``max_depth``; with ``dag=True`` each node also gets, with ``extra_parent_prob``,
    a second parent drawn from any shallower level (so the result stays acyclic).
    """
    rng = np.random.default_rng(seed)
    n_nodes = max(int(n_nodes), 2)
    depth_of = np.sort(rng.integers(1, max_depth + 1, size=n_nodes - 1))
    depth_of[0] = 1  # at least one top node
    depth_of = np.maximum.accumulate(np.minimum(depth_of, np.arange(1, n_nodes)))  # no gaps in depth
    for i in range(1, len(depth_of)):
        depth_of[i] = min(depth_of[i], depth_of[i - 1] + 1)
    names = ["root"] + [f"n{i}" for i in range(1, n_nodes)]
    depths = np.concatenate([[0], depth_of])
    edges: list[tuple[str, str]] = []
    for i in range(1, n_nodes):
        above = np.flatnonzero(depths == depths[i] - 1)
        parent = int(rng.choice(above))
        edges.append((names[parent], names[i]))
        if dag and depths[i] >= 2 and rng.random() < extra_parent_prob:
            shallower = np.flatnonzero((depths < depths[i]) & (depths > 0))
            second = int(rng.choice(shallower))
            if second != parent:
                edges.append((names[second], names[i]))
    return Hierarchy.from_edges(edges, not_evaluated=["root"])


def make_hmc_data(
    n_samples: int = 1000,
    n_features: int = 20,
    hierarchy: Hierarchy | None = None,
    n_nodes: int = 60,
    max_depth: int = 4,
    dag: bool = False,
    labels_per_sample: float = 1.5,
    tail: float = 1.2,
    signal: float = 2.0,
    seed: int = 0,
) -> HMCDataset:
    """Hierarchical multi-label data whose features carry the hierarchy.

    Each node has a prototype: its parent's plus a random offset, so related nodes look alike.
    A sample draws ``1 + Poisson(labels_per_sample - 1)`` nodes with long-tailed probabilities
    (the node of frequency rank r is drawn with weight ``r ** -tail``), closes them upwards,
    and its features are ``signal`` times the mean prototype of its drawn nodes plus unit
    Gaussian noise. ``signal = 0`` gives labels independent of the features.
    """
    rng = np.random.default_rng(seed)
    if hierarchy is None:
        hierarchy = random_hierarchy(n_nodes, max_depth, dag=dag, seed=rng)
    n = len(hierarchy)
    prototypes = np.zeros((n, n_features))
    for node in hierarchy.topological_order:
        parents = hierarchy.parents[node]
        base = prototypes[parents].mean(axis=0) if len(parents) else np.zeros(n_features)
        prototypes[node] = base + rng.normal(scale=1.0, size=n_features) / np.sqrt(n_features) * 2
    candidates = np.flatnonzero(hierarchy.evaluated)
    ranks = rng.permutation(len(candidates)) + 1
    weights = ranks.astype(float) ** -tail
    weights /= weights.sum()
    counts = 1 + rng.poisson(max(labels_per_sample - 1.0, 0.0), size=n_samples)
    direct = np.zeros((n_samples, n), dtype=bool)
    X = rng.normal(size=(n_samples, n_features))
    for row, count in enumerate(counts):
        drawn = rng.choice(candidates, size=min(count, len(candidates)), replace=False, p=weights)
        direct[row, drawn] = True
        X[row] += signal * prototypes[drawn].mean(axis=0)
    Y = hierarchy.close(direct)
    names = [f"x{i}" for i in range(n_features)]
    return HMCDataset(X.astype(np.float32), Y, hierarchy, names, "synthetic", "all")


def train_test_split(dataset: HMCDataset, test_fraction: float = 0.3, seed: int = 0) -> tuple[HMCDataset, HMCDataset]:
    """A seeded random split into (train, test)."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    n_test = int(round(test_fraction * len(dataset)))
    return dataset.subset(np.sort(order[n_test:]), "train"), dataset.subset(np.sort(order[:n_test]), "test")
