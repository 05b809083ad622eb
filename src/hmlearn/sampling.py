"""Observation-level baselines (METHOD.md section 7): hierarchical over-sampling, sample weights.

Both act on samples, not nodes, which is exactly what the rare-node objective argues against;
they are here so that claim can be measured.
"""

from __future__ import annotations

import numpy as np

from hmlearn.hierarchy import Hierarchy


def label_paths(Y: np.ndarray, hierarchy: Hierarchy) -> tuple[np.ndarray, np.ndarray]:
    """(path id per sample (S,), depth of each path (P,)): a path is a sample's full label set."""
    Y = np.asarray(Y, dtype=bool) & hierarchy.evaluated
    _, path_of, inverse = np.unique(np.packbits(Y, axis=1), axis=0, return_index=True, return_inverse=True)
    depth = np.array([hierarchy.depth[Y[i]].max(initial=0) for i in path_of])
    return inverse.reshape(-1), depth


def hierarchical_oversample(
    Y: np.ndarray, hierarchy: Hierarchy, budget: float = 0.1, seed: int = 0
) -> np.ndarray:
    """Row indices of an over-sampled training set: the original rows, then duplicates.

    Paths (distinct label sets) whose imbalance ratio ``max_count / count`` exceeds the mean
    ratio are minority paths; they are topped up towards the mean path size, deepest first,
    by duplicating random samples of the path, until ``budget * S`` new rows are added.
    """
    rng = np.random.default_rng(seed)
    path, depth = label_paths(Y, hierarchy)
    counts = np.bincount(path)
    ratio = counts.max() / counts
    minority = np.flatnonzero(ratio > ratio.mean())
    target = int(np.ceil(counts.mean()))
    remaining = int(round(budget * len(Y)))
    extra: list[np.ndarray] = []
    for p in minority[np.lexsort((counts[minority], -depth[minority]))]:  # deepest, then rarest, first
        if remaining <= 0:
            break
        need = min(max(target - counts[p], 0), remaining)
        if need:
            extra.append(rng.choice(np.flatnonzero(path == p), size=need, replace=True))
            remaining -= need
    return np.concatenate([np.arange(len(Y)), *extra]) if extra else np.arange(len(Y))


def inverse_frequency_sample_weights(Y: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """(S,) weights: mean inverse frequency ``S / n_i`` of each sample's labels, normalised to mean 1."""
    Y = np.asarray(Y, dtype=bool) & hierarchy.evaluated
    counts = np.maximum(Y.sum(axis=0), 1)
    inverse = len(Y) / counts
    per_sample = (Y * inverse).sum(axis=1) / np.maximum(Y.sum(axis=1), 1)
    per_sample[Y.sum(axis=1) == 0] = 1.0
    return per_sample / per_sample.mean()
