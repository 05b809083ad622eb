"""The C-HMCNN network (METHOD.md section 10) as H independent heads evaluated in one pass.

Each head is the published MLP: ``num_layers`` linear layers, an activation and dropout
between them, one output per hierarchy node. The heads' weights are stacked as (H, in, out)
so every layer is one batched matmul across heads, not a Python loop; H = 1 is plain
C-HMCNN. Each head is initialised independently like ``torch.nn.Linear``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ACTIVATIONS = {"relu": nn.functional.relu, "gelu": nn.functional.gelu, "tanh": torch.tanh, "elu": nn.functional.elu}


class StackedLinear(nn.Module):
    """H linear layers applied to H inputs at once: (H, B, in) -> (H, B, out)."""

    def __init__(self, heads: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(heads, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(heads, 1, out_features))
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        # nn.Linear's default: kaiming_uniform(a=sqrt(5)) for weights == U(-1/sqrt(in), 1/sqrt(in)), same for bias
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class HeadsMLP(nn.Module):
    """H C-HMCNN MLPs side by side: (B, F) features -> (H, B, N) logits."""

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        hidden_dim: int = 500,
        num_layers: int = 3,
        dropout: float = 0.7,
        activation: str = "relu",
        heads: int = 1,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        if num_layers < 1 or heads < 1:
            raise ValueError("num_layers and heads must be at least 1")
        sizes = [n_features] + [hidden_dim] * (num_layers - 1) + [n_outputs]
        self.layers = nn.ModuleList(StackedLinear(heads, a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)
        self.heads = heads

    @staticmethod
    def parameter_shapes(n_features: int, n_outputs: int, hidden_dim: int, num_layers: int,
                         heads: int) -> dict[str, tuple[int, ...]]:
        """The state dict's tensor shapes for these sizes, computed without building anything (so a
        checkpoint's claimed sizes can be checked before any memory is allocated)."""
        sizes = [n_features] + [hidden_dim] * (num_layers - 1) + [n_outputs]
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"layers.{i}.weight"] = (heads, a, b)
            shapes[f"layers.{i}.bias"] = (heads, 1, b)
        return shapes

    def forward(self, x: Tensor) -> Tensor:
        h = x.unsqueeze(0).expand(self.heads, -1, -1)
        for layer in self.layers[:-1]:
            h = self.dropout(self.activation(layer(h)))
        return self.layers[-1](h)
