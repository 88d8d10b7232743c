"""The one top-k selection used by every nearest-neighbour search in the project
(FAISS's brute-force oracle, the query layer, contextual lookups, the plots)."""
from __future__ import annotations

import numpy as np


def as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """A C-contiguous float32 (m x dim) copy-or-view; FAISS only asserts dimensions."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"query vectors must have {dim} dimensions, got shape {queries.shape}")
    return queries


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` largest entries of each row of `scores`, best first, ties by lower id:
    (scores float32 (m x k), ids int64 (m x k))."""
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.float32), empty.astype(np.int64)
    if k < n:
        part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
    else:
        part = np.tile(np.arange(n), (scores.shape[0], 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # Best first; equal scores by ascending id so the order never depends on argpartition.
    order = np.lexsort((part, -part_scores), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return np.take_along_axis(part_scores, order, axis=1).astype(np.float32), ids
