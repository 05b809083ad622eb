"""The max constraint module (MCM) and MCLoss of C-HMCNN (METHOD.md sections 2 and 3).

``mcm(p)[b, i] = max_{j in D(i)} p[b, j]``: a node scores at least as high as any of its
descendants, so the output is coherent (no child above its parent) by construction.

Three implementations of one function; all take (..., N) float32 or float64, any batch size
(0 included), and keep every index tensor in a non-persistent buffer so ``.to(device)`` moves
it and checkpoints do not carry it:

- ``"dense"``: the reference, as in the published code: a dense (N, N) ``R`` and a max over
  ``R[None] * p[:, None, :]``. O(B N^2) time and memory. Relies on ``p >= 0`` (the zeros ``R``
  puts in place of non-descendants must never win the max).
- ``"levels"``: one max-propagation pass per entry of :attr:`Hierarchy.levels`, children to
  parents, deepest first; O(B x edges) in all, ``len(levels)`` passes.
- ``"pairs"``: one gather over all (ancestor, descendant) pairs of ``R`` and one scatter-max;
  O(B x nnz(R)), a single pass.

How the fast methods keep autograd cheap: the maxima are computed without autograd on a
node-major (N, B) copy (whole-row gathers and in-place scatter-max, several times faster on
CPU than column picks from (B, N)); a second pass of the same shape finds, for every output,
the input it came from (its *source*, a descendant holding the maximum); the output is then
``p.gather(1, source)``, so the backward is a single scatter-add of B x N values instead of
one backward per pass. Values are exact (a max selects, it does not compute). The gradient of
``out[b, i]`` goes whole to one source, like the reference's ``max(dim)``; with ties the
largest tied index is chosen, so tie-breaking (not the gradient's total) can differ from
dense; without ties the gradients agree up to summation order (~1e-16 in float64). Without
autograd (``torch.no_grad()``, or ``p`` not requiring grad) the source pass is skipped. NaN
inputs propagate to their ancestors. For float32 (training), ``"levels"`` finds the sources
in one pass instead of two: each entry becomes one int64 key, (the float's order, node
index), and the keys are max-propagated; the largest key is the largest value and, among
ties, the largest index: the same sources, bit for bit (1.3-1.7x faster MCLoss forward +
backward at batch 4, 1.1x at 64, equal at 512, measured side by side).

``"auto"`` is ``"levels"``. Measured with ``python bench/suite.py --threads 1 --sections mcm``
(CPU, 1 torch thread, float32, forward + backward of ``out.sum()``, median ms; 2-core AMD EPYC
shared with other jobs, torch 2.14; ``bench/mcm_speed.py`` prints the same table):

==========  =====  =======  ======  ======  =============
hierarchy   batch  dense    levels  pairs   dense/levels
==========  =====  =======  ======  ======  =============
derisi_FUN  4      3.89     0.222   0.384   17x
derisi_FUN  64     146      0.453   0.945   323x
derisi_FUN  512    1110     2.90    6.48    382x
spo_GO      4      666      0.763   5.93    874x
spo_GO      64     8780     2.58    13.4    3402x
spo_GO      512    skipped  37.3    224     (dense: 35 GB)
==========  =====  =======  ======  ======  =============

(FUN: 500 nodes, 6 levels, nnz(R) 2,189; GO: 4,120 nodes, 14 levels, 5,821 edges, nnz(R)
42,653.) ``"levels"`` wins everywhere: its passes touch each edge once, while ``"pairs"``
touches every (ancestor, descendant) pair, 7x the edges on GO. ``"pairs"`` stays as an
independent second implementation (the tests compare the two).
"""

from __future__ import annotations

