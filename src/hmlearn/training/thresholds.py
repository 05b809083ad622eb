"""Decision thresholds tuned on held-out predictions, so that rare nodes are predicted at all.

A node seen 5 times in training rarely gets a probability near 0.5: a fixed threshold of 0.5
leaves it unpredicted. Here one threshold per group of nodes is chosen to maximise the
node-macro F1 on a validation split (never the test split):

- ``global``: one threshold for every node;
- ``depth``: one per depth of the hierarchy;
- ``frequency``: one per training-frequency bucket (``<5``, ``5-19``, ``20-99``, ``>=100``
  training positives, the buckets of metrics.recall_by_frequency);
- ``node``: one per node, shrunk towards its frequency bucket's by the node's number of
  validation positives: ``t = (n t_node + k t_bucket) / (n + k)``, ``k = SHRINKAGE``.

Coherence: with the MCM a parent's probability is never below its child's, so thresholds that
never increase towards the root keep every predicted set closed upwards. Each node's threshold
is therefore lowered to the smallest threshold among its descendants.
"""

from __future__ import annotations

import numpy as np

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy
from hmlearn.training.config import THRESHOLD_MODES

GRID = np.unique(np.concatenate([np.geomspace(0.005, 0.5, 40), np.linspace(0.5, 0.9, 9)]))
"""Candidate thresholds: dense where rare nodes' probabilities live."""
FREQUENCY_BUCKETS = (5, 20, 100)
SHRINKAGE = 10.0


def node_f1_grid(Y: np.ndarray, P: np.ndarray, columns: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """(len(grid), len(columns)) F1 of each node at each candidate threshold (0 where undefined)."""
    truth = np.asarray(Y[:, columns], dtype=bool)
    positives = truth.sum(axis=0)
    scores = P[:, columns]
    f1 = np.zeros((len(grid), len(columns)))
    for g, threshold in enumerate(grid):
        predicted = scores >= threshold
        tp = np.count_nonzero(predicted & truth, axis=0)
        denominator = predicted.sum(axis=0) + positives
        f1[g] = np.divide(2 * tp, denominator, out=np.zeros(len(columns)), where=denominator > 0)
    return f1


def frequency_bucket(train_counts: np.ndarray, edges=FREQUENCY_BUCKETS) -> np.ndarray:
    """(N,) bucket index of each node by its training positives: 0 for ``< edges[0]``, ..."""
    return np.searchsorted(np.asarray(edges), train_counts, side="right")


def tune_thresholds(Y_valid: np.ndarray, P_valid: np.ndarray, hierarchy: Hierarchy, train_Y: np.ndarray,
                    mode: str) -> np.ndarray:
    """(N,) thresholds maximising node-macro F1 on (Y_valid, P_valid), by ``mode``, made coherent."""
    if mode not in THRESHOLD_MODES:
        raise HMLError(f"unknown threshold mode {mode!r}; choose from {', '.join(THRESHOLD_MODES)}")
    thresholds = np.full(len(hierarchy), 0.5)
    if mode == "fixed":
        return thresholds
    if len(Y_valid) == 0:
        raise HMLError("tuning thresholds needs validation samples; the validation split is empty")
    columns = np.flatnonzero(hierarchy.evaluated)
    f1 = node_f1_grid(Y_valid, P_valid, columns)
    present = np.asarray(Y_valid[:, columns], dtype=bool).any(axis=0)
    buckets = frequency_bucket(np.asarray(train_Y, dtype=bool)[:, columns].sum(axis=0))
    if mode == "global":
        groups = np.zeros(len(columns), dtype=np.int64)
    elif mode == "depth":
        groups = hierarchy.depth[columns]
    else:
        groups = buckets
    chosen = _best_per_group(f1, present, groups)
    if mode == "node":
        n = np.asarray(Y_valid[:, columns], dtype=bool).sum(axis=0)
        own = GRID[np.argmax(f1, axis=0)]
        chosen = np.where(present, (n * own + SHRINKAGE * chosen) / (n + SHRINKAGE), chosen)
    thresholds[columns] = chosen
    return coherent_thresholds(thresholds, hierarchy)


def _best_per_group(f1: np.ndarray, present: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per node, the grid threshold maximising its group's mean F1 over nodes present in validation
    (0.5 for a group with none present). Ties go to the highest threshold (fewest false positives)."""
    chosen = np.full(f1.shape[1], 0.5)
    for group in np.unique(groups):
        members = groups == group
        used = members & present
        if not used.any():
            continue
        mean = f1[:, used].mean(axis=1)
        best = len(GRID) - 1 - int(np.argmax(mean[::-1]))
        chosen[members] = GRID[best]
    return chosen


def coherent_thresholds(thresholds: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """Each node's threshold lowered to the smallest among its descendants (children before parents)."""
    result = np.array(thresholds, dtype=np.float64)
    for node in hierarchy.topological_order[::-1]:
        for child in hierarchy.children[node]:
            result[node] = min(result[node], result[child])
    return result
