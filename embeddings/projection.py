"""Two-dimensional maps of word vectors, shared by the plots and the web explorer.

The map is scikit-learn's `TruncatedSVD` (randomized, fixed `random_state`: the
same words give the same map) of full-dimensional vectors centred on the mean of
the vectors it is fit on, i.e. their two directions of largest spread (PCA).
Callers pass unit-length rows, so distances on the map follow cosines.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANDOM_STATE = 0


@dataclass(frozen=True)
class Projection:
    """`points[i]` is the 2-D position of the i-th projected row; `explained_variance`
    is the share of the fitted rows' variance along each axis (0 when they do not vary)."""

    points: np.ndarray  # (n, 2) float64
    explained_variance: tuple[float, float]


def project_2d(vectors: np.ndarray, fit: np.ndarray | None = None,
               random_state: int = RANDOM_STATE) -> Projection:
    """Project `vectors` (n x d) onto the two main axes of `fit` (m x d, default `vectors`).

    Raises `ValueError` for fewer than 2 dimensions, no row to fit on, or rows that are
    not finite. One row to fit on (or identical rows) gives one point: the origin.
    """
    # scikit-learn takes about 1 s to import; only the maps need it.
    from sklearn.decomposition import TruncatedSVD

    vectors = np.asarray(vectors, dtype=np.float32)
    fit = vectors if fit is None else np.asarray(fit, dtype=np.float32)
    if vectors.ndim != 2 or fit.ndim != 2 or vectors.shape[1] != fit.shape[1]:
        raise ValueError(f"expected two matrices with the same number of columns, got shapes "
                         f"{vectors.shape} and {fit.shape}")
    if vectors.shape[1] < 2:
        raise ValueError("a 2-D map needs vectors with at least 2 dimensions")
    if len(fit) < 1:
        raise ValueError("a 2-D map needs at least one word to fit on")
    if not (np.all(np.isfinite(vectors)) and np.all(np.isfinite(fit))):
        raise ValueError("the vectors to map must be finite")
    if fit.shape[1] == 2:  # TruncatedSVD needs more features than components
        fit = np.hstack([fit, np.zeros((len(fit), 1), np.float32)])
        vectors = np.hstack([vectors, np.zeros((len(vectors), 1), np.float32)])
    mean = fit.mean(axis=0)
    centred = fit - mean
    if not np.any(centred):  # every fitted row is the same: one point, no direction
        return Projection(np.zeros((len(vectors), 2)), (0.0, 0.0))
    svd = TruncatedSVD(n_components=2, algorithm="randomized", random_state=random_state)
    svd.fit(centred)
    points = np.asarray(svd.transform(vectors - mean), dtype=np.float64)
    ratio = np.nan_to_num(svd.explained_variance_ratio_[:2], nan=0.0, posinf=0.0, neginf=0.0)
    return Projection(points, (float(ratio[0]), float(ratio[1])))
