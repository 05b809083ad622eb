"""Node-wise imbalance weights (METHOD.md section 4): rare *nodes*, not rare samples.

From the training labels, a positive-side and a negative-side weight per node; the loss term
of node i for sample b is multiplied by the table that ``y[b, i]`` selects. Which label side
each table multiplies is an explicit option (``side``), because the published code applies
the rare-node (positive-count) weights to the y = 0 terms. The rare-node sweep
(configs/rare-nodes.yaml) settled it: that "published" side gives the recall and F1 gains at no
AU(PRC) cost, the "positive" side loses recall, so "published" is the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from hmlearn.errors import HMLError
from hmlearn.hierarchy import Hierarchy

Mode = Literal["class-wise", "binary"]
Side = Literal["positive", "published"]


def node_positive_counts(Y: np.ndarray, hierarchy: Hierarchy, descendant_sum: bool = False) -> np.ndarray:
    """(N,) positives per node; with ``descendant_sum`` also summed over D(i).

    METHOD.md reads the published code as summing over D(i); plain counts are the default
    because they reproduce the published code's measured figures (configs/rare-nodes.yaml).
    """
    counts = np.asarray(Y, dtype=bool).sum(axis=0).astype(np.float64)
    return hierarchy.descendant_matrix @ counts if descendant_sum else counts


def balanced_weights(counts: np.ndarray, n_samples: int, mode: Mode = "class-wise") -> np.ndarray:
    """w_i = S / (C n_i), C = 2 (``binary``) or N (``class-wise``); w_i = 1 where n_i = 0 or n_i = S."""
    if mode not in ("class-wise", "binary"):
        raise HMLError(f"unknown node-weight mode {mode!r}; choose 'class-wise' or 'binary'")
    C = 2 if mode == "binary" else len(counts)
    degenerate = (counts <= 0) | (counts >= n_samples)
    with np.errstate(divide="ignore"):
        weights = np.where(degenerate, 1.0, n_samples / (C * np.maximum(counts, 1e-12)))
    return weights


def rescale(weights: np.ndarray, omega: float) -> np.ndarray:
    """w'_i = omega + max(w) (w_i - min(w)) / (max(w) - min(w)); all omega... if w is constant."""
    low, high = weights.min(), weights.max()
    if high - low < 1e-12:
        return np.full_like(weights, omega + high)
    return omega + high * (weights - low) / (high - low)


@dataclass
class NodeWeights:
    """Per-node loss weights for positive (y = 1) and negative (y = 0) terms, (N,) each."""

    positive: np.ndarray
    negative: np.ndarray
    side: Side = "published"
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # (dtype, device) -> tensors

    @classmethod
    def fit(
        cls,
        Y: np.ndarray,
        hierarchy: Hierarchy,
        mode: Mode = "class-wise",
        omega: float = 0.25,
        descendant_sum: bool = False,
        negative_weights: bool = False,
        side: Side = "published",
        root_in_rescale: bool = False,
    ) -> NodeWeights:
        """Tables from the training labels ``Y`` (S, N).

        ``negative_weights``: also weight the y = 0 terms by the same formula on negative
        counts (S - n_i); otherwise they weigh 1. ``side="published"`` swaps the tables, as the
        published code does (rare-node weights on the y = 0 terms). ``root_in_rescale``: the root
        nodes' weights (1: every sample is positive there) take part in the min / max rescale and
        are rescaled too, as in the published table; otherwise only evaluated nodes are weighted.
        """
        if side not in ("positive", "published"):
            raise HMLError(f"unknown weight side {side!r}; choose 'positive' or 'published'")
        Y = np.asarray(Y, dtype=bool)
        S = len(Y)
        evaluated = np.arange(len(hierarchy)) if root_in_rescale else hierarchy.evaluated
        positives = node_positive_counts(Y, hierarchy, descendant_sum)
        positive = np.ones(len(hierarchy))
        positive[evaluated] = rescale(balanced_weights(positives[evaluated], S, mode), omega)
        negative = np.ones(len(hierarchy))
        if negative_weights:
            negatives = np.clip(S - Y.sum(axis=0), 0, None).astype(np.float64)
            negative[evaluated] = rescale(balanced_weights(negatives[evaluated], S, mode), omega)
        return cls(positive, negative, side)

    def for_labels(self, y: Tensor) -> Tensor:
        """(B, N) weight of every loss term, chosen by the label value and ``side``."""
        key = (y.dtype, y.device)
        if key not in self._tables:  # converted once per dtype and device, not at every step
            on_one, on_zero = (self.positive, self.negative) if self.side == "positive" else (self.negative, self.positive)
            self._tables[key] = (torch.as_tensor(on_one, dtype=y.dtype, device=y.device),
                                 torch.as_tensor(on_zero, dtype=y.dtype, device=y.device))
        one, zero = self._tables[key]
        return y * one + (1 - y) * zero
