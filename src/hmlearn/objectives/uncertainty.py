"""Ensemble uncertainty measures (METHOD.md section 5), each a pure function of (H, B, N) probabilities.

Every measure returns (B, N) values in [0, 1], computed with gradients stopped (they weight
the loss; they are not trained). Base-2 logarithms, so a fair coin has entropy 1.
With one head (H = 1) only ``mean``, ``predictive`` and ``aleatoric`` are defined.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from hmlearn.errors import HMLError

EPS = 1e-7


def _clamped(p: Tensor) -> Tensor:
    return p.detach().clamp(EPS, 1 - EPS)


def binary_entropy(p: Tensor) -> Tensor:
    """H2(p) = -p log2 p - (1-p) log2 (1-p), in [0, 1]."""
    p = _clamped(p)
    return -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))


def margin(p: Tensor) -> Tensor:
    """``mean``: u = 1 - |2 pbar - 1| (1 at pbar = 0.5, 0 at pbar in {0, 1})."""
    return 1 - (2 * p.detach().mean(dim=0) - 1).abs()


def predictive(p: Tensor) -> Tensor:
    """``predictive`` (binary BMA entropy, bBMA): u = H2(pbar)."""
    return binary_entropy(p.detach().mean(dim=0))


def aleatoric(p: Tensor) -> Tensor:
    """``aleatoric``: u = mean_h H2(p^h), the expected entropy of the members."""
    return binary_entropy(p).mean(dim=0)


def _bernoulli_kl(a: Tensor, b: Tensor) -> Tensor:
    """KL(Bern(a) || Bern(b)) in bits."""
    return a * torch.log2(a / b) + (1 - a) * torch.log2((1 - a) / (1 - b))


def _pairwise_mean(p: Tensor, divergence: Callable[[Tensor, Tensor], Tensor], symmetric: bool = False) -> Tensor:
    """Mean of ``divergence(p^a, p^b)`` over ordered pairs of distinct heads a != b.

    ``symmetric``: ``divergence(x, y)`` equals ``divergence(y, x)`` bit for bit, so each
    unordered pair is computed once and counted twice (the same floats, half the work).
    """
    p = _clamped(p)
    H = p.shape[0]
    a, b = torch.triu_indices(H, H, offset=1, device=p.device)
    forward = divergence(p[a], p[b])
    backward = forward if symmetric else divergence(p[b], p[a])
    return (forward + backward).sum(dim=0) / (H * (H - 1))


def epistemic(p: Tensor) -> Tensor:
    """``epistemic``: mean over ordered head pairs of the Jensen-Shannon divergence (bits, in [0, 1])."""

    def js(x: Tensor, y: Tensor) -> Tensor:
        m = (x + y) / 2
        return 0.5 * _bernoulli_kl(x, m) + 0.5 * _bernoulli_kl(y, m)

    # js(x, y) == js(y, x) exactly: x + y and the final sum are commutative in floating point
    return _pairwise_mean(p, js, symmetric=True).clamp(0, 1)


def epistemic_kl(p: Tensor) -> Tensor:
    """``epistemic_kl``: mean over ordered head pairs of KL(p^a || p^b) in bits, clipped to [0, 1]."""
    return _pairwise_mean(p, _bernoulli_kl).clamp(0, 1)


def gated(p: Tensor, eps: float = 1e-6) -> Tensor:
    """``gated`` (variance-gated margin, GMU): u = 1 - gate * m.

    m = |2 pbar - 1| (confidence), s = unbiased std over heads, gate = 1 - exp(-m / (2 s + eps)):
    heads that agree (s -> 0) keep the confidence (u -> 1 - m); heads that disagree gate it
    away (u -> 1).
    """
    p = p.detach()
    m = (2 * p.mean(dim=0) - 1).abs()
    s = _std_over_heads(p)
    gate = 1 - torch.exp(-m / (2 * s + eps))
    return 1 - gate * m


def _std_over_heads(p: Tensor) -> Tensor:
    """``p.std(dim=0, unbiased=True)`` bit for bit, several times faster for a few heads.

    torch's CPU kernel runs Welford's update in float64 one element at a time, ~40 ns per value
    (5 ms for 4 x 64 x 500); here the same float64 updates run over whole (B, N) slices, one
    head after another, in the kernel's order, then the same sqrt and cast.
    """
    x = p.to(torch.float64)
    mean = torch.zeros(x.shape[1:], dtype=torch.float64, device=x.device)
    m2 = torch.zeros_like(mean)
    for k in range(x.shape[0]):
        delta = x[k] - mean
        mean = mean + delta / (k + 1)
        m2 = m2 + delta * (x[k] - mean)
    return (m2 / (x.shape[0] - 1)).sqrt().to(p.dtype)


MEASURES: dict[str, Callable[[Tensor], Tensor]] = {
    "mean": margin,
    "predictive": predictive,
    "aleatoric": aleatoric,
    "epistemic": epistemic,
    "epistemic_kl": epistemic_kl,
    "gated": gated,
}
SINGLE_HEAD_MEASURES = ("mean", "predictive", "aleatoric")


def uncertainty(p: Tensor, measure: str) -> Tensor:
    """(H, B, N) head probabilities -> (B, N) uncertainty in [0, 1] (no gradient)."""
    if measure not in MEASURES:
        raise HMLError(f"unknown uncertainty measure {measure!r}; choose from {', '.join(MEASURES)}")
    if p.dim() != 3:
        raise HMLError(f"uncertainty expects (heads, batch, nodes) probabilities, got shape {tuple(p.shape)}")
    if p.shape[0] < 2 and measure not in SINGLE_HEAD_MEASURES:
        raise HMLError(
            f"uncertainty {measure!r} needs at least 2 heads (it measures disagreement); "
            f"with one head use {', '.join(SINGLE_HEAD_MEASURES)}"
        )
    with torch.no_grad():
        return MEASURES[measure](p).clamp(0, 1)
