"""MaxConstraint and mc_loss: the fast methods against the dense reference and by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hmlearn.data.synthetic import random_hierarchy
from hmlearn.hierarchy import Hierarchy
from hmlearn.nn.constraint import AUTO_METHOD, METHODS, STACK_MAX_BATCH, MaxConstraint, max_constraint, mc_loss

FAST = ("levels", "pairs")
HMC_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "hmc_data"
GO_ROOTS = ["root", "GO0003674", "GO0005575", "GO0008150"]


def distinct_probabilities(batch: int, n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """(B, N) values in (0, 1), all distinct within a row, so no max has a tie."""
    g = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(n, generator=g) for _ in range(batch)]
    ranks = torch.stack(perms) if perms else torch.zeros(0, n, dtype=torch.int64)
    jitter = torch.rand(batch, n, generator=g, dtype=torch.float64) * 0.5  # stays inside a rank's slot
    return ((ranks.to(torch.float64) + 0.25 + jitter) / n).to(dtype)


def forward_and_grad(module: MaxConstraint, p: torch.Tensor, upstream: torch.Tensor):
    p = p.clone().requires_grad_(True)
    out = module(p)
    (grad,) = torch.autograd.grad(out, p, upstream)
    return out.detach(), grad


def brute_force_mcm(p: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    return np.stack([p[:, hierarchy.descendants(i)].max(axis=1) for i in range(len(hierarchy))], axis=1)


SIZES = [(2, False), (3, True), (12, False), (40, True), (120, False), (300, True)]
CASES = [(n, dag, seed) for seed in range(6) for n, dag in SIZES]


@pytest.mark.parametrize(("n_nodes", "dag", "seed"), CASES)
def test_fast_methods_equal_dense_values_and_gradients(n_nodes: int, dag: bool, seed: int) -> None:
    hierarchy = random_hierarchy(n_nodes, max_depth=1 + seed % 7, dag=dag, extra_parent_prob=0.5, seed=seed)
    n = len(hierarchy)
    p = distinct_probabilities(3, n, seed)
    upstream = torch.randn(3, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    dense_out, dense_grad = forward_and_grad(MaxConstraint(hierarchy, "dense"), p, upstream)
    np.testing.assert_array_equal(dense_out.numpy(), brute_force_mcm(p.numpy(), hierarchy))
    for method in FAST:
        out, grad = forward_and_grad(MaxConstraint(hierarchy, method), p, upstream)
        assert torch.equal(out, dense_out), method  # a max selects a value: exact
        torch.testing.assert_close(grad, dense_grad, rtol=0, atol=1e-12, msg=method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(4))
def test_output_is_coherent_dominates_input_and_idempotent(method: str, seed: int) -> None:
    hierarchy = random_hierarchy(150, max_depth=6, dag=bool(seed % 2), seed=100 + seed)
    mcm = MaxConstraint(hierarchy, method)
    p = distinct_probabilities(5, len(hierarchy), seed)
    out = mcm(p)
    parents, children = hierarchy.edges[:, 0], hierarchy.edges[:, 1]
    assert torch.all(out[:, parents] >= out[:, children])
    assert torch.all(out >= p)
    assert torch.equal(mcm(out), out)
    for i in range(len(hierarchy)):  # each output is the input of one of its descendants
        assert out[0, i].item() in p[0, hierarchy.descendants(i)].tolist()


@pytest.fixture(scope="module")
def diamond() -> Hierarchy:
    #      root
    #     /    \
    #    a      b
    #     \    /
    #       c       (a DAG: c has two parents)
    return Hierarchy.from_edges([("root", "a"), ("root", "b"), ("a", "c"), ("b", "c")])


@pytest.mark.parametrize("method", [*METHODS, "auto"])
def test_hand_computed_diamond(diamond: Hierarchy, method: str) -> None:
    order = ["root", "a", "b", "c"]
    idx = [diamond.index[name] for name in order]
    p = torch.zeros(2, 4, dtype=torch.float64)
    p[:, idx] = torch.tensor([[0.1, 0.2, 0.6, 0.4], [0.9, 0.3, 0.1, 0.5]], dtype=torch.float64)
    expected = torch.zeros_like(p)
    # row 0: root <- b (0.6), a <- c (0.4), b itself, c itself; row 1: root itself, a <- c, b <- c
    expected[:, idx] = torch.tensor([[0.6, 0.4, 0.6, 0.4], [0.9, 0.5, 0.5, 0.5]], dtype=torch.float64)
    out, grad = forward_and_grad(MaxConstraint(diamond, method), p, torch.ones_like(p))
    assert torch.equal(out, expected)
    expected_grad = torch.zeros_like(p)
    # d(sum of outputs)/dp: how many outputs each input supplies
    expected_grad[:, idx] = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 0.0, 0.0, 3.0]], dtype=torch.float64)
    assert torch.equal(grad, expected_grad)


def test_functional_form_matches_module(diamond: Hierarchy) -> None:
    p = distinct_probabilities(4, 4, 0)
    assert torch.equal(max_constraint(p, diamond), MaxConstraint(diamond)(p))


@pytest.mark.parametrize("method", FAST)
def test_ties_route_each_gradient_to_one_descendant(method: str) -> None:
    """All-equal inputs: every output has many arg-maxes; its gradient goes whole to one of them."""
    hierarchy = random_hierarchy(30, max_depth=4, dag=True, seed=3)
    n = len(hierarchy)
    mcm = MaxConstraint(hierarchy, method)
    p = torch.full((1, n), 0.5, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(mcm, p).reshape(n, n)  # [output i, input j]
    assert torch.equal(mcm(p), p)
    assert torch.equal(jacobian.sum(dim=1), torch.ones(n, dtype=torch.float64))
    assert torch.equal((jacobian != 0).sum(dim=1), torch.ones(n, dtype=torch.long))
    source = jacobian.argmax(dim=1)
    for i in range(n):
        assert int(source[i]) in hierarchy.descendants(i)
    assert (source != torch.arange(n)).any()  # ties broken towards descendants, not always self


@pytest.mark.parametrize("method", METHODS)
def test_float32_and_batch_sizes(method: str) -> None:
    hierarchy = random_hierarchy(80, max_depth=5, dag=True, seed=7)
    n = len(hierarchy)
    mcm = MaxConstraint(hierarchy, method)
    reference = MaxConstraint(hierarchy, "dense")
    for batch in (0, 1, 7):
        p = distinct_probabilities(batch, n, batch, dtype=torch.float32)
        upstream = torch.randn(batch, n, dtype=torch.float32)
        out, grad = forward_and_grad(mcm, p, upstream)
        ref_out, ref_grad = forward_and_grad(reference, p, upstream)
        assert out.shape == (batch, n) and out.dtype == torch.float32 and grad.dtype == torch.float32
        assert torch.equal(out, ref_out)
        torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_leading_dimensions_and_inference_path(method: str) -> None:
    hierarchy = random_hierarchy(30, max_depth=4, dag=True, seed=11)
    mcm = MaxConstraint(hierarchy, method)
    p = distinct_probabilities(6, len(hierarchy), 5).reshape(2, 3, -1)  # (H, B, N)
    out = mcm(p)
    assert out.shape == p.shape
    assert torch.equal(out[1], mcm(p[1]))
    with torch.no_grad():
        assert torch.equal(mcm(p.requires_grad_(True)), out)
    assert torch.equal(mcm(p.detach()), out)


@pytest.mark.parametrize("method", FAST)
def test_scatter_kernel_of_other_devices_agrees(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA / MPS take the scatter_reduce_ branch; exercise it here on CPU."""
    from hmlearn.nn import constraint

    hierarchy = random_hierarchy(120, max_depth=6, dag=True, seed=12)
    p = distinct_probabilities(9, len(hierarchy), 4)
    upstream = torch.randn(9, len(hierarchy), dtype=torch.float64)
    expected = forward_and_grad(MaxConstraint(hierarchy, method), p, upstream)
    monkeypatch.setattr(constraint, "_INDEX_REDUCE_DEVICES", ())
    out, grad = forward_and_grad(MaxConstraint(hierarchy, method), p, upstream)
    assert torch.equal(out, expected[0])
    torch.testing.assert_close(grad, expected[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", FAST)
def test_nan_propagates_to_ancestors_without_crashing(method: str) -> None:
    hierarchy = random_hierarchy(40, max_depth=4, dag=True, seed=2)
    leaf = int(hierarchy.leaves[-1])
    p = distinct_probabilities(2, len(hierarchy), 0)
    p[0, leaf] = float("nan")
    ancestors = torch.as_tensor(hierarchy.ancestors(leaf))
    for requires_grad in (False, True):
        out = MaxConstraint(hierarchy, method)(p.clone().requires_grad_(requires_grad))
        assert torch.isnan(out[0, ancestors]).all()
        assert torch.isnan(out).sum() == len(ancestors)  # the other nodes and row 1 stay finite


def test_rejects_unknown_method_and_wrong_width(diamond: Hierarchy) -> None:
    with pytest.raises(ValueError, match="unknown MCM method"):
        MaxConstraint(diamond, "sparse")
    with pytest.raises(ValueError, match="4 nodes"):
        MaxConstraint(diamond)(torch.rand(2, 5))
    assert MaxConstraint(diamond).method == AUTO_METHOD


@pytest.mark.parametrize("method", METHODS)
def test_buffers_follow_to_and_stay_out_of_state_dict(method: str) -> None:
    hierarchy = random_hierarchy(25, max_depth=3, dag=True, seed=4)
    mcm = MaxConstraint(hierarchy, method)
    buffers = dict(mcm.named_buffers())
    assert "evaluated" in buffers and len(buffers) >= 3
    assert mcm.state_dict() == {}  # rebuilt from the hierarchy; checkpoints stay small
    mcm.to(torch.float64)
    assert {name: b.dtype for name, b in mcm.named_buffers()} == {n: b.dtype for n, b in buffers.items()}
    mcm.to("meta")
    assert all(b.device.type == "meta" for b in mcm.buffers())
    out = mcm(torch.empty(3, len(hierarchy), device="meta", requires_grad=True))
    assert out.shape == (3, len(hierarchy)) and out.device.type == "meta"


# ---------------------------------------------------------------------------- MCLoss
def hand_mc_loss(p: np.ndarray, y: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """METHOD.md section 3 written with loops, on evaluated nodes only."""
    rows = []
    for b in range(p.shape[0]):
        row = []
        for i in np.flatnonzero(hierarchy.evaluated):
            below = hierarchy.descendants(i)
            if y[b, i]:
                t = max(y[b, j] * p[b, j] for j in below)
                row.append(-math.log(t))
            else:
                t = max(p[b, j] for j in below)
                row.append(-math.log(1 - t))
        rows.append(row)
    return np.array(rows)


def closed_labels(hierarchy: Hierarchy, batch: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(hierarchy.close(rng.random((batch, len(hierarchy))) < 0.15), dtype=dtype)


@pytest.mark.parametrize("batch", [4, STACK_MAX_BATCH + 8])  # one stacked MCM call, then two
@pytest.mark.parametrize("method", METHODS)
def test_mc_loss_matches_hand_computation(method: str, batch: int) -> None:
    hierarchy = random_hierarchy(15, max_depth=3, dag=True, seed=5)
    p = distinct_probabilities(batch, len(hierarchy), 1)
    y = closed_labels(hierarchy, batch, 1)
    assert y.sum() > 0 and (1 - y).sum() > 0
    loss = mc_loss(p, y, MaxConstraint(hierarchy, method))
    assert loss.shape == (batch, int(hierarchy.evaluated.sum())) == (batch, len(hierarchy) - 1)
    np.testing.assert_allclose(loss.numpy(), hand_mc_loss(p.numpy(), y.numpy(), hierarchy), rtol=1e-12)


def test_mc_loss_on_the_diamond_by_hand(diamond: Hierarchy) -> None:
    idx = {name: diamond.index[name] for name in ["root", "a", "b", "c"]}
    p = torch.zeros(1, 4, dtype=torch.float64)
    y = torch.zeros(1, 4, dtype=torch.float64)
    for name, prob, label in [("root", 0.1, 1), ("a", 0.2, 1), ("b", 0.6, 0), ("c", 0.4, 0)]:
        p[0, idx[name]], y[0, idx[name]] = prob, label
    # a (positive): c = max over positive descendants of p = p_a = 0.2 (c is negative)
    # b (negative): a = max(p_b, p_c) = 0.6; c (negative): 0.4; root is not evaluated
    expected = {"a": -math.log(0.2), "b": -math.log(1 - 0.6), "c": -math.log(1 - 0.4)}
    loss = mc_loss(p, y, MaxConstraint(diamond))
    kept = [name for name in diamond.nodes if name != "root"]
    assert loss.shape == (1, 3)
    np.testing.assert_allclose(loss[0].numpy(), [expected[name] for name in kept], rtol=1e-14)


def test_mc_loss_explicit_evaluated_mask_and_indices() -> None:
    hierarchy = random_hierarchy(20, max_depth=3, seed=8)
    mcm = MaxConstraint(hierarchy)
    p, y = distinct_probabilities(3, len(hierarchy), 2), closed_labels(hierarchy, 3, 2)
    full = mc_loss(p, y, mcm, evaluated=torch.ones(len(hierarchy), dtype=torch.bool))
    assert full.shape == (3, len(hierarchy))
    default = mc_loss(p, y, mcm)
    assert torch.equal(default, full[:, torch.as_tensor(hierarchy.evaluated)])
    picked = torch.tensor([5, 1])
    assert torch.equal(mc_loss(p, y, mcm, evaluated=picked), full[:, picked])


@pytest.mark.parametrize("batch", [3, STACK_MAX_BATCH + 8])  # both sides of STACK_MAX_BATCH
@pytest.mark.parametrize("seed", range(3))
def test_mc_loss_gradients_agree_between_methods(batch: int, seed: int) -> None:
    hierarchy = random_hierarchy(90, max_depth=6, dag=True, seed=20 + seed)
    p = distinct_probabilities(batch, len(hierarchy), seed)
    y = closed_labels(hierarchy, batch, seed)
    results = {}
    for method in METHODS:
        leaf = p.clone().requires_grad_(True)
        loss = mc_loss(leaf, y, MaxConstraint(hierarchy, method))
        (grad,) = torch.autograd.grad(loss.mean(), leaf)
        results[method] = (loss.detach(), grad)
    for method in FAST:
        torch.testing.assert_close(results[method][0], results["dense"][0], rtol=0, atol=1e-12)
        torch.testing.assert_close(results[method][1], results["dense"][1], rtol=0, atol=1e-12)
    assert results["dense"][1].abs().sum() > 0


def test_mc_loss_float32() -> None:
    hierarchy = random_hierarchy(50, max_depth=4, dag=True, seed=9)
    p = distinct_probabilities(5, len(hierarchy), 3, dtype=torch.float32).requires_grad_(True)
    y = closed_labels(hierarchy, 5, 3, dtype=torch.float32)
    loss = mc_loss(p, y, MaxConstraint(hierarchy))
    loss.mean().backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all() and torch.isfinite(p.grad).all()


# ---------------------------------------------------------------------------- real hierarchies
def header_spec(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) >= 4 and fields[0].lower() == "@attribute" and fields[2].lower() == "hierarchical":
                return fields[3].split(",")
    raise AssertionError(f"{path}: no hierarchical class attribute")


@pytest.fixture(scope="module")
def go_hierarchy() -> Hierarchy:
    path = HMC_DATA / "datasets_GO" / "spo_GO" / "spo_GO.train.arff"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return Hierarchy.from_edges(header_spec(path), not_evaluated=GO_ROOTS)


@pytest.fixture(scope="module")
def fun_hierarchy() -> Hierarchy:
    path = HMC_DATA / "datasets_FUN" / "derisi_FUN" / "derisi_FUN.train.arff"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return Hierarchy.from_paths(header_spec(path))


@pytest.mark.parametrize("which", ["go_hierarchy", "fun_hierarchy"])
def test_real_hierarchies_fast_equals_dense(which: str, request: pytest.FixtureRequest) -> None:
    hierarchy = request.getfixturevalue(which)
    assert len(hierarchy) == {"go_hierarchy": 4120, "fun_hierarchy": 500}[which]
    n = len(hierarchy)
    p = distinct_probabilities(2, n, 0)
    upstream = torch.randn(2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dense_out, dense_grad = forward_and_grad(MaxConstraint(hierarchy, "dense"), p, upstream)
    y = closed_labels(hierarchy, 2, 0)
    for method in FAST:
        out, grad = forward_and_grad(MaxConstraint(hierarchy, method), p, upstream)
        assert torch.equal(out, dense_out), method
        torch.testing.assert_close(grad, dense_grad, rtol=0, atol=1e-12, msg=method)
    # coherence on the real DAG, and MCLoss gradients between the fast methods
    parents, children = hierarchy.edges[:, 0], hierarchy.edges[:, 1]
    assert torch.all(dense_out[:, parents] >= dense_out[:, children])
    grads = []
    for method in FAST:
        leaf = p.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(mc_loss(leaf, y, MaxConstraint(hierarchy, method)).sum(), leaf)
        grads.append(grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("scatter", [False, True])
def test_float32_key_pass_picks_the_two_pass_sources(scatter: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training's float32 path packs (value, node) into one int64 key per entry; its sources (hence
    outputs and gradients) are the two-pass method's, ties, NaN, signed zeros and infinities included."""
    from hmlearn.nn import constraint

    if scatter:  # the CUDA branch (scatter_reduce_), exercised on the CPU
        monkeypatch.setattr(constraint, "_INDEX_REDUCE_DEVICES", ())
    special = torch.tensor([0.0, -0.0, 0.25, 0.5, 1.0, -1.0, 3.0, 1e-40, -1e-40, math.inf, -math.inf, math.nan, -math.nan])
    for seed in range(12):
        hierarchy = random_hierarchy(60, max_depth=5, dag=True, extra_parent_prob=0.5, seed=seed)
        n = len(hierarchy)
        g = torch.Generator().manual_seed(seed)
        p = [special[torch.randint(len(special), (5, n), generator=g)], torch.rand(5, n, generator=g),
             -torch.rand(5, n, generator=g)][seed % 3]
        mcm = MaxConstraint(hierarchy, "levels")
        q = p.t().contiguous()
        expected = mcm._levels_source(q, mcm._levels(q))
        assert torch.equal(mcm._levels_key_source(q), expected), seed
        upstream = torch.randn(5, n, generator=g)
        x = p.clone().requires_grad_(True)
        out = mcm(x)
        out.backward(upstream)
        assert torch.equal(out.detach().isnan(), mcm(p).isnan())
        assert torch.equal(out.detach().nan_to_num(7.0), mcm(p).nan_to_num(7.0))
        assert torch.equal(x.grad, torch.zeros(5, n).scatter_add_(1, expected.t(), upstream))


def test_heads_parameter_shapes_are_the_built_networks():
    from hmlearn.nn.heads import HeadsMLP

    network = HeadsMLP(7, 11, hidden_dim=5, num_layers=3, heads=2)
    assert HeadsMLP.parameter_shapes(7, 11, 5, 3, 2) == {k: tuple(v.shape) for k, v in network.state_dict().items()}
