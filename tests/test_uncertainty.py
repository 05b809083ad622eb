from __future__ import annotations

import math

import pytest
import torch

from hmlearn.errors import HMLError
from hmlearn.objectives.uncertainty import MEASURES, uncertainty


def heads(*values: float) -> torch.Tensor:
    """(H, 1, 1) tensor: one sample, one node, H heads."""
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1)


@pytest.mark.parametrize(
    ("measure", "p", "expected"),
    [
        ("mean", heads(0.2, 0.6), 0.8),
        ("mean", heads(0.5), 1.0),
        ("mean", heads(1.0), 0.0),
        ("predictive", heads(0.5), 1.0),
        ("predictive", heads(0.1, 0.4), -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))),
        ("aleatoric", heads(0.5, 1.0), 0.5),
        ("epistemic", heads(0.3, 0.3, 0.3), 0.0),
        ("epistemic", heads(0.0, 1.0), 1.0),
        ("epistemic_kl", heads(0.5, 0.25), (0.5 - 0.5 * math.log2(1.5) + (-0.25 + 0.75 * math.log2(1.5))) / 2),
        ("epistemic_kl", heads(0.01, 0.99), 1.0),  # KL above one bit is clipped
        ("gated", heads(0.9, 0.9), 0.2),  # agreeing heads keep their confidence: u = 1 - m
        ("gated", heads(0.1, 0.9), 1.0),  # pbar = 0.5: no confidence to keep
    ],
)
def test_hand_computed_values(measure, p, expected):
    assert uncertainty(p, measure).item() == pytest.approx(expected, abs=2e-5)


def test_gated_disagreement_raises_uncertainty_above_the_margin():
    agree, disagree = heads(0.8, 0.8), heads(0.6, 1.0)  # same mean 0.8
    assert uncertainty(agree, "gated").item() == pytest.approx(1 - 0.6, abs=1e-6)
    assert uncertainty(disagree, "gated").item() > uncertainty(agree, "gated").item() + 0.1


@pytest.mark.parametrize("measure", list(MEASURES))
def test_bounded_shaped_and_gradient_free(measure):
    torch.manual_seed(0)
    logits = torch.randn(4, 8, 30, requires_grad=True) * 4
    p = torch.sigmoid(logits)
    u = uncertainty(p, measure)
    assert u.shape == (8, 30) and not u.requires_grad
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0


@pytest.mark.parametrize("measure", ["epistemic", "epistemic_kl", "gated"])
def test_disagreement_measures_refuse_one_head(measure):
    with pytest.raises(HMLError, match="needs at least 2 heads"):
        uncertainty(heads(0.3), measure)


def test_unknown_measure_and_wrong_shape():
    with pytest.raises(HMLError, match="unknown uncertainty measure 'bald'"):
        uncertainty(heads(0.3, 0.4), "bald")
    with pytest.raises(HMLError, match=r"\(heads, batch, nodes\)"):
        uncertainty(torch.rand(3, 4), "mean")


def test_cli_lists_every_measure():
    from hmlearn.training.config import UNCERTAINTY_MEASURES

    assert tuple(MEASURES) == UNCERTAINTY_MEASURES
