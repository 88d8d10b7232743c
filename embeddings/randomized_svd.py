"""Randomized truncated SVD (Halko, Martinsson & Tropp 2011) of a sparse matrix held in
row blocks on a Dask cluster; the small dense SVD runs on the driver.

dask-ml's TruncatedSVD does not take sparse input, so the range finder is built here
from row blocks. The blocks are CSR `.npz` files read by path (storage every worker
sees), each loaded once into a worker's memory as a task result, so the products
below run where the block is and a lost worker's blocks are simply loaded again
elsewhere. With A (m x n) = the blocks A_b stacked, k components and l = k + p
columns (p = `n_oversamples`):

* Omega (n x l): scikit-learn's test matrix for the same seed,
  `np.random.RandomState(random_state).normal(size=(n, l))`, drawn by one task. The
  result of a randomized SVD depends on Omega far more than on anything else (on the
  sample corpus, WS353 ranges over 0.44-0.52 across seeds), so the cluster draws the
  same Omega as the serial `svd_embed` (scikit-learn's `TruncatedSVD`) to give the
  same model for the same seed;
* Y_b = A_b Omega on every block; Q = the Q of `dask.array.linalg.tsqr` over the
  tall-skinny Y, whose chunks are the row blocks;
* `n_iter` power iterations: Z = sum_b A_b^T Q_b (summed pairwise on the workers,
  then normalized on one worker by LU, scikit-learn's power-iteration normalizer,
  20x faster than a QR there; n x l is small next to A), then Y_b = A_b Z and
  Q = tsqr(Y) again. (scikit-learn normalizes A Q by LU too; normalizers change the
  basis, not the subspace, so the results are the same up to rounding);
* B^T = sum_b A_b^T Q_b (n x l, summed on the workers) is the only intermediate that
  comes to the driver; the SVD of B = Q^T A runs there (LAPACK gesdd, as scikit-learn);
* signs as scikit-learn's `TruncatedSVD` (`svd_flip(u, v, u_based_decision=False)`:
  each right singular vector's largest entry is positive);
* the left factor, on the workers, then gathered: U_b = Q_b U_B, or with
  `fit_transform` A_b V (what `TruncatedSVD.fit_transform` returns, U * S up to
  the approximation).

Sums over blocks run in a fixed tree, so a run is reproducible for a given block
layout (`row_blocks`; the trainer's follows the worker count; another layout
changes the float32 rounding only). The products run
in `dtype` (float32 by default, like `svd_embed`: half the memory traffic). The
defaults (`n_oversamples=10`, `n_iter=5`) are scikit-learn's.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from .cluster import TASK_RETRIES, tree_reduce
from .cooccurrence import load_counts_npz

__all__ = ["BLOCKS_PER_WORKER", "N_OVERSAMPLES", "randomized_svd_on_cluster", "row_blocks"]

#: Row blocks per worker thread (more than one evens out unequal workers).
BLOCKS_PER_WORKER = 2
#: Extra columns of the range finder (scikit-learn's default `n_oversamples`).
N_OVERSAMPLES = 10


def row_blocks(indptr: np.ndarray, n_blocks: int, min_rows: int = 1) -> list[tuple[int, int]]:
    """(lo, hi) row ranges of a CSR matrix with about equal non-zeros each, at most
    `n_blocks` of them and each at least `min_rows` rows tall (QR wants tall blocks)."""
    n_rows = len(indptr) - 1
    n_blocks = max(1, min(n_blocks, n_rows // max(1, min_rows)))
    nnz = np.asarray(indptr, dtype=np.int64)
    targets = nnz[-1] * np.arange(1, n_blocks) / n_blocks
    cuts = np.searchsorted(nnz, targets, side="left").tolist()
    edges = [0]
    for cut in cuts + [n_rows]:
        cut = min(max(cut, edges[-1] + min_rows), n_rows)
        if n_rows - cut < min_rows:
            cut = n_rows
        if cut > edges[-1]:
            edges.append(cut)
        if cut == n_rows:
            break
    return list(zip(edges[:-1], edges[1:]))


# -- tasks (run on the workers) ---------------------------------------------------
def _load_block(path: str, shape: tuple[int, int], dtype: str) -> sp.csr_matrix:
    """Task: a row block from its `.npz` (no pickle), in `dtype`."""
    return sp.csr_matrix(load_counts_npz(path, shape), dtype=dtype)


def _gaussian(random_state: int, n: int, size: int, dtype: str) -> np.ndarray:
    """Task: the range finder's test matrix Omega (n x size), scikit-learn's for this seed."""
    return np.random.RandomState(random_state).normal(size=(n, size)).astype(dtype, copy=False)


def _times(block: sp.csr_matrix, dense: np.ndarray) -> np.ndarray:
    """Task: A_b @ X (the block's rows of A X, X n x l)."""
    return np.asarray(block @ dense)


def _t_times(block: sp.csr_matrix, q: np.ndarray) -> np.ndarray:
    """Task: A_b^T @ Q_b, one block's share of A^T Q (n x l)."""
    return np.asarray(block.T @ q)


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Task: a + b (partial sums of A^T Q)."""
    return a + b


def _normalized(z: np.ndarray) -> np.ndarray:
    """Task: a well-conditioned basis of the columns of `z` (the permuted L of its LU)."""
    import scipy.linalg

    return scipy.linalg.lu(z, permute_l=True, check_finite=False)[0]


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Task: a @ b (U_b = Q_b U_B)."""
    return a @ b


# -- the driver ---------------------------------------------------------------------
def _tsqr_q(client: Any, ys: Sequence[Any], heights: Sequence[int], width: int, dtype: str) -> list[Any]:
    """Futures of the row blocks of Q, Y = QR by `dask.array.linalg.tsqr` over the blocks `ys`."""
    import dask.array as da

    y = da.concatenate([da.from_delayed(f, shape=(h, width), dtype=dtype) for f, h in zip(ys, heights)])
    q, _ = da.linalg.tsqr(y)
    return client.compute(list(q.to_delayed().ravel()), retries=TASK_RETRIES)


def _submit(client: Any, function: Any, *args: Any) -> Any:
    return client.submit(function, *args, pure=False, retries=TASK_RETRIES)


def randomized_svd_on_cluster(
    client: Any,
    paths: Sequence[str | os.PathLike],
    bounds: Sequence[tuple[int, int]],
    n_cols: int,
    n_components: int,
    *,
    n_oversamples: int = N_OVERSAMPLES,
    n_iter: int = 5,
    random_state: int = 0,
    dtype: Any = np.float32,
    fit_transform: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(U (m x k), S (k,), V^T (k x n)) of the sparse matrix whose rows `bounds[i]` are the
    CSR `.npz` file `paths[i]` (consecutive, from row 0), k = `n_components`, on the cluster.

    With `fit_transform` the first array is A V instead of U (scikit-learn's
    `TruncatedSVD.fit_transform`). See the module docstring for the algorithm and
    the sign convention. Raises `ValueError` for a k not below the smaller side."""
    import scipy.linalg
    from sklearn.utils.extmath import svd_flip
    from threadpoolctl import threadpool_limits

    if len(paths) != len(bounds) or not bounds or bounds[0][0] != 0 or any(
            a[1] != b[0] for a, b in zip(bounds, bounds[1:])):
        raise ValueError("the row blocks must be consecutive from row 0, one path each")
    n_rows = bounds[-1][1]
    k = int(n_components)
    if not 1 <= k < min(n_rows, n_cols):
        raise ValueError(f"n_components={k} must be in 1..{min(n_rows, n_cols) - 1}")
    size = min(k + int(n_oversamples), n_rows, n_cols)
    dtype = np.dtype(dtype).name
    heights = [hi - lo for lo, hi in bounds]
    # Futures only: the blocks stay in the workers' memory while referenced here, and are
    # released (with every intermediate) when this function returns or raises.
    blocks = [_submit(client, _load_block, str(path), (h, n_cols), dtype) for path, h in zip(paths, heights)]
    omega = _submit(client, _gaussian, int(random_state), n_cols, size, dtype)
    q = _tsqr_q(client, [_submit(client, _times, b, omega) for b in blocks], heights, size, dtype)
    del omega
    for _ in range(n_iter):
        z = tree_reduce(client, [_submit(client, _t_times, b, qb) for b, qb in zip(blocks, q)], _add)
        z = _submit(client, _normalized, z)
        q = _tsqr_q(client, [_submit(client, _times, b, z) for b in blocks], heights, size, dtype)
    bt = tree_reduce(client, [_submit(client, _t_times, b, qb) for b, qb in zip(blocks, q)], _add)
    with threadpool_limits(limits=1, user_api="blas"):
        u_b, s, vt = scipy.linalg.svd(bt.result().T, full_matrices=False, lapack_driver="gesdd")  # B (l x n)
    del bt
    u_b, vt = svd_flip(u_b[:, :k], vt[:k], u_based_decision=False)   # U = Q U_B flips with U_B
    if fit_transform:
        v = client.scatter(np.ascontiguousarray(vt.T), broadcast=True, hash=False)
        parts = [_submit(client, _times, b, v) for b in blocks]
    else:
        parts = [_submit(client, _matmul, qb, u_b) for qb in q]
    return np.vstack(client.gather(parts)), s[:k], vt
