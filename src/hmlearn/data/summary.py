"""Descriptive statistics of a dataset split: what `hmlearn datasets info` prints."""

from __future__ import annotations

import numpy as np

from hmlearn.data.dataset import HMCDataset

FREQUENCY_BUCKETS = (1, 5, 20, 100)


def split_summary(dataset: HMCDataset) -> dict[str, float | int | str]:
    """Samples, features, nodes, depth, label cardinality and node-frequency counts of one split."""
    hierarchy = dataset.hierarchy
    Y = dataset.Y[:, hierarchy.evaluated]
    positives = Y.sum(axis=0)
    edges = (0, *FREQUENCY_BUCKETS, np.inf)
    buckets = {}
    for low, high in zip(edges[:-1], edges[1:]):
        label = f"nodes {low}" if high == low + 1 else (f"nodes >={low}" if np.isinf(high) else f"nodes {low}-{int(high) - 1}")
        buckets[label] = int(np.sum((positives >= low) & (positives < high)))
    return {
        "split": dataset.split,
        "samples": dataset.n_samples,
        "features": dataset.n_features,
        "nodes": len(hierarchy),
        "evaluated nodes": int(hierarchy.evaluated.sum()),
        "depth": hierarchy.max_depth,
        "label cardinality": round(float(Y.sum(axis=1).mean()), 2) if len(Y) else 0.0,
        "missing values": int(np.isnan(dataset.X).sum()),
        "median positives per node": float(np.median(positives)) if len(positives) else 0.0,
        **buckets,
    }
