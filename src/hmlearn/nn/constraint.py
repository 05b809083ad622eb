"""The max constraint module (MCM) and MCLoss of C-HMCNN (METHOD.md sections 2 and 3).

``mcm(p)[b, i] = max_{j in D(i)} p[b, j]``: a node scores at least as high as any of its
descendants, so the output is coherent (no child above its parent) by construction.

Three implementations of the same function, all differentiable and device-agnostic (every
index tensor is a buffer, so ``module.to(device)`` moves it):

- ``"dense"``: the reference. A dense (N, N) ``R`` and a max over ``R[None] * p[:, None, :]``:
  O(B N^2) time and memory, like the published code. Relies on ``p >= 0`` (the zeros that
  ``R`` puts in place of non-descendants must never win the max).
- ``"levels"``: one max-propagation pass per entry of :attr:`Hierarchy.levels` (children to
  parents, deepest first): a gather of the children and an out-of-place ``scatter_reduce``
  ``amax`` into the parents. O(B x edges) per pass, ``len(levels)`` passes.
- ``"pairs"``: one gather of ``p`` over every (ancestor, descendant) pair of ``R`` (diagonal
  left out: ``p`` itself is the starting value) and one ``scatter_reduce`` ``amax``.
  O(B x nnz(R)), a single pass.

Gradients: with distinct values every method routes the upstream gradient of ``out[b, i]`` to
the one ``p[b, j]`` that attains the max, so all three agree exactly. With ties they may split
it differently (``scatter_reduce`` shares it evenly, ``max(dim)`` picks one entry); the sum that
reaches each source is the same whenever the tied entries are copies of one source value.

Choice of ``"auto"`` (measured with ``bench/mcm_speed.py``, CPU, 1 torch thread, float32,
forward + backward of ``out.sum()``, median ms; 2-core machine shared with other jobs):

=========  =====  ======  =====  ======  =========
hierarchy  batch  dense   levels  pairs  pairs/lvl
=========  =====  ======  =====  ======  =========
derisi_FUN (N=500, 6 levels, nnz 2189)
           4      1.33    0.42    0.11   3.8x
           64     40.5    2.29    0.84   2.7x
spo_GO (N=4120, 14 levels, nnz 42653)
           4      109     1.89    0.82   2.3x
           64     11154   23.9    12.4   1.9x
=========  =====  ======  =====  ======  =========

``"pairs"`` wins everywhere measured (one big fused gather/scatter beats one launch and one
(B, N) copy per level), so ``"auto"`` is ``"pairs"``. Its extra memory, B x nnz(R) values and
int64 indices, stays small for real hierarchies (GO: 42,653 pairs against 17 M dense entries);
``"levels"`` remains available for hierarchies whose transitive closure is huge.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hmlearn.hierarchy import Hierarchy

METHODS = ("dense", "levels", "pairs")
AUTO_METHOD = "levels"  # see the module docstring for the measurements behind this choice
STACK_MAX_BATCH = 32  # mc_loss: up to this batch, a and c come from one stacked MCM call


class MaxConstraint(torch.nn.Module):
    """Coherent outputs: ``out[..., i] = max_{j in D(i)} p[..., j]``.

    Args:
        hierarchy: the node order and the descendant relation.
        method: ``"dense"`` (reference, O(B N^2)), ``"levels"``, ``"pairs"`` or ``"auto"``
            (the fastest measured, currently ``"pairs"``).

    Shapes: ``p`` is (..., N), typically (B, N); the output has the same shape and dtype.
    """

    def __init__(self, hierarchy: Hierarchy, method: str = "auto") -> None:
        super().__init__()
        if method == "auto":
            method = AUTO_METHOD
        if method not in METHODS:
            raise ValueError(f"unknown MCM method {method!r}; expected 'auto' or one of {METHODS}")
        self.hierarchy = hierarchy
        self.method = method
        self.n_nodes = len(hierarchy)
        evaluated = torch.as_tensor(hierarchy.evaluated, dtype=torch.bool)
        self.register_buffer("evaluated", evaluated, persistent=False)
        self.register_buffer("evaluated_index", torch.nonzero(evaluated).flatten(), persistent=False)
        self.register_buffer("node_index", torch.arange(self.n_nodes), persistent=False)

        if method == "dense":
            # bool keeps the buffer at N^2 bytes; the multiply promotes it to p's dtype.
            R = torch.as_tensor(hierarchy.descendant_matrix.toarray() != 0)
            self.register_buffer("R", R, persistent=False)
        elif method == "levels":
            self._level_count = len(hierarchy.levels)
            for k, level in enumerate(hierarchy.levels):
                level = torch.as_tensor(np.ascontiguousarray(level), dtype=torch.int64)
                self.register_buffer(f"level_parent_{k}", level[:, 0].contiguous(), persistent=False)
                self.register_buffer(f"level_child_{k}", level[:, 1].contiguous(), persistent=False)
        else:  # pairs
            R = hierarchy.descendant_matrix.tocoo()
            off_diagonal = R.row != R.col
            self.register_buffer("pair_ancestor", torch.as_tensor(R.row[off_diagonal], dtype=torch.int64), persistent=False)
            self.register_buffer("pair_descendant", torch.as_tensor(R.col[off_diagonal], dtype=torch.int64), persistent=False)

    def extra_repr(self) -> str:
        return f"n_nodes={self.n_nodes}, method={self.method!r}"

    def forward(self, p: Tensor) -> Tensor:
        if p.shape[-1] != self.n_nodes:
            raise ValueError(f"MCM input has {p.shape[-1]} columns, the hierarchy has {self.n_nodes} nodes")
        shape = p.shape
        p = p.reshape(-1, self.n_nodes)
        if self.method == "dense":
            return self._dense(p).reshape(shape)
        needs_grad = torch.is_grad_enabled() and p.requires_grad
        with torch.no_grad():
            # Node-major (N, B): gathering and scattering whole rows of B values is several
            # times faster on CPU than picking columns out of (B, N) (bench/mcm_speed.py).
            q = p.detach().t().contiguous()
            out = self._levels(q) if self.method == "levels" else self._pairs(q)
            if not needs_grad:
                return out.t().contiguous().reshape(shape)  # inference: the maxima are all we need
            source = self._levels_source(q, out) if self.method == "levels" else self._pairs_source(q, out)
        # out[b, i] == p[b, source[b, i]]: one differentiable gather carries the gradient
        # (a contiguous index makes the gather and its scatter-add backward ~3x faster).
        return p.gather(1, source.t().contiguous()).reshape(shape)

    def _dense(self, p: Tensor) -> Tensor:
        # (B, N, N): row i holds p masked to D(i); the published C-HMCNN formulation.
        return (self.R.unsqueeze(0) * p.unsqueeze(1)).max(dim=2).values

    # The fast methods run without autograd on node-major (N, B) tensors.
    def _levels(self, q: Tensor) -> Tensor:
        """Maxima by one in-place max-propagation pass per level, children to parents."""
        out = q.clone()
        for k in range(self._level_count):
            parent, child = self._level(k)
            # Hierarchy.levels: the children of level k are final once levels < k are done.
            _max_into_rows_(out, parent, out.index_select(0, child))
        return out

    def _levels_source(self, q: Tensor, out: Tensor) -> Tensor:
        """(N, B) int64: for each node and sample, a descendant that holds the maximum.

        A node is its own source when it holds the maximum, otherwise it takes the source of
        a child holding the same maximum; children are final before their parents (same
        level order as :meth:`_levels`). Ties pick the largest index; NaN counts as equal to
        NaN so that a NaN input propagates instead of leaving a node without a source.
        """
        source = torch.where(_holds_max(q, out), self.node_index[:, None], -1)
        for k in range(self._level_count):
            parent, child = self._level(k)
            holds_max = _holds_max(out.index_select(0, child), out.index_select(0, parent))
            candidate = torch.where(holds_max, source.index_select(0, child), -1)
            _max_into_rows_(source, parent, candidate)
        return source

    def _pairs(self, q: Tensor) -> Tensor:
        """Maxima by one gather over all (ancestor, descendant) pairs and one scatter-max."""
        values = q.index_select(0, self.pair_descendant)
        return _max_into_rows_(q.clone(), self.pair_ancestor, values)

    def _pairs_source(self, q: Tensor, out: Tensor) -> Tensor:
        """Same contract as :meth:`_levels_source`, from the pairs directly."""
        values = q.index_select(0, self.pair_descendant)
        holds_max = _holds_max(values, out.index_select(0, self.pair_ancestor))
        candidate = torch.where(holds_max, self.pair_descendant[:, None], -1)
        source = torch.where(_holds_max(q, out), self.node_index[:, None], -1)
        return _max_into_rows_(source, self.pair_ancestor, candidate)

    def _level(self, k: int) -> tuple[Tensor, Tensor]:
        return getattr(self, f"level_parent_{k}"), getattr(self, f"level_child_{k}")


import os
_KERNEL = os.environ.get("MCM_KERNEL", "index_reduce")
import warnings
def _max_into_rows_(target: Tensor, index: Tensor, rows: Tensor) -> Tensor:
    if _KERNEL == "index_reduce":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return target.index_reduce_(0, index, rows, "amax")
    if _KERNEL == "expand":
        return target.scatter_reduce_(0, index[:, None].expand(-1, target.shape[1]), rows, "amax")
    return target.scatter_reduce_(0, index[:, None].expand(-1, target.shape[1]).contiguous(), rows, "amax")


def _holds_max(value: Tensor, maximum: Tensor) -> Tensor:
    """Elementwise: ``value`` is the ``maximum`` it took part in (a NaN value counts: amax
    propagates it, so the NaN is the maximum and must be the source the gather picks)."""
    return (value == maximum) | (value != value)


def max_constraint(p: Tensor, hierarchy: Hierarchy, method: str = "auto") -> Tensor:
    """Functional form of :class:`MaxConstraint` (builds the index buffers on every call).

    Prefer the module inside a training loop; this is for one-off use.
    """
    return MaxConstraint(hierarchy, method).to(p.device)(p)


def mc_loss(p: Tensor, y: Tensor, constraint: MaxConstraint, evaluated: Tensor | None = None) -> Tensor:
    """Unreduced MCLoss of C-HMCNN (METHOD.md section 3), evaluated nodes only.

    ::

        a = mcm(p)                 # coherent prediction
        c = mcm(y * p)             # max over the truly positive descendants
        t = (1 - y) * a + y * c    # what the loss sees
        L[b, i] = BCE(t[b, i], y[b, i])

    A negative node is pushed down through its highest-scoring descendant (``a``), a positive
    node is pulled up only through positive descendants (``c``), so the gradient never rewards
    a wrong child for its parent's label.

    Args:
        p: (B, N) sigmoid probabilities (before the MCM).
        y: (B, N) labels in {0, 1}, same dtype as ``p``.
        constraint: the :class:`MaxConstraint` of the hierarchy.
        evaluated: (N,) bool mask or integer indices of the columns to keep; default the
            hierarchy's evaluated nodes (roots dropped).

    Returns:
        (B, N_eval) per-sample, per-node BCE terms (reduce as the objective requires).
    """
    y = y.to(p.dtype)
    batch = p.shape[0]
    if batch <= STACK_MAX_BATCH:
        # Small batches: one MCM call on (2B, N) halves the per-op launch overhead.
        stacked = constraint(torch.cat([p, y * p], dim=0))
        a, c = stacked[:batch], stacked[batch:]
    else:
        # Large batches: two calls avoid copying the (2B, N) concatenation around.
        a, c = constraint(p), constraint(y * p)
    t = (1 - y) * a + y * c
    if evaluated is None:
        index = constraint.evaluated_index
    else:
        evaluated = torch.as_tensor(evaluated, device=p.device)
        index = torch.nonzero(evaluated).flatten() if evaluated.dtype == torch.bool else evaluated.long()
    # BCE on all columns, then one column selection (cheaper than selecting t and y).
    return F.binary_cross_entropy(t, y, reduction="none").index_select(1, index)
