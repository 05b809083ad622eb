"""Property-based tests (hypothesis) on random trees and DAGs."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmlearn.data.synthetic import random_hierarchy
from hmlearn.hierarchy import Hierarchy
from hmlearn.metrics import evaluate
from hmlearn.nn.constraint import MaxConstraint
from hmlearn.objectives.uncertainty import MEASURES, uncertainty

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

hierarchies = st.builds(
    random_hierarchy,
    n_nodes=st.integers(2, 60),
    max_depth=st.integers(1, 6),
    dag=st.booleans(),
    extra_parent_prob=st.floats(0.0, 0.8),
    seed=st.integers(0, 10_000),
)


@SETTINGS
@given(hierarchy=hierarchies, batch=st.integers(0, 5), seed=st.integers(0, 1000))
def test_fast_mcm_equals_dense_and_is_coherent(hierarchy: Hierarchy, batch: int, seed: int):
    p = torch.rand(batch, len(hierarchy), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    dense = MaxConstraint(hierarchy, "dense")(p)
    for method in ("levels", "pairs"):
        assert torch.equal(MaxConstraint(hierarchy, method)(p), dense)
    parents, children = hierarchy.edges[:, 0], hierarchy.edges[:, 1]
    assert bool((dense[:, parents] >= dense[:, children]).all())


@SETTINGS
@given(hierarchy=hierarchies, seed=st.integers(0, 1000), density=st.floats(0.0, 0.5))
def test_closure_is_idempotent_and_monotone(hierarchy: Hierarchy, seed: int, density: float):
    Y = np.random.default_rng(seed).random((8, len(hierarchy))) < density
    closed = hierarchy.close(Y)
    assert np.array_equal(hierarchy.close(closed), closed)
    assert np.all(closed >= Y)
    assert np.all(closed[:, hierarchy.edges[:, 0]] >= closed[:, hierarchy.edges[:, 1]])


@SETTINGS
@given(hierarchy=hierarchies, seed=st.integers(0, 1000))
def test_metrics_do_not_depend_on_node_order(hierarchy: Hierarchy, seed: int):
    rng = np.random.default_rng(seed)
    Y = hierarchy.close(rng.random((20, len(hierarchy))) < 0.2)
    Y[0] = hierarchy.close(np.eye(len(hierarchy), dtype=bool)[hierarchy.leaves[:1]])[0]  # at least one positive
    P = MaxConstraint(hierarchy)(torch.rand(20, len(hierarchy), generator=torch.Generator().manual_seed(seed))).numpy()
    order = rng.permutation(len(hierarchy))
    names = [hierarchy.nodes[i] for i in order]
    position = {name: k for k, name in enumerate(names)}
    edges = [(position[hierarchy.nodes[a]], position[hierarchy.nodes[b]]) for a, b in hierarchy.edges]
    shuffled = Hierarchy(tuple(names), np.array(edges, dtype=np.int64).reshape(-1, 2), hierarchy.not_evaluated)
    before = evaluate(Y, P, hierarchy)
    after = evaluate(Y[:, order], P[:, order], shuffled)
    for key, value in before.items():
        assert np.isclose(after[key], value, rtol=1e-9, atol=1e-12), key


@SETTINGS
@given(heads=st.integers(2, 5), seed=st.integers(0, 1000), scale=st.floats(0.1, 30.0))
def test_uncertainty_measures_stay_in_the_unit_interval(heads: int, seed: int, scale: float):
    logits = torch.randn(heads, 4, 7, generator=torch.Generator().manual_seed(seed)) * scale
    p = torch.sigmoid(logits)
    for measure in MEASURES:
        u = uncertainty(p, measure)
        assert bool(((u >= 0) & (u <= 1)).all()), measure
