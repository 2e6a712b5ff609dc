"""Feature priors of iALS: each row's vector is centred on a linear map of its features.

Feature-aware iALS (``fit(train, mfjax.ImplicitALS(...), features=F)``) adds to the
iALS objective L of :mod:`mfjax.models.implicit_als.objective` a Gaussian prior per row, with the
maps A [k, d_u] and B [k, d_i] of the user and item features:

    L_F = Σ c_ui (1 − <x_u, y_i>)² + α0 Σ_u Σ_i <x_u, y_i>²
          + λ [Σ_u λ̃_u ‖x_u − A f_u‖² + Σ_i λ̃_i ‖y_i − B g_i‖²]
          + λ_A (‖A‖² + ‖B‖²),

``f_u`` = [the user's feature row, 1] (an intercept column; an ID without features
has f = 0, so its prior mean is 0 and its row is plain iALS). With the maps fixed the
row solves keep their closed form with one extra right-hand-side term,

    (Yᵀ C_u Y + α0 YᵀY + λ λ̃_u I) x_u = Yᵀ C_u p_u + λ λ̃_u A f_u

(:func:`mfjax.models.implicit_als.row_solves.cholesky_rows`' ``prior``). With the rows fixed each
map is a ridge regression over the rows that have interactions (and features),

    Aᵀ = (Fᵀ F + λ_A I)⁻¹ Fᵀ X      (F [n, d], X [n, k]; a [d, d] system, float64),

unweighted by λ̃ (the regression :func:`ridge_map` solves; with ν = 0 it is the exact
block minimiser of L_F). Rows without interactions take no part in the sweeps (they
stay 0, as in iALS, so they add nothing to α0 YᵀY); at the end a row with features and
no interactions gets its prior mean, ``y_i = B g_i`` (:func:`fill_rows`). The maps are
functions of the tables (:func:`maps_of`), so a checkpoint, a saved model and serving
need nothing beyond the factors, the features and λ_A.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Priors", "feature_matrix", "ridge_map", "maps_of", "fill_rows", "prior_means"]


def feature_matrix(table, raw_ids) -> tuple[np.ndarray, np.ndarray]:
    """``(F, known)``: F [n, d + 1] float64, the rows of ``table`` (a
    :class:`mfjax.FeatureTable`) for ``raw_ids`` [n] with an intercept column 1 last,
    all 0 for an ID the table lacks; ``known`` [n] bool. ``table`` None: F [n, 0]."""
    n = len(raw_ids)
    if table is None:
        return np.zeros((n, 0)), np.zeros(n, bool)
    _, _, _, known = table.rows_for(raw_ids)
    known = np.asarray(known, bool)
    F = np.zeros((n, table.n_columns + 1))
    F[:, :-1] = table.dense(raw_ids)
    F[:, -1] = known
    return F, known


def ridge_map(F: np.ndarray, X: np.ndarray, fit_rows: np.ndarray, reg: float) -> np.ndarray:
    """W [d, k] = argmin_W Σ_{r ∈ fit_rows} ‖x_r − Wᵀ f_r‖² + ``reg`` ‖W‖², in float64.

    Args:
        F: features [n, d]; X: the rows' vectors [n, k]; fit_rows: bool [n], the rows
            regressed on (those with interactions and features); reg: λ_A ≥ 0.

    Returns:
        W = (F_sᵀ F_s + λ_A I)⁻¹ F_sᵀ X_s (the map A = Wᵀ); zeros when no row is
        fitted or d = 0. With λ_A = 0 and a singular F_sᵀF_s, the least-squares
        minimiser of smallest norm (``lstsq``), not an error.
    """
    X = np.asarray(X, np.float64)
    d, k = F.shape[1], X.shape[1]
    if d == 0 or not fit_rows.any():
        return np.zeros((d, k))
    Fs, Xs = F[fit_rows], X[fit_rows]
    lhs = Fs.T @ Fs + reg * np.eye(d)
    rhs = Fs.T @ Xs
    if reg > 0:
        return np.linalg.solve(lhs, rhs)
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


def prior_means(F: np.ndarray, W: np.ndarray, active: np.ndarray) -> np.ndarray:
    """m = F W [n, k] on the rows ``active`` (with interactions), 0 elsewhere."""
    if F.shape[1] == 0:
        return np.zeros((F.shape[0], W.shape[1]))
    return np.where(active[:, None], F @ W, 0.0)


def maps_of(X: np.ndarray, F: np.ndarray, known: np.ndarray, active: np.ndarray,
            reg: float) -> np.ndarray:
    """The map W [d, k] of one side from its table X [n, k]: :func:`ridge_map` over
    the rows with interactions (``active``) and features (``known``)."""
    return ridge_map(F, np.asarray(X)[: F.shape[0]], active & known, reg)


def fill_rows(X: np.ndarray, F: np.ndarray, W: np.ndarray, known: np.ndarray,
              active: np.ndarray) -> np.ndarray:
    """X [n, k] with each row that has features and no interactions set to its prior
    mean, ``x_r = Wᵀ f_r`` (the other rows unchanged)."""
    X = np.array(X, copy=True)
    cold = known & ~active
    if cold.any():
        X[cold] = (F[cold] @ W).astype(X.dtype)
    return X


class Priors:
    """Both sides' feature matrices for one fit (``run.features`` on ``train``'s IDs).

    Attributes:
        reg: λ_A.
        sides: ``{"users": (F, known, active), "items": (...)}`` with F [n, d + 1]
            (:func:`feature_matrix`), ``known`` the rows with features, ``active`` the
            rows with interactions.
    """

    def __init__(self, features, user_ids, item_ids, user_counts, item_counts, reg: float):
        self.reg = float(reg)
        self.sides = {}
        for side, ids, counts in (("users", user_ids, user_counts),
                                  ("items", item_ids, item_counts)):
            F, known = feature_matrix(features.table(side), ids)
            self.sides[side] = (F, known, np.asarray(counts) > 0)

    def map(self, side: str, X) -> np.ndarray:
        """The side's map W [d, k] from its current table X (:func:`maps_of`)."""
        F, known, active = self.sides[side]
        return maps_of(X, F, known, active, self.reg)

    def means(self, side: str, X) -> np.ndarray:
        """The prior means m [n, k] of the side's rows with interactions, from X's map."""
        F, known, active = self.sides[side]
        return prior_means(F, self.map(side, X), active)

    def filled(self, side: str, X) -> np.ndarray:
        """X with the side's feature-only rows set to their prior means (:func:`fill_rows`)."""
        F, known, active = self.sides[side]
        return fill_rows(np.asarray(X), F, self.map(side, X), known, active)
