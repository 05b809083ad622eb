"""Tests for hmlearn.metrics: cross-checks against scikit-learn, hand cases, conventions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from hmlearn.data.synthetic import random_hierarchy
from hmlearn.hierarchy import Hierarchy
from hmlearn.metrics import (
    au_prc,
    binary_ap,
    coherence_violations,
    evaluate,
    is_coherent,
    node_macro_prf,
    per_node_table,
    recall_by_depth,
    recall_by_frequency,
)


# ---------------------------------------------------------------------- fixtures and helpers
def coherent(P: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """max over D(i), column by column (small N only)."""
    return np.stack([P[:, hierarchy.descendants(i)].max(axis=1) for i in range(len(hierarchy))], axis=1)


def random_case(seed: int, n_samples: int = 40, n_nodes: int = 25, dag: bool = False, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    hierarchy = random_hierarchy(n_nodes, max_depth=4, dag=dag, seed=seed)
    Y = hierarchy.close(rng.random((n_samples, n_nodes)) < 0.08)
    # scores correlated with the labels so the threshold metrics are not all zero
    P = np.clip(0.45 * Y + 0.6 * rng.random((n_samples, n_nodes)), 0, 1)
    if decimals is not None:
        P = np.round(P, decimals)  # many ties
    return hierarchy, Y, coherent(P, hierarchy)


@pytest.fixture
def tiny():
    """3 samples, 4 nodes: root -> a -> a/c, root -> b (order: root, a, b, a/c)."""
    hierarchy = Hierarchy.from_paths(["a/c", "b"])
    assert hierarchy.nodes == ("root", "a", "b", "a/c")
    Y = np.array(
        [
            [1, 1, 0, 1],
            [1, 1, 0, 0],
            [1, 0, 1, 0],
        ]
    )
    P = np.array(
        [
            [1.0, 0.9, 0.2, 0.6],
            [1.0, 0.4, 0.7, 0.3],
            [1.0, 0.8, 0.6, 0.1],
        ]
    )
    return hierarchy, Y, P


# ---------------------------------------------------------------------- hand-computed case
def test_tiny_node_macro_by_hand(tiny):
    # a: TP 1 FP 1 FN 1 -> P .5 R .5 F1 .5 ; b: TP 1 FP 1 -> P .5 R 1 F1 2/3 ; a/c: P 1 R 1 F1 1
    hierarchy, Y, P = tiny
    result = node_macro_prf(Y, P, hierarchy)
    assert result["precision"] == pytest.approx(100 * 2 / 3)
    assert result["recall"] == pytest.approx(100 * 5 / 6)
    assert result["f1"] == pytest.approx(100 * 13 / 18)


def test_tiny_au_prc_and_binary_ap_by_hand(tiny):
    hierarchy, Y, P = tiny
    # positives at .9, .6, .6, .4 among 9 pairs: (1 * 1 + 2 * 3/5 + 1 * 4/6) / 4
    assert au_prc(Y, P, hierarchy) == pytest.approx(43 / 60)
    # 0/1 predictions: 3 of 5 predicted pairs positive, 4 positives among 9: (3 * 3/5 + 1 * 4/9) / 4
    assert binary_ap(Y, P, hierarchy) == pytest.approx(101 / 180)
    # including the root (all ones, score 1) would give a different number
    assert average_precision_score(Y, P, average="micro") != pytest.approx(43 / 60)


def test_tiny_per_node_table(tiny):
    hierarchy, Y, P = tiny
    train_Y = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    table = per_node_table(Y, P, hierarchy, train_Y=train_Y)
    assert list(table.columns) == [
        "node", "depth", "train_positives", "test_positives", "predicted_positives", "precision", "recall", "f1",
    ]
    assert table["node"].tolist() == ["a", "b", "a/c"]
    assert table["depth"].tolist() == [1, 1, 2]
    assert table["train_positives"].tolist() == [2, 1, 1]
    assert table["test_positives"].tolist() == [2, 1, 1]
    assert table["predicted_positives"].tolist() == [2, 2, 1]
    np.testing.assert_allclose(table["precision"], [50, 50, 100])
    np.testing.assert_allclose(table["recall"], [50, 100, 100])
    np.testing.assert_allclose(table["f1"], [50, 200 / 3, 100])
    assert "train_positives" not in per_node_table(Y, P, hierarchy).columns


def test_tiny_threshold_is_inclusive(tiny):
    hierarchy, Y, P = tiny
    # at threshold 0.6, b's 0.6 (s2, true) and a/c's 0.6 (s0, true) are predicted positive
    table = per_node_table(Y, P, hierarchy, threshold=0.6)
    assert table["predicted_positives"].tolist() == [2, 2, 1]
    table = per_node_table(Y, P, hierarchy, threshold=0.61)
    assert table["predicted_positives"].tolist() == [2, 1, 0]


def test_tiny_evaluate(tiny):
    hierarchy, Y, P = tiny
    result = evaluate(Y, P, hierarchy)
    assert set(result) == {
        "au_prc", "binary_ap", "precision", "recall", "f1",
        "precision_present", "recall_present", "f1_present", "coherent",
    }
    assert result["au_prc"] == pytest.approx(43 / 60)
    assert result["binary_ap"] == pytest.approx(101 / 180)
    assert result["recall"] == pytest.approx(100 * 5 / 6)
    assert result["recall_present"] == pytest.approx(100 * 5 / 6)  # every node is present
    assert result["coherent"] is True
    # rare: a has 30 training positives, b 7, a/c 2 -> rare = {b, a/c}, recall (1 + 1) / 2
    train_Y = np.zeros((30, 4), dtype=bool)
    train_Y[:, :2] = True
    train_Y[:7, 2] = True
    train_Y[:2, 3] = True
    assert evaluate(Y, P, hierarchy, train_Y=train_Y)["recall_rare"] == pytest.approx(100.0)


# ---------------------------------------------------------------------- conventions
@pytest.fixture
def with_absent_node():
    """root -> a, b, c; c has no positive in Y and is never predicted."""
    hierarchy = Hierarchy.from_paths(["a", "b", "c"])
    Y = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]])
    P = np.array([[1, 0.9, 0.1, 0.2], [1, 0.2, 0.3, 0.1], [1, 0.8, 0.6, 0.0]])
    return hierarchy, Y, P


def test_never_predicted_node_has_precision_zero(with_absent_node):
    hierarchy, Y, P = with_absent_node
    P = P.copy()
    P[:, 2] = 0.0  # b is now never predicted, though it has 2 positives
    table = per_node_table(Y, P, hierarchy)
    row = table.set_index("node").loc["b"]
    assert row["predicted_positives"] == 0
    assert row["precision"] == 0.0 and row["recall"] == 0.0 and row["f1"] == 0.0


def test_absent_node_counts_with_zero_unless_present_only(with_absent_node):
    hierarchy, Y, P = with_absent_node
    # a: P 1 R 1 F1 1 ; b: TP 1 FN 1 -> P 1 R .5 F1 2/3 ; c: absent, never predicted -> 0, 0, 0
    table = per_node_table(Y, P, hierarchy).set_index("node")
    assert table.loc["c", "test_positives"] == 0
    assert table.loc["c", ["precision", "recall", "f1"]].tolist() == [0.0, 0.0, 0.0]
    all_nodes = node_macro_prf(Y, P, hierarchy)
    assert all_nodes["precision"] == pytest.approx(100 * 2 / 3)
    assert all_nodes["recall"] == pytest.approx(100 * 1.5 / 3)
    assert all_nodes["f1"] == pytest.approx(100 * (5 / 3) / 3)
    present = node_macro_prf(Y, P, hierarchy, present_only=True)
    assert present["precision"] == pytest.approx(100.0)
    assert present["recall"] == pytest.approx(75.0)
    assert present["f1"] == pytest.approx(100 * (5 / 3) / 2)


def test_absent_node_predicted_positive_gets_precision_zero(with_absent_node):
    hierarchy, Y, P = with_absent_node
    P = P.copy()
    P[0, 3] = 0.7  # c predicted once, never true: FP only
    row = per_node_table(Y, P, hierarchy).set_index("node").loc["c"]
    assert (row["predicted_positives"], row["precision"], row["recall"], row["f1"]) == (1, 0.0, 0.0, 0.0)


def test_root_column_is_ignored(tiny):
    hierarchy, Y, P = tiny
    P2 = P.copy()
    P2[:, 0] = 0.0  # root scores change (and turn incoherent) but root is not evaluated
    assert au_prc(Y, P2, hierarchy) == au_prc(Y, P, hierarchy)
    assert node_macro_prf(Y, P2, hierarchy) == node_macro_prf(Y, P, hierarchy)
    assert coherence_violations(P2, hierarchy) == 0


def test_au_prc_without_positives_is_zero_with_warning(tiny):
    hierarchy, Y, P = tiny
    Y = np.zeros_like(Y)
    with pytest.warns(UserWarning, match="No positive"):
        assert au_prc(Y, P, hierarchy) == 0.0
    assert np.isnan(node_macro_prf(Y, P, hierarchy, present_only=True)["recall"])


# ---------------------------------------------------------------------- scikit-learn cross-checks
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dag", [False, True])
def test_node_macro_matches_sklearn(seed, dag):
    hierarchy, Y, P = random_case(seed, dag=dag)
    ev = hierarchy.evaluated
    threshold = [0.5, 0.3, 0.7][seed % 3]
    precision, recall, f1, support = precision_recall_fscore_support(
        Y[:, ev], P[:, ev] >= threshold, average=None, zero_division=0
    )
    ours = node_macro_prf(Y, P, hierarchy, threshold=threshold)
    assert ours["precision"] == pytest.approx(100 * precision.mean(), abs=1e-10)
    assert ours["recall"] == pytest.approx(100 * recall.mean(), abs=1e-10)
    assert ours["f1"] == pytest.approx(100 * f1.mean(), abs=1e-10)
    present = support > 0
    ours = node_macro_prf(Y, P, hierarchy, threshold=threshold, present_only=True)
    assert ours["recall"] == pytest.approx(100 * recall[present].mean(), abs=1e-10)
    assert ours["f1"] == pytest.approx(100 * f1[present].mean(), abs=1e-10)
    table = per_node_table(Y, P, hierarchy, threshold=threshold)
    np.testing.assert_allclose(table["f1"], 100 * f1, atol=1e-10)
    np.testing.assert_array_equal(table["test_positives"], support)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_au_prc_matches_sklearn(seed, decimals):
    hierarchy, Y, P = random_case(seed, dag=bool(seed % 2), decimals=decimals)
    ev = hierarchy.evaluated
    expected = average_precision_score(Y[:, ev], P[:, ev], average="micro")
    assert au_prc(Y, P, hierarchy) == pytest.approx(expected, abs=1e-12)
    with_root = average_precision_score(Y, P, average="micro")
    assert with_root != pytest.approx(expected, abs=1e-6)  # the root column does matter to sklearn
    expected_binary = average_precision_score(Y[:, ev], (P[:, ev] >= 0.5).astype(float), average="micro")
    assert binary_ap(Y, P, hierarchy) == pytest.approx(expected_binary, abs=1e-12)


def test_au_prc_float32_ties_and_int_labels_match_sklearn():
    hierarchy, Y, P = random_case(11, n_samples=60, n_nodes=30, decimals=2)
    P32 = P.astype(np.float32)
    Yint = Y.astype(np.int64)
    ev = hierarchy.evaluated
    expected = average_precision_score(Yint[:, ev], P32[:, ev], average="micro")
    assert au_prc(Yint, P32, hierarchy) == pytest.approx(expected, abs=1e-12)


def test_au_prc_matches_sklearn_medium_size():
    rng = np.random.default_rng(5)
    hierarchy = random_hierarchy(600, max_depth=6, dag=True, seed=5)
    Y = hierarchy.close(rng.random((200, 600)) < 0.01)
    P = np.round(rng.random((200, 600)) * 0.7 + 0.3 * Y, 3)
    ev = hierarchy.evaluated
    assert au_prc(Y, P, hierarchy) == pytest.approx(
        average_precision_score(Y[:, ev], P[:, ev], average="micro"), abs=1e-12
    )


def test_au_prc_go_size_runs():
    rng = np.random.default_rng(0)
    hierarchy = random_hierarchy(4100, max_depth=10, dag=True, seed=0)
    Y = hierarchy.close(rng.random((1300, 4100)) < 0.002)
    P = rng.random((1300, 4100)).astype(np.float32)
    value = au_prc(Y, P, hierarchy)
    ev = hierarchy.evaluated
    assert 0.0 < value < 1.0
    assert value == pytest.approx(Y[:, ev].mean(), rel=0.2)  # random scores: AP ~ prevalence


# ---------------------------------------------------------------------- permutation invariance
def permuted(hierarchy: Hierarchy, order: np.ndarray) -> Hierarchy:
    """The same hierarchy with node i of the result = node order[i] of the input."""
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return Hierarchy(
        tuple(hierarchy.nodes[i] for i in order),
        position[hierarchy.edges],
        hierarchy.not_evaluated,
    )


@pytest.mark.parametrize("dag", [False, True])
def test_invariant_to_node_order(dag):
    hierarchy, Y, P = random_case(3, dag=dag, decimals=2)
    train_Y = hierarchy.close(np.random.default_rng(4).random((80, len(hierarchy))) < 0.1)
    order = np.random.default_rng(0).permutation(len(hierarchy))
    other = permuted(hierarchy, order)
    assert other.nodes != hierarchy.nodes
    np.testing.assert_array_equal(other.depth, hierarchy.depth[order])
    a = evaluate(Y, P, hierarchy, train_Y=train_Y)
    b = evaluate(Y[:, order], P[:, order], other, train_Y=train_Y[:, order])
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-12), key
    ta = per_node_table(Y, P, hierarchy, train_Y=train_Y).sort_values("node").reset_index(drop=True)
    tb = per_node_table(Y[:, order], P[:, order], other, train_Y=train_Y[:, order])
    tb = tb.sort_values("node").reset_index(drop=True)
    np.testing.assert_array_equal(ta.to_numpy(), tb.to_numpy())
    da, db = recall_by_depth(Y, P, hierarchy), recall_by_depth(Y[:, order], P[:, order], other)
    np.testing.assert_allclose(da.to_numpy(dtype=float), db.to_numpy(dtype=float))
    fa = recall_by_frequency(Y, P, hierarchy, train_Y)
    fb = recall_by_frequency(Y[:, order], P[:, order], other, train_Y[:, order])
    np.testing.assert_allclose(fa.to_numpy(dtype=float), fb.to_numpy(dtype=float))
    parent, child = next((p, c) for p, c in hierarchy.edges if hierarchy.evaluated[p])
    Pbad = P.copy()
    Pbad[:, child] = Pbad[:, parent] + 0.5
    assert coherence_violations(Pbad, hierarchy) == coherence_violations(Pbad[:, order], other) > 0


# ---------------------------------------------------------------------- coherence
def test_coherence_violations_counts_planted_violations():
    hierarchy, Y, P = random_case(2, n_samples=30, dag=True)
    assert coherence_violations(P, hierarchy) == 0 and is_coherent(P, hierarchy)
    # plant: a child of an evaluated parent, in two samples, just above the parent
    parent, child = next((p, c) for p, c in hierarchy.edges if hierarchy.evaluated[p] and len(hierarchy.parents[c]) == 1)
    P = P.copy()
    P[[3, 7], child] = P[[3, 7], parent] + 0.01
    # the child has one parent and its own children stay below it: exactly 2 violating pairs
    assert coherence_violations(P, hierarchy) == 2
    assert not is_coherent(P, hierarchy)
    assert coherence_violations(P, hierarchy, tol=0.02) == 0
    assert is_coherent(P, hierarchy, tol=0.02)
    assert evaluate(Y, P, hierarchy)["coherent"] is False


def test_coherence_on_tiny_hand_case(tiny):
    hierarchy, _, P = tiny
    P = P.copy()
    P[:, 3] = [0.95, 0.3, 0.85]  # a/c above a (0.9, 0.4, 0.8) in samples 0 and 2
    assert coherence_violations(P, hierarchy) == 2
    P[:, 2] = 1.5  # b above root: root edges are not checked
    assert coherence_violations(P, hierarchy) == 2


# ---------------------------------------------------------------------- groupings
def test_recall_by_depth_hand_case(tiny):
    hierarchy, Y, P = tiny
    table = recall_by_depth(Y, P, hierarchy)
    assert table.index.name == "depth"
    assert list(table.columns) == ["n_nodes", "n_present", "recall"]
    assert table.index.tolist() == [1, 2]
    assert table["n_nodes"].tolist() == [2, 1]
    assert table["n_present"].tolist() == [2, 1]
    assert table["recall"].to_dict() == pytest.approx({1: 75.0, 2: 100.0})


def test_recall_by_depth_skips_absent_nodes():
    hierarchy = Hierarchy.from_paths(["a/x", "b/y"])  # root, a, b, a/x, b/y
    Y = np.array([[1, 1, 0, 1, 0], [1, 1, 1, 0, 0]])
    P = np.array([[1, 0.9, 0.1, 0.2, 0.1], [1, 0.9, 0.9, 0.1, 0.1]])
    table = recall_by_depth(Y, P, hierarchy)
    assert table.loc[1].tolist() == [2, 2, 100.0]
    assert table.loc[2, "n_nodes"] == 2 and table.loc[2, "n_present"] == 1  # b/y absent
    assert table.loc[2, "recall"] == 0.0  # a/x present, missed
    Y[0, 3] = 0
    assert np.isnan(recall_by_depth(Y, P, hierarchy).loc[2, "recall"])


def test_recall_by_frequency_hand_case():
    # root -> a..e; training positives a 3, b 5, c 20, d 150, e 99 (an edge lands in the upper bucket)
    hierarchy = Hierarchy.from_paths(["a", "b", "c", "d", "e"])
    train_Y = np.zeros((150, 6), dtype=bool)
    train_Y[:, 0] = True
    for column, n in zip(range(1, 6), [3, 5, 20, 150, 99]):
        train_Y[:n, column] = True
    # test: a found, b half found, c missed, d found, e absent from test
    Y = np.array([[1, 1, 1, 1, 1, 0], [1, 0, 1, 1, 0, 0]])
    P = np.array([[1, 0.9, 0.9, 0.1, 0.9, 0.9], [1, 0.1, 0.1, 0.1, 0.1, 0.9]])
    table = recall_by_frequency(Y, P, hierarchy, train_Y)
    assert table.index.name == "bucket"
    assert table.index.tolist() == ["<5", "5-19", "20-99", ">=100"]
    assert table["n_nodes"].tolist() == [1, 1, 2, 1]
    assert table["n_present"].tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(table["recall"], [100.0, 50.0, 0.0, 100.0])
    custom = recall_by_frequency(Y, P, hierarchy, train_Y, buckets=(10,))
    assert custom.index.tolist() == ["<10", ">=10"]
    assert custom["n_nodes"].tolist() == [2, 3]
    np.testing.assert_allclose(custom["recall"], [75.0, 50.0])
    empty = recall_by_frequency(Y, P, hierarchy, train_Y, buckets=(1, 2))
    assert empty.loc["1-1", "n_nodes"] == 0 and np.isnan(empty.loc["1-1", "recall"])
    # recall_rare: present nodes with < 20 training positives: a (100) and b (50)
    assert evaluate(Y, P, hierarchy, train_Y=train_Y)["recall_rare"] == pytest.approx(75.0)


# ---------------------------------------------------------------------- input validation
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda Y, P: (Y[:, :3], P[:, :3]), "hierarchy has 4 nodes"),
        (lambda Y, P: (Y, P[:2]), "same shape"),
        (lambda Y, P: (Y[:0], P[:0]), "no samples"),
        (lambda Y, P: (Y[0], P[0]), "2-D"),
        (lambda Y, P: (Y, np.where(np.eye(3, 4, dtype=bool), np.nan, P)), "NaN"),
        (lambda Y, P: (Y, np.where(np.eye(3, 4, dtype=bool), np.inf, P)), "NaN or infinite"),
        (lambda Y, P: (2 * Y, P), "0/1"),
    ],
)
@pytest.mark.parametrize(
    "metric", [au_prc, binary_ap, node_macro_prf, per_node_table, recall_by_depth, evaluate]
)
def test_invalid_inputs_raise(tiny, make, message, metric):
    hierarchy, Y, P = tiny
    Y, P = make(Y, P)
    with pytest.raises(ValueError, match=message):
        metric(Y, P, hierarchy)


def test_invalid_train_labels_and_buckets_raise(tiny):
    hierarchy, Y, P = tiny
    with pytest.raises(ValueError, match="train_Y has 3 columns"):
        evaluate(Y, P, hierarchy, train_Y=Y[:, :3])
    with pytest.raises(ValueError, match="train_Y"):
        recall_by_frequency(Y, P, hierarchy, Y[:0])
    with pytest.raises(ValueError, match="buckets"):
        recall_by_frequency(Y, P, hierarchy, Y, buckets=(20, 5))
    with pytest.raises(ValueError, match="NaN"):
        coherence_violations(np.full((2, 4), np.nan), hierarchy)
    with pytest.raises(ValueError, match="hierarchy has 4 nodes"):
        is_coherent(P[:, :3], hierarchy)
