"""The training objective: MCLoss x node weights x focal weight from ensemble uncertainty.

METHOD.md section 6::

    loss = mean_{h, b, i}  W[b, i] * L^h[b, i] * (gamma_min + u[b, i] ** k)

``L^h`` is head h's MCLoss (evaluated nodes), ``W`` the node-weight table selected by the
label (section 4, or 1), ``u`` an uncertainty measure of the heads' probabilities before the
MCM (section 5, gradients stopped; the focal factor is 1 when off). The published focal code
sums where we average (``reduction="sum"`` does as it does): Adam ignores the loss scale, but
not its coupled L2 weight decay, which a sum makes about H x B x N times weaker (METHOD.md 6),
and which the mean over H heads makes H times stronger for each head (``reduction="per-head"``
sums the heads' means instead). Every part switches off on its own, so the
paper's ablations (weights only, focal only, both) are configurations, not code.

The section 7 baselines ride on the same terms: standard focal loss ``(1 - p_t) ** gamma`` on
the MCLoss terms, per-sample weights, and the weight schedulers and mixed loss, which are all
one operation, a blend of the node weights towards 1: ``W_eff = 1 + a * (W - 1)`` with
``a = lambda`` (mixed loss) or ``a = 1 - s(progress through the epoch)`` (schedulers).
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
SCHEDULERS = ("linear", "polynomial", "alternating")
REDUCTIONS = ("mean", "sum", "per-head")


@dataclass
class Objective:
    """A callable loss over (H, B, N) head probabilities and (B, N) labels."""

    constraint: MaxConstraint
    base: str = "mcloss"  # "mcloss", or "bce": flat baseline that ignores the hierarchy in training
    node_weights: NodeWeights | None = None
    focal: str | None = None  # an uncertainty measure name, or None
    focal_k: float = 2.0
    focal_min: float = 0.25
    focal_gamma: float = 0.0  # standard focal loss (Lin et al.) on the MCLoss terms; 0 = off
    scheduler: str | None = None  # move node weights towards 1 within each epoch
    scheduler_power: float = 2.0
    mixed_lambda: float | None = None  # lambda * weighted + (1 - lambda) * plain
    reduction: str = "mean"  # "mean"; "sum" over heads, samples and nodes (the published focal code); "per-head"

    def __post_init__(self) -> None:
        if self.base not in OBJECTIVES:
            raise HMLError(f"unknown objective {self.base!r}; choose from {', '.join(OBJECTIVES)}")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise HMLError(f"unknown scheduler {self.scheduler!r}; choose from {', '.join(SCHEDULERS)}")
        if self.reduction not in REDUCTIONS:
            raise HMLError(f"unknown loss reduction {self.reduction!r}; choose from {', '.join(REDUCTIONS)}")
        if (self.scheduler or self.mixed_lambda is not None) and self.node_weights is None:
            raise HMLError("a weight scheduler or mixed loss needs node weights (--node-weights)")

    def weight_strength(self, progress: float = 0.0, step: int = 0) -> float:
        """``a`` in ``W_eff = 1 + a (W - 1)``: 1 = full node weights, 0 = unweighted."""
        if self.mixed_lambda is not None:
            return float(self.mixed_lambda)
        if self.scheduler == "linear":
            return 1.0 - progress
        if self.scheduler == "polynomial":
            return 1.0 - progress**self.scheduler_power
        if self.scheduler == "alternating":
            return 1.0 if step % 2 == 0 else 0.0
        return 1.0

    def per_term(self, p: Tensor, y: Tensor, sample_weight: Tensor | None = None,
                 progress: float = 0.0, step: int = 0) -> Tensor:
        """(H, B, N_eval) weighted loss terms.

        ``progress`` in [0, 1) is the position in the epoch and ``step`` the batch number,
        for the schedulers; ``sample_weight`` (B,) weights whole samples.
        """
        H, B, N = p.shape
        evaluated = self.constraint.evaluated_index
        flat, labels = p.reshape(H * B, N), y.repeat(H, 1)
        if self.base == "mcloss":
            terms = mc_loss(flat, labels, self.constraint)
        else:
            terms = torch.nn.functional.binary_cross_entropy(flat[:, evaluated], labels[:, evaluated], reduction="none")
        terms = terms.reshape(H, B, -1)
        if self.focal_gamma:
            terms = terms * (1 - torch.exp(-terms)) ** self.focal_gamma  # p_t = exp(-BCE)
        if self.node_weights is not None:
            W = self.node_weights.for_labels(y).index_select(1, evaluated)
            strength = self.weight_strength(progress, step)
            terms = terms * (1 + strength * (W - 1)) if strength != 1.0 else terms * W
        if self.focal is not None:
            u = uncertainty(p, self.focal).index_select(1, evaluated)
            terms = terms * (self.focal_min + u**self.focal_k)
        if sample_weight is not None:
            terms = terms * sample_weight.reshape(1, B, 1)
        return terms

    def __call__(self, p: Tensor, y: Tensor, sample_weight: Tensor | None = None,
                 progress: float = 0.0, step: int = 0) -> Tensor:
        """Scalar mean of :meth:`per_term`; with ``reduction="sum"`` its sum; with ``"per-head"`` the sum over
        heads of each head's mean, so that the gradient each head gets, against its coupled weight decay, is a
        single network's (the mean over heads divides it by H)."""
        terms = self.per_term(p, y, sample_weight, progress, step)
        if self.reduction == "sum":
            return terms.sum()
        if self.reduction == "per-head":
            return terms.mean(dim=(1, 2)).sum()
        return terms.mean()
