"""`Hierarchy`: the single source of truth about nodes, their order and their relations.

A hierarchy is a DAG of parent -> child edges (a tree is the special case with one parent per
node). Everything else in hmlearn (label encoding, the max constraint module, node weights,
metrics) reads node order, ancestors, descendants, depths and the evaluation mask from here and
never re-derives them.

Conventions (METHOD.md section 1):
- ``D(i)``, the descendants of ``i``, include ``i`` itself; so do the ancestors.
- ``R[i, j] = 1`` iff ``j`` in ``D(i)`` (:attr:`Hierarchy.descendant_matrix`).
- Nodes listed in ``not_evaluated`` (by default the nodes without parents) are outputs of the
  network but are skipped by losses and metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from hmlearn.errors import HierarchyError

ROOT = "root"
MAX_DEPTH = 100  # levels below the roots; deeper is refused as malformed (closing labels costs depth^2)


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """A validated DAG over named nodes.

    Build it with :meth:`from_paths`, :meth:`from_edges` or :meth:`from_dict`; the constructor
    takes node names and ``(parent_index, child_index)`` edges and validates them.
    """

    nodes: tuple[str, ...]
    edges: np.ndarray  # (E, 2) int64, columns (parent, child)
    not_evaluated: frozenset[str] = field(default_factory=frozenset)
    separator: str = "/"

    def __post_init__(self) -> None:
        duplicates = sorted(name for name, count in Counter(self.nodes).items() if count > 1)
        if duplicates:
            raise HierarchyError(f"duplicate node(s) in hierarchy: {', '.join(duplicates[:10])}")
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if len(edges) and (edges.min() < 0 or edges.max() >= len(self.nodes)):
            raise HierarchyError("edge refers to a node index outside the hierarchy")
        self_loops = edges[edges[:, 0] == edges[:, 1]]
        if len(self_loops):
            raise HierarchyError(f"cycle in hierarchy: node {self.nodes[self_loops[0, 0]]!r} is its own parent")
        edges = np.unique(edges, axis=0) if len(edges) else edges
        object.__setattr__(self, "edges", edges)
        unknown = set(self.not_evaluated) - set(self.nodes)
        if unknown:
            raise HierarchyError(f"not_evaluated names unknown node(s): {', '.join(sorted(unknown))}")
        self._topological_order()  # raises on a cycle

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_paths(
        cls,
        paths: Iterable[str | Sequence[str]],
        separator: str = "/",
        root: str = ROOT,
        strict: bool = False,
    ) -> Hierarchy:
        """Tree (or forest) from label paths such as ``"01/05/06"``; every prefix is a node.

        A node is named by its full path joined with ``separator`` (``"01/05"``), so equal local
        names under different parents stay distinct. Every top-level node becomes a child of a
        synthetic ``root`` that is not evaluated. ``strict`` refuses a path listed twice.
        """
        names: dict[str, int] = {root: 0}
        edge_list: list[tuple[int, int]] = []
        listed: set[str] = set()
        for path in paths:
            parts = _split_path(path, separator)
            full = separator.join(parts)
            if len(parts) > MAX_DEPTH:  # before building it: the names of its prefixes alone take depth^2
                raise HierarchyError(f"label path {_shortened(full)} has {len(parts)} levels; at most {MAX_DEPTH} "
                                     "are supported")
            if strict and full in listed:
                raise HierarchyError(f"duplicate node in hierarchy: {full!r}")
            listed.add(full)
            parent = 0
            for depth in range(1, len(parts) + 1):
                name = separator.join(parts[:depth])
                if name == root:
                    raise HierarchyError(f"label path {full!r} uses the reserved root name {root!r}")
                index = names.get(name)
                if index is None:
                    index = names[name] = len(names)
                    edge_list.append((parent, index))
                parent = index
        order = sorted(names, key=lambda n: (0 if n == root else n.count(separator) + 1, n))
        return cls._reindexed(list(names), edge_list, order, frozenset({root}), separator)

    @classmethod
    def from_edges(
        cls,
        edges: Iterable[tuple[str, str] | str],
        not_evaluated: Iterable[str] | None = None,
        separator: str = "/",
    ) -> Hierarchy:
        """DAG from ``(parent, child)`` pairs or ``"parent/child"`` strings (the GO convention).

        ``not_evaluated`` defaults to the nodes that have no parent.
        """
        names: dict[str, int] = {}
        edge_list: list[tuple[int, int]] = []
        for edge in edges:
            if isinstance(edge, str):
                parts = edge.split(separator)
                if len(parts) != 2 or not all(parts):
                    raise HierarchyError(f"edge {edge!r} is not of the form 'parent{separator}child'")
                parent, child = parts
            else:
                parent, child = edge
            for name in (parent, child):
                if name not in names:
                    names[name] = len(names)
            edge_list.append((names[parent], names[child]))
        edge_list = list(dict.fromkeys(edge_list))  # an edge listed twice is one edge
        order = sorted(names)
        if not_evaluated is None:
            has_parent = {c for _, c in edge_list}
            skip = frozenset(n for n, i in names.items() if i not in has_parent)
        else:
            skip = frozenset(not_evaluated)
        hierarchy = cls._reindexed(list(names), edge_list, order, skip, separator)
        if hierarchy.max_depth > MAX_DEPTH:
            deepest = hierarchy.nodes[int(np.argmax(hierarchy.depth))]
            raise HierarchyError(f"node {_shortened(deepest)} is {hierarchy.max_depth} levels deep; at most "
                                 f"{MAX_DEPTH} are supported")
        return hierarchy

    @classmethod
    def _reindexed(
        cls,
        names: list[str],
        edge_list: list[tuple[int, int]],
        order: list[str],
        not_evaluated: frozenset[str],
        separator: str,
    ) -> Hierarchy:
        position = {name: i for i, name in enumerate(order)}
        remap = np.array([position[n] for n in names], dtype=np.int64)
        edges = remap[np.asarray(edge_list, dtype=np.int64).reshape(-1, 2)]
        return cls(tuple(order), edges, not_evaluated, separator)

    def to_dict(self) -> dict:
        """Plain-data form (lists and strings) for checkpoints and caches."""
        return {
            "nodes": list(self.nodes),
            "edges": self.edges.tolist(),
            "not_evaluated": sorted(self.not_evaluated),
            "separator": self.separator,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Hierarchy:
        return cls(
            tuple(data["nodes"]),
            np.asarray(data["edges"], dtype=np.int64).reshape(-1, 2),
            frozenset(data["not_evaluated"]),
            data.get("separator", "/"),
        )

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return len(self.nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hierarchy):
            return NotImplemented
        return (
            self.nodes == other.nodes
            and np.array_equal(self.edges, other.edges)
            and self.not_evaluated == other.not_evaluated
        )

    def __hash__(self) -> int:
        return hash((self.nodes, self.edges.tobytes(), self.not_evaluated))

    def __repr__(self) -> str:
        kind = "tree" if self.is_tree else "DAG"
        return f"Hierarchy({len(self)} nodes, {len(self.edges)} edges, {kind}, depth {self.max_depth})"

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @cached_property
    def index(self) -> dict[str, int]:
        """Node name -> position in every (…, N) array."""
        return {name: i for i, name in enumerate(self.nodes)}

    @cached_property
    def parents(self) -> tuple[np.ndarray, ...]:
        return self._grouped(child_to_parent=True)

    @cached_property
    def children(self) -> tuple[np.ndarray, ...]:
        return self._grouped(child_to_parent=False)

    def _grouped(self, child_to_parent: bool) -> tuple[np.ndarray, ...]:
        key, value = (1, 0) if child_to_parent else (0, 1)
        order = np.lexsort((self.edges[:, value], self.edges[:, key]))
        keys, values = self.edges[order, key], self.edges[order, value]
        bounds = np.searchsorted(keys, np.arange(len(self) + 1))
        return tuple(values[bounds[i] : bounds[i + 1]] for i in range(len(self)))

    @cached_property
    def roots(self) -> np.ndarray:
        """Nodes without a parent."""
        return np.flatnonzero(np.bincount(self.edges[:, 1], minlength=len(self)) == 0)

    @cached_property
    def leaves(self) -> np.ndarray:
        """Nodes without a child."""
        return np.flatnonzero(np.bincount(self.edges[:, 0], minlength=len(self)) == 0)

    @cached_property
    def is_tree(self) -> bool:
        return bool(np.all(np.bincount(self.edges[:, 1], minlength=len(self)) <= 1))

    @cached_property
    def evaluated(self) -> np.ndarray:
        """Boolean mask (N,): the nodes that losses and metrics use (roots excluded)."""
        mask = np.ones(len(self), dtype=bool)
        for name in self.not_evaluated:
            mask[self.index[name]] = False
        return mask

    # ------------------------------------------------------------------ order, depth, levels
    def _topological_order(self) -> np.ndarray:
        """Parents before children (Kahn). A cycle raises, naming the nodes on it."""
        n = len(self)
        indegree = np.bincount(self.edges[:, 1], minlength=n)
        children = self.children
        frontier = list(np.flatnonzero(indegree == 0))
        order: list[int] = []
        indegree = indegree.copy()
        while frontier:
            node = frontier.pop()
            order.append(node)
            for child in children[node]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    frontier.append(child)
        if len(order) < n:
            raise HierarchyError(f"cycle in hierarchy: {' -> '.join(self._find_cycle(indegree > 0))}")
        return np.asarray(order, dtype=np.int64)

    def _find_cycle(self, left_over: np.ndarray) -> list[str]:
        """Walk up from a node left over by Kahn's algorithm until a node repeats; the cycle, parent first.

        Up, not down: every left-over node has a left-over parent, but a node below a cycle may
        have no left-over child.
        """
        parents = self.parents
        start = int(np.flatnonzero(left_over)[0])
        path, seen = [start], {start: 0}
        while True:
            nxt = next(int(p) for p in parents[path[-1]] if left_over[p])
            if nxt in seen:
                cycle = path[seen[nxt] :] + [nxt]
                return [self.nodes[i] for i in reversed(cycle)]
            seen[nxt] = len(path)
            path.append(nxt)

    @cached_property
    def topological_order(self) -> np.ndarray:
        return self._topological_order()

    @cached_property
    def depth(self) -> np.ndarray:
        """(N,) int: length of the longest path from a root (roots have depth 0)."""
        depth = np.zeros(len(self), dtype=np.int64)
        for node in self.topological_order:
            for child in self.children[node]:
                depth[child] = max(depth[child], depth[node] + 1)
        return depth

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if len(self) else 0

    @cached_property
    def height(self) -> np.ndarray:
        """(N,) int: length of the longest path down to a leaf (leaves have height 0)."""
        height = np.zeros(len(self), dtype=np.int64)
        for node in self.topological_order[::-1]:
            kids = self.children[node]
            if len(kids):
                height[node] = height[kids].max() + 1
        return height

    @cached_property
    def levels(self) -> tuple[np.ndarray, ...]:
        """Edge groups for max-propagation, deepest first.

        ``levels[k]`` holds the (parent, child) edges whose parent has height ``k + 1``. Once
        levels ``0..k-1`` are propagated, every child in level ``k`` holds its final maximum, so
        one pass per level computes ``max over D(i)`` exactly.
        """
        parent_height = self.height[self.edges[:, 0]]
        return tuple(self.edges[parent_height == h] for h in range(1, int(self.height.max(initial=0)) + 1))

    # ------------------------------------------------------------------ ancestors / descendants
    @cached_property
    def descendant_matrix(self) -> sp.csr_matrix:
        """Sparse (N, N) ``R``: ``R[i, j] = 1`` iff ``j`` is a descendant of ``i`` or ``i`` itself."""
        n = len(self)
        closure: list[set[int]] = [set() for _ in range(n)]
        for node in self.topological_order[::-1]:
            below = closure[node]
            below.add(int(node))
            for child in self.children[node]:
                below |= closure[child]
        rows = np.repeat(np.arange(n), [len(s) for s in closure])
        cols = np.fromiter((j for s in closure for j in sorted(s)), dtype=np.int64, count=len(rows))
        return sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))

    @cached_property
    def ancestor_matrix(self) -> sp.csr_matrix:
        """Sparse (N, N) ``A = R.T``: ``A[i, j] = 1`` iff ``j`` is an ancestor of ``i`` or ``i``."""
        return self.descendant_matrix.T.tocsr()

    def descendants(self, node: int | str, include_self: bool = True) -> np.ndarray:
        return self._row(self.descendant_matrix, node, include_self)

    def ancestors(self, node: int | str, include_self: bool = True) -> np.ndarray:
        return self._row(self.ancestor_matrix, node, include_self)

    def _row(self, matrix: sp.csr_matrix, node: int | str, include_self: bool) -> np.ndarray:
        i = self.index[node] if isinstance(node, str) else int(node)
        row = matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]]
        return np.sort(row if include_self else row[row != i])

    # ------------------------------------------------------------------ labels
    def close(self, Y: np.ndarray) -> np.ndarray:
        """Close label sets upwards: every ancestor of a positive node becomes positive.

        ``Y`` is (S, N) boolean-like; returns a new (S, N) bool array.
        """
        Y = np.asarray(Y)
        if Y.ndim != 2 or Y.shape[1] != len(self):
            raise HierarchyError(f"label matrix has shape {Y.shape}, expected (samples, {len(self)})")
        closed = sp.csr_matrix(Y.astype(bool)).astype(np.int32) @ self.ancestor_matrix.astype(np.int32)
        return closed.toarray() > 0

    def is_closed(self, Y: np.ndarray) -> bool:
        return bool(np.array_equal(self.close(Y), np.asarray(Y, dtype=bool)))

    def encode(self, label_sets: Sequence[Iterable[str]], source: str = "labels") -> np.ndarray:
        """(S, N) bool matrix, closed upwards, from one iterable of node names per sample.

        A name outside the hierarchy raises, naming it (and ``source``, e.g. the file).
        """
        rows: list[int] = []
        cols: list[int] = []
        index = self.index
        for row, labels in enumerate(label_sets):
            for label in labels:
                j = index.get(label)
                if j is None:
                    raise HierarchyError(f"{source}: sample {row}: label {label!r} is not a node of the hierarchy")
                rows.append(row)
                cols.append(j)
        direct = np.zeros((len(label_sets), len(self)), dtype=bool)
        direct[rows, cols] = True
        return self.close(direct)

    def labels_of(self, row: np.ndarray) -> list[str]:
        """Names of the positive nodes in one (N,) row."""
        return [self.nodes[i] for i in np.flatnonzero(row)]


def _shortened(name: str, limit: int = 40) -> str:
    return repr(name if len(name) <= limit else name[: limit - 3] + "...")


def _split_path(path: str | Sequence[str], separator: str) -> list[str]:
    parts = [p.strip() for p in path.split(separator)] if isinstance(path, str) else [str(p).strip() for p in path]
    if not parts or any(p == "" for p in parts):
        raise HierarchyError(f"label path {path!r} has an empty component")
    return parts
