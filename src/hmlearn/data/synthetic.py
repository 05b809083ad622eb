"""Synthetic hierarchies and hierarchical multi-label data, for tests and the offline demo."""

from __future__ import annotations

import numpy as np

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
