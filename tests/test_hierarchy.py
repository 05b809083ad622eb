from __future__ import annotations

import numpy as np
import pytest

from hmlearn.data.synthetic import random_hierarchy
from hmlearn.errors import HierarchyError
from hmlearn.hierarchy import MAX_DEPTH, Hierarchy


def brute_force_descendants(h: Hierarchy) -> list[set[int]]:
    """Depth-first walk from every node: the reference for descendant_matrix."""
    result = []
    for start in range(len(h)):
        seen, stack = {start}, [start]
        while stack:
            node = stack.pop()
            for child in h.edges[h.edges[:, 0] == node, 1]:
                if int(child) not in seen:
                    seen.add(int(child))
                    stack.append(int(child))
        result.append(seen)
    return result


def test_from_paths_builds_every_prefix_under_root():
    h = Hierarchy.from_paths(["01/05/06", "01/07", "02"])
    assert h.nodes == ("root", "01", "02", "01/05", "01/07", "01/05/06")
    assert h.parents[h.index["01/05/06"]].tolist() == [h.index["01/05"]]
    assert h.parents[h.index["01"]].tolist() == [h.index["root"]]
    assert h.depth[h.index["01/05/06"]] == 3 and h.depth[h.index["root"]] == 0
    assert set(h.nodes[i] for i in h.leaves) == {"01/05/06", "01/07", "02"}
    assert h.roots.tolist() == [h.index["root"]]
    assert h.evaluated.tolist() == [False, True, True, True, True, True]
    assert h.is_tree


def test_from_paths_any_separator_and_sequences():
    h = Hierarchy.from_paths(["Biota > Fish > Shark", ["Biota", "Coral"]], separator=" > ")
    assert "Biota > Fish > Shark" in h.index and "Biota > Coral" in h.index
    assert h.ancestors("Biota > Fish > Shark").tolist() == sorted(
        h.index[n] for n in ("root", "Biota", "Biota > Fish", "Biota > Fish > Shark")
    )


def test_from_edges_dag_multiple_parents_and_default_roots():
    h = Hierarchy.from_edges(["root/A", "root/B", "A/C", "B/C", "C/D"])
    assert not h.is_tree
    assert sorted(h.nodes[i] for i in h.parents[h.index["C"]]) == ["A", "B"]
    assert h.not_evaluated == frozenset({"root"})
    assert h.depth[h.index["D"]] == 3
    assert sorted(h.nodes[i] for i in h.ancestors("D")) == ["A", "B", "C", "D", "root"]
    assert sorted(h.nodes[i] for i in h.descendants("A", include_self=False)) == ["C", "D"]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dag", [False, True])
def test_ancestors_descendants_match_brute_force(seed, dag):
    h = random_hierarchy(n_nodes=40 + 10 * seed, max_depth=6, dag=dag, seed=seed)
    reference = brute_force_descendants(h)
    R = h.descendant_matrix.toarray().astype(bool)
    for i in range(len(h)):
        assert set(np.flatnonzero(R[i])) == reference[i]
        assert set(h.descendants(i)) == reference[i]
        assert set(h.ancestors(i)) == {j for j in range(len(h)) if i in reference[j]}
    assert np.array_equal(h.ancestor_matrix.toarray().astype(bool), R.T)


@pytest.mark.parametrize("seed", range(5))
def test_levels_cover_every_edge_children_before_parents(seed):
    h = random_hierarchy(n_nodes=60, max_depth=5, dag=True, seed=seed)
    flat = np.concatenate(h.levels)
    assert sorted(map(tuple, flat.tolist())) == sorted(map(tuple, h.edges.tolist()))
    for k, level in enumerate(h.levels):
        assert np.all(h.height[level[:, 0]] == k + 1)
        assert np.all(h.height[level[:, 1]] <= k)


def test_cycle_is_rejected_and_named():
    with pytest.raises(HierarchyError, match=r"cycle in hierarchy: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"):
        Hierarchy.from_edges([("root", "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(HierarchyError, match="'x' is its own parent"):
        Hierarchy.from_edges([("root", "x"), ("x", "x")])


def test_cycle_is_named_when_the_first_node_left_over_lies_below_it():
    with pytest.raises(HierarchyError, match=r"cycle in hierarchy: y -> x -> y"):
        Hierarchy.from_edges([("root", "x"), ("x", "y"), ("y", "x"), ("y", "a")])


def test_duplicate_nodes_are_rejected_and_named():
    with pytest.raises(HierarchyError, match="duplicate node.*'01/02'"):
        Hierarchy.from_paths(["01", "01/02", "01/02"], strict=True)
    with pytest.raises(HierarchyError, match="duplicate node.*: a"):
        Hierarchy(("a", "b", "a"), np.array([[0, 1]]))


def test_hierarchies_deeper_than_max_depth_are_refused():
    assert Hierarchy.from_paths(["/".join(["a"] * MAX_DEPTH)]).max_depth == MAX_DEPTH
    with pytest.raises(HierarchyError, match=rf"label path 'a/a/a/.*\.\.\.' has {MAX_DEPTH + 1} levels; at most"):
        Hierarchy.from_paths(["/".join(["a"] * (MAX_DEPTH + 1))])
    chain = [(f"n{i}", f"n{i + 1}") for i in range(MAX_DEPTH)]
    assert Hierarchy.from_edges(chain).max_depth == MAX_DEPTH
    with pytest.raises(HierarchyError, match=rf"node 'n{MAX_DEPTH + 1}' is {MAX_DEPTH + 1} levels deep; at most"):
        Hierarchy.from_edges([*chain, (f"n{MAX_DEPTH}", f"n{MAX_DEPTH + 1}")])


def test_encode_closes_upwards_and_names_unknown_labels():
    h = Hierarchy.from_paths(["01/05/06", "02/01"])
    Y = h.encode([["01/05/06"], ["02/01", "01"], []])
    assert h.labels_of(Y[0]) == ["root", "01", "01/05", "01/05/06"]
    assert set(h.labels_of(Y[1])) == {"root", "01", "02", "02/01"}
    assert not Y[2].any()
    with pytest.raises(HierarchyError, match=r"sample 1: label '03/01' is not a node"):
        h.encode([["01"], ["03/01"]], source="x.arff")


@pytest.mark.parametrize("seed", range(4))
def test_close_is_idempotent_and_superset(seed):
    rng = np.random.default_rng(seed)
    h = random_hierarchy(50, 5, dag=True, seed=seed)
    Y = rng.random((30, len(h))) < 0.1
    closed = h.close(Y)
    assert np.all(closed >= Y)
    assert np.array_equal(h.close(closed), closed)
    assert h.is_closed(closed) and (not Y.any() or not h.is_closed(Y) or np.array_equal(Y, closed))
    for parent, child in h.edges:
        assert np.all(closed[:, parent] >= closed[:, child])


def test_close_rejects_wrong_shape():
    h = Hierarchy.from_paths(["a/b"])
    with pytest.raises(HierarchyError, match=r"shape \(2, 5\), expected \(samples, 3\)"):
        h.close(np.zeros((2, 5)))


def test_round_trip_through_dict():
    h = random_hierarchy(30, 4, dag=True, seed=3)
    again = Hierarchy.from_dict(h.to_dict())
    assert again == h and hash(again) == hash(h)
    assert np.array_equal(again.descendant_matrix.toarray(), h.descendant_matrix.toarray())
