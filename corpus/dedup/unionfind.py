"""Connected components of a graph given as edge arrays: union-find done in whole-array numpy steps.

Each round hooks, for every edge whose ends have different roots, the larger root under the smaller one
(`np.minimum.at`), then compresses paths by pointer jumping until every node points at its root. Roots only ever
point to smaller nodes, so no cycle can form; every round removes at least one root and in practice a few rounds
suffice (each halves the components spanned by the remaining edges). The label of a component is its smallest
node, which is the first seen when nodes are numbered in input order.
"""

from __future__ import annotations

import numpy as np


def connected_components(n_nodes: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(n_nodes,) int64: the smallest node of each node's component (a node without edges labels itself)."""
    parent = np.arange(n_nodes, dtype=np.int64)
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    while len(left):
        left_root, right_root = parent[left], parent[right]
        open_edges = left_root != right_root
        left, right = left[open_edges], right[open_edges]
        if not len(left):
            break
        left_root, right_root = left_root[open_edges], right_root[open_edges]
        np.minimum.at(parent, np.maximum(left_root, right_root), np.minimum(left_root, right_root))
        parent = _compress(parent)
    return parent


def _compress(parent: np.ndarray) -> np.ndarray:
    while True:
        grandparent = parent[parent]
        if np.array_equal(grandparent, parent):
            return parent
        parent = grandparent


def components_of_edges(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, labels) for the nodes that appear in the edges only, so memory follows the edges, not the corpus.

    `nodes` is sorted; `labels[i]` is the smallest node of the component of `nodes[i]` (in the caller's numbering).
    """
    nodes = np.sort(np.concatenate([left, right]))
    nodes = nodes[np.concatenate([[True], nodes[1:] != nodes[:-1]])] if len(nodes) else nodes
    local = connected_components(len(nodes), np.searchsorted(nodes, left), np.searchsorted(nodes, right))
    return nodes, nodes[local]
