"""Row splits that keep the hierarchy's rare nodes: stratified train/test and limited-data subsets.

A plain random split can leave a rare leaf with no training example, and a 10% subsample drops
it for good; the objectives of this package exist for exactly those nodes. So rows are
stratified: each row's stratum is its rarest positive node (ties: the deeper, then the first in
hierarchy order), which for a tree is one of its most specific labels, and the one a random
split is likeliest to lose. Each stratum gives its share to the split, rounded so that the total
is exact (largest remainder, ties broken by the seed); then every node that has an example keeps
one in the training rows, even where strata of multi-label rows would have taken them all.

Everything is a pure function of ``(Y, hierarchy, fraction, seed)``: the same arguments give the
same rows. Rows come back sorted, as int64 indices. It serves tabular and image data alike.
"""

from __future__ import annotations

import numpy as np

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy

_CHUNK = 1 << 16  # rows per block when ranking, so (S, N) never materialises at once


def strata(Y: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """(S,) int64: each row's rarest positive evaluated node (ties: deeper, then lower index); -1 for none."""
    Y = _labels(Y, hierarchy)
    n = len(hierarchy)
    order = np.lexsort((np.arange(n), -hierarchy.depth, Y.sum(axis=0)))  # rarest first, then deepest
    rank = np.empty(n, dtype=np.int32)
    rank[order] = np.arange(n, dtype=np.int32)
    rank[~hierarchy.evaluated] = n  # never a stratum
    result = np.empty(len(Y), dtype=np.int64)
    for start in range(0, len(Y), _CHUNK):
        ranked = np.where(Y[start : start + _CHUNK], rank, n)
        best = ranked.min(axis=1)
        result[start : start + _CHUNK] = np.where(best < n, order[np.minimum(best, n - 1)], -1)
    return result


def stratified_split(
    Y: np.ndarray, hierarchy: Hierarchy, test_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, test_rows): disjoint, together every row, ``round(test_fraction * S)`` test rows.

    Each stratum sends its share to test (within one row of ``test_fraction`` of its size) but
    keeps at least one row in train, so a node seen once is trained on, not only tested; then
    every node with an example gets one in train (moved from test where needed).
    """
    Y = _labels(Y, hierarchy)
    if not 0.0 < test_fraction < 1.0:
        raise HMLError(f"the test fraction must lie strictly between 0 and 1, got {test_fraction}")
    if len(Y) < 2:
        raise HMLError(f"{len(Y)} row(s) cannot be split into train and test; at least 2 are needed")
    rng = np.random.default_rng(seed)
    groups, sizes, shuffled = _grouped(Y, hierarchy, rng)
    total = min(max(round(test_fraction * len(Y)), 1), len(Y) - 1)
    counts = _allocate(sizes, test_fraction, total, np.zeros_like(sizes), sizes - 1, rng)
    test = np.zeros(len(Y), dtype=bool)
    test[_first_of_each(shuffled, groups, counts)] = True
    train = _covering(Y, ~test, rng)
    if train.all():  # only possible when every row was needed in train to cover some node
        raise HMLError(f"no test rows are left: each of the {len(Y)} rows holds a node no other row has")
    return np.flatnonzero(train), np.flatnonzero(~train)


def training_fraction(Y: np.ndarray, hierarchy: Hierarchy, fraction: float, seed: int = 0) -> np.ndarray:
    """Rows of a limited-data run: about ``fraction`` of them, every stratum and node kept.

    Each stratum keeps ``fraction`` of its rows (at least one), the total ``round(fraction * S)``
    where those minimums allow; then every node with an example keeps one, so a rare leaf
    survives a 10% subsample. ``fraction`` 1.0 returns every row. ``fraction`` must be in (0, 1].
    """
    Y = _labels(Y, hierarchy)
    if not 0.0 < fraction <= 1.0:
        raise HMLError(f"the training fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0 or len(Y) == 0:
        return np.arange(len(Y), dtype=np.int64)
    rng = np.random.default_rng(seed)
    groups, sizes, shuffled = _grouped(Y, hierarchy, rng)
    total = max(round(fraction * len(Y)), 1)
    counts = _allocate(sizes, fraction, total, np.ones_like(sizes), sizes, rng)
    kept = np.zeros(len(Y), dtype=bool)
    kept[_first_of_each(shuffled, groups, counts)] = True
    return np.flatnonzero(_covering(Y, kept, rng))


def _labels(Y: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    Y = np.asarray(Y, dtype=bool)
    if Y.ndim != 2 or Y.shape[1] != len(hierarchy):
        raise ValueError(f"label matrix has shape {Y.shape}, expected (samples, {len(hierarchy)})")
    return Y


def _grouped(Y: np.ndarray, hierarchy: Hierarchy, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(group of each row in shuffled order, group sizes, rows shuffled then stably grouped)."""
    _, group_of_row = np.unique(strata(Y, hierarchy), return_inverse=True)
    permutation = rng.permutation(len(Y))
    shuffled = permutation[np.argsort(group_of_row[permutation], kind="stable")]
    return group_of_row[shuffled], np.bincount(group_of_row), shuffled


def _first_of_each(shuffled: np.ndarray, groups: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The first ``counts[g]`` rows of every group ``g`` of the grouped, shuffled rows."""
    starts = np.searchsorted(groups, np.arange(len(counts)))
    position = np.arange(len(shuffled)) - starts[groups]
    return shuffled[position < counts[groups]]


def _allocate(
    sizes: np.ndarray, fraction: float, total: int, low: np.ndarray, high: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Per-group counts in ``[low, high]``, each within one of ``fraction * size``, summing to ``total``
    where the bounds allow (largest remainder; ties broken at random)."""
    exact = fraction * sizes
    counts = np.clip(np.floor(exact).astype(np.int64), low, high)
    tiebreak = rng.random(len(sizes))
    while (gap := total - int(counts.sum())) != 0:
        room = counts < high if gap > 0 else counts > low
        if not room.any():
            break
        preference = np.where(room, (exact - counts) if gap > 0 else (counts - exact), -np.inf)
        chosen = np.lexsort((tiebreak, -preference))[: min(abs(gap), int(room.sum()))]
        counts[chosen] += 1 if gap > 0 else -1
    return counts


def _covering(Y: np.ndarray, chosen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``chosen`` plus, for each node positive somewhere but in no chosen row, one random row holding it
    (rarest nodes first, so one added row covers its ancestors too)."""
    chosen = chosen.copy()
    counts = Y.sum(axis=0)
    covered = Y[chosen].any(axis=0)
    for node in np.argsort(counts, kind="stable"):
        if counts[node] == 0 or covered[node]:
            continue
        rows = np.flatnonzero(Y[:, node] & ~chosen)
        row = rows[rng.integers(len(rows))]
        chosen[row] = True
        covered |= Y[row]
    return chosen
