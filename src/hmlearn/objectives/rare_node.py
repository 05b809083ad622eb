"""The training objective: MCLoss x node weights x focal weight from ensemble uncertainty.

METHOD.md section 6::

    loss = mean_{h, b, i}  W[b, i] * L^h[b, i] * (gamma_min + u[b, i] ** k)

``L^h`` is head h's MCLoss (evaluated nodes), ``W`` the node-weight table selected by the
label (section 4, or 1), ``u`` an uncertainty measure of the heads' probabilities before the
MCM (section 5, gradients stopped; the focal factor is 1 when off). The published code sums
where we average: only the learning rate's scale differs, and a mean keeps the published
learning rates meaningful across batch sizes. Every part switches off on its own, so the
paper's ablations (weights only, focal only, both) are configurations, not code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hmlearn.errors import HMLError
from hmlearn.nn.constraint import MaxConstraint, mc_loss
from hmlearn.objectives.uncertainty import uncertainty
from hmlearn.objectives.weights import NodeWeights

OBJECTIVES = ("mcloss", "bce")


@dataclass
class Objective:
    """A callable loss over (H, B, N) head probabilities and (B, N) labels."""

    constraint: MaxConstraint
    base: str = "mcloss"  # "mcloss", or "bce": flat baseline that ignores the hierarchy in training
    node_weights: NodeWeights | None = None
    focal: str | None = None  # an uncertainty measure name, or None
    focal_k: float = 2.0
    focal_min: float = 0.25

    def __post_init__(self) -> None:
        if self.base not in OBJECTIVES:
            raise HMLError(f"unknown objective {self.base!r}; choose from {', '.join(OBJECTIVES)}")

    def per_term(self, p: Tensor, y: Tensor) -> Tensor:
        """(H, B, N_eval) weighted loss terms."""
        H, B, N = p.shape
        evaluated = self.constraint.evaluated_index
        flat, labels = p.reshape(H * B, N), y.repeat(H, 1)
        if self.base == "mcloss":
            terms = mc_loss(flat, labels, self.constraint)
        else:
            terms = torch.nn.functional.binary_cross_entropy(flat[:, evaluated], labels[:, evaluated], reduction="none")
        terms = terms.reshape(H, B, -1)
        if self.node_weights is not None:
            terms = terms * self.node_weights.for_labels(y).index_select(1, evaluated)
        if self.focal is not None:
            u = uncertainty(p, self.focal).index_select(1, evaluated)
            terms = terms * (self.focal_min + u**self.focal_k)
        return terms

    def __call__(self, p: Tensor, y: Tensor) -> Tensor:
        """Scalar mean of :meth:`per_term`."""
        return self.per_term(p, y).mean()