import functools
import warnings

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
            (the fastest measured, ``"levels"``; see the module docstring).

    Shapes: ``p`` is (..., N), typically (B, N) or (H, B, N); the output has the same shape
    and dtype. Buffers: ``evaluated`` (N,) bool and ``evaluated_index`` (N_eval,) int64, the
    hierarchy's evaluated nodes, used by :func:`mc_loss`.
    """

    def __init__(self, hierarchy: Hierarchy, method: str = "auto") -> None:
        super().__init__()
        _silence_index_reduce_beta_warning()
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
            # the diagonal is left out: p itself is the starting value of every maximum
            ancestor = torch.as_tensor(R.row[off_diagonal], dtype=torch.int64)
            descendant = torch.as_tensor(R.col[off_diagonal], dtype=torch.int64)
            self.register_buffer("pair_ancestor", ancestor, persistent=False)
            self.register_buffer("pair_descendant", descendant, persistent=False)

    def extra_repr(self) -> str:
        return f"n_nodes={self.n_nodes}, method={self.method!r}"

    def forward(self, p: Tensor) -> Tensor:
        """(..., N) probabilities -> (..., N) coherent maxima over each node's descendants."""
        if p.shape[-1] != self.n_nodes:
            raise ValueError(f"MCM input has {p.shape[-1]} columns, the hierarchy has {self.n_nodes} nodes")
        shape = p.shape
        p = p.reshape(-1, self.n_nodes)
        if self.method == "dense":
            return self._dense(p).reshape(shape)
        needs_grad = torch.is_grad_enabled() and p.requires_grad
        with torch.no_grad():
            # Node-major (N, B): gathering and scattering whole rows of B values is 6-8x
            # faster on CPU than picking columns out of (B, N) (measured at B >= 64).
            q = p.detach().t().contiguous()
            if not needs_grad:  # inference: the maxima are all we need
                out = self._levels(q) if self.method == "levels" else self._pairs(q)
                return out.t().contiguous().reshape(shape)
            if self.method == "levels" and p.dtype == torch.float32 and p.device.type in _KEY_DEVICES:
                source = self._levels_key_source(q)  # training's case: one pass instead of two
            elif self.method == "levels":
                source = self._levels_source(q, self._levels(q))
            else:
                source = self._pairs_source(q, self._pairs(q))
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
        level order as :meth:`_levels`). Ties pick the largest index; a NaN holds the maximum
        (amax propagates it), so a NaN input reaches its ancestors instead of leaving them
        without a source.
        """
        source = torch.where(_holds_max(q, out), self.node_index[:, None], -1)
        for k in range(self._level_count):
            parent, child = self._level(k)
            holds_max = _holds_max(out.index_select(0, child), out.index_select(0, parent))
            candidate = torch.where(holds_max, source.index_select(0, child), -1)
            _max_into_rows_(source, parent, candidate)
        return source

    def _levels_key_source(self, q: Tensor) -> Tensor:
        """:meth:`_levels_source` of float32 ``q`` in one pass, without computing the maxima first.

        Each entry becomes one int64 key, ``order(value) * 2**32 + node`` (:func:`_float32_keys`),
        and the keys are max-propagated level by level like the values in :meth:`_levels`. The
        largest key below a node holds the largest value and, among equal values, the largest
        node index: the same source as the two-pass method (NaN above everything, so it
        propagates; -0 equal to +0), hence bit-identical outputs and gradients.
        """
        keys = _float32_keys(q, self.node_index)
        for k in range(self._level_count):
            parent, child = self._level(k)
            _max_into_rows_(keys, parent, keys.index_select(0, child))
        return keys & 0xFFFFFFFF

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


def _max_into_rows_(target: Tensor, index: Tensor, rows: Tensor) -> Tensor:
    """In place ``target[index[k]] = max(target[index[k]], rows[k])`` over whole rows.

    CPU: ``index_reduce_``. ``scatter_reduce_`` with a row-expanded index takes a radix-sort
    path that opens an OpenMP region even for a few hundred elements; when the cores are busy
    (data loading, other jobs) each call then stalls for 20-90 ms (measured on 2 shared
    cores; with one torch thread it does not happen). ``index_reduce_`` has no such path;
    uncontended it costs about the same at batch 64 and up to ~30% more of the MCM time at
    batch 4 on GO. Other devices: ``scatter_reduce_`` (``index_reduce`` on CUDA refuses
    deterministic mode, on MPS it refuses int64).
    """
    if target.device.type in _INDEX_REDUCE_DEVICES:
        return target.index_reduce_(0, index, rows, "amax")
    return target.scatter_reduce_(0, index[:, None].expand(-1, target.shape[1]), rows, "amax")


_INDEX_REDUCE_DEVICES = ("cpu",)
_KEY_DEVICES = ("cpu", "cuda")  # int64 amax in index_reduce_ (CPU) / scatter_reduce_ (CUDA)
_NAN_ORDER = 0x7FFFFFFF  # above +inf's order, 0x7F800000


def _float32_keys(q: Tensor, node_index: Tensor) -> Tensor:
    """(N, B) float32 -> (N, B) int64 ``order(q) * 2**32 + node`` (``node_index`` (N,)).

    ``order`` is an int32-range integer with the float order: the bits of a non-negative float
    already are; a negative float's bits are the sign-magnitude pattern, reversed by flipping
    its 31 magnitude bits. ``q + 0.0`` turns -0 into +0 (equal as floats, so a tie) and every
    NaN, whatever its sign and payload, gets one order above +inf.
    """
    bits = (q + 0.0).view(torch.int32).to(torch.int64)
    order = torch.where(q.isnan(), _NAN_ORDER, bits ^ ((bits >> 31) & 0x7FFFFFFF))
    return order * 2**32 + node_index[:, None]


@functools.cache
def _silence_index_reduce_beta_warning() -> None:
    """``index_reduce`` warns once per process that its API is beta; we use its stable core
    (``amax``, ``include_self=True``), so spend that one warning here, silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.zeros(1).index_reduce_(0, torch.zeros(1, dtype=torch.int64), torch.zeros(1), "amax")


def _holds_max(value: Tensor, maximum: Tensor) -> Tensor:
    """Elementwise: ``value`` is the ``maximum`` it took part in (a NaN value counts: amax
    propagates it, so the NaN is the maximum and must be the source the gather picks)."""
    return (value == maximum) | value.isnan()


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
        y: (B, N) labels in {0, 1} (cast to ``p``'s dtype).
        constraint: the :class:`MaxConstraint` of the hierarchy.
        evaluated: (N,) bool mask or integer indices of the columns to keep; default the
            hierarchy's evaluated nodes (roots dropped).

    Returns:
        (B, N_eval) per-sample, per-node BCE terms (reduce as the objective requires).
    """
    y = y.to(p.dtype)
    batch = p.shape[0]
    if batch <= STACK_MAX_BATCH:
        # Small batches: one MCM call on (2B, N) halves the per-op overhead (1.3-1.4x faster
        # MCLoss at batch 4; two calls win from batch ~64 on: bench/mcm_speed.py).
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
