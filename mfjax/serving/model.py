"""The user-facing model: parameters plus ID maps, config and history.

:class:`Model` is a thin shell over the pure functions in :mod:`mfjax.objectives.explicit`:
it maps raw IDs to indices, clips predictions to the rating range, handles
unknown users and items, and saves to npz + JSON (no pickle).
"""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np

from ..objectives.explicit import Params, predict_with_fallback
from .objective import is_implicit
from ..data import IdSpace
from ..persistence import read_model, read_npz, write_model
from ..plumbing import check_positive_int

# read_npz is re-exported for callers that read other npz kinds (training checkpoints).
__all__ = ["Model", "load_model", "read_npz"]


@dataclasses.dataclass(eq=False)
class Model(IdSpace):
    """A trained MF model with its ID maps (``index_users``/``index_items`` map raw IDs).

    Attributes:
        params: the :class:`~mfjax.objectives.explicit.Params`.
        user_ids: raw user ID of each row [n_users].
        item_ids: raw item ID of each row [n_items].
        rating_range: ``(min, max)`` of the training ratings; predictions are clipped to it.
        config: the training configuration (JSON-serializable).
        history: one dict per epoch (``loss``, ``val_rmse``, ``val_mae``, ``seconds``, ...).
        seen_indptr, seen_items: CSR of the training items of each user, used to
            exclude seen items from recommendations.
        posterior: for a Gibbs model (``fit(solver="gibbs")``), the kept samples'
            biases, μ and noise precisions (:data:`mfjax.serving.posterior.POSTERIOR_FIELDS`,
            leading axis S); ``params`` is their posterior mean as one rank k·S
            model. ``None`` otherwise.
    """

    params: Params
    user_ids: np.ndarray
    item_ids: np.ndarray
    rating_range: tuple[float, float]
    config: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    seen_indptr: np.ndarray | None = None
    seen_items: np.ndarray | None = None
    posterior: dict | None = None

    def predict(self, raw_users, raw_items, *, clip: bool = True, return_fallbacks: bool = False,
                return_std: bool = False):
        """Predicted ratings for pairs of raw IDs.

        A known pair gets ``μ + b_u + b_i + <p_u, q_i>``. Unknown IDs fall back:
        an unknown user gets ``μ + b_i``, an unknown item ``μ + b_u``, and both
        unknown ``μ`` (the parts that were learned, nothing invented).

        Args:
            raw_users, raw_items: raw IDs, scalars or equal-length arrays.
            clip: clip to ``rating_range`` (explicit models; the scores of an implicit
                model, iALS or BPR, are preferences, not ratings, and are never clipped).
            return_fallbacks: also return ``{"n_unknown_users", "n_unknown_items"}``,
                counted over the pairs.
            return_std: also return the posterior predictive standard deviation
                of each rating, sqrt(var_s r̂_s + mean_s 1/τ_s) over the S Gibbs
                samples (:func:`mfjax.serving.posterior.predictive_std`); needs a Gibbs
                model (``posterior`` set), else ValueError.

        Returns:
            Predictions as a NumPy array (a float for scalar input), then the
            standard deviations (same shape) when asked, then the fallback
            counts when asked.
        """
        scalar = np.ndim(raw_users) == 0 and np.ndim(raw_items) == 0
        u = np.atleast_1d(self._index("user", raw_users, "predict", "raw_users", "ignore"))
        i = np.atleast_1d(self._index("item", raw_items, "predict", "raw_items", "ignore"))
        if u.shape != i.shape:
            raise ValueError(f"predict: {u.size} users but {i.size} items; pass equal-length arrays")
        pred = self._predict_indices(u, i)
        if clip and not is_implicit(self):  # implicit scores are not ratings: never clipped
            pred = np.clip(pred, *self.rating_range)
        out = float(pred[0]) if scalar else pred
        if return_std:
            if self.posterior is None:
                raise ValueError("predict: return_std=True needs a Gibbs model "
                                 "(fit(solver='gibbs')); this model has no posterior samples")
            from .posterior import predictive_std

            std = predictive_std(self.params, self.posterior, u, i)
            out = (out, float(std[0]) if scalar else std)
        if return_fallbacks:
            out = out if isinstance(out, tuple) else (out,)
            return (*out, {"n_unknown_users": int(np.sum(u < 0)), "n_unknown_items": int(np.sum(i < 0))})
        return out

    def _predict_indices(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Unclipped predictions for row indices, where -1 marks an unknown ID."""
        return np.asarray(predict_with_fallback(self.params, jnp.asarray(u, jnp.int32),
                                                 jnp.asarray(i, jnp.int32)), np.float64)

    # -------------------------------------------------------- recommendation
    def recommend(self, raw_user_ids, n: int = 10, *, exclude_seen: bool = True, items=None,
                  batch_size: int | None = None):
        """The n best items for one user or a batch of users.

        Scores are :meth:`predict`'s formula ``μ + b_u + b_i + <p_u, q_i>``
        (unclipped, so ranks are not tied at the top of the rating range),
        computed by :func:`mfjax.serving.recommend.recommend_indices` in chunks of
        ``batch_size`` users with ``jax.lax.top_k``. Ties go to the item that
        comes first in ``item_ids``.

        An unknown user gets the best items by item bias (scores ``μ + b_i``,
        the fallback of :meth:`predict`) and has nothing seen to exclude. iALS
        models have no biases (every item would score 0), so there an unknown
        user gets the items with the most training interactions, with score 0
        (the model's score for a user without interactions).

        Args:
            raw_user_ids: one raw user ID, or a list/array of them.
            n: items per user (≥ 1).
            exclude_seen: leave out the items each user rated in training.
            items: raw item IDs to rank among (duplicates ignored); ``None`` =
                every item. An ID the model does not know raises KeyError.
            batch_size: users per chunk; the score block is at most
                [batch_size, n_candidates] floats. ``None``: at most ~8 MB
                (:func:`mfjax.serving.recommend.auto_batch_size`).

        Returns:
            ``(raw_item_ids, scores)``, best first. For one user, 1-D arrays of
            length min(n, number of candidates left after exclusion): fewer
            than n when fewer remain. For a batch, 2-D arrays
            [n_users, min(n, number of candidates)]; a user with fewer
            candidates left gets trailing entries with score ``-inf`` and item
            ID ``-1`` (integer item IDs) or ``None`` (other IDs).

        Raises:
            KeyError: an ID in ``items`` is unknown.
            ValueError: ``n`` is not a positive integer, ``items`` is empty,
                or ``exclude_seen`` is asked of a model without a seen index.
        """
        from .recommend import csr_rows, most_popular, recommend_indices

        n = check_positive_int(n, "recommend: n")
        scalar = np.ndim(raw_user_ids) == 0
        if isinstance(raw_user_ids, (list, tuple)):
            # np.asarray(["ghost", 4]) would turn 4 into "4"; keep each ID's own type.
            raw_user_ids = np.array(raw_user_ids, dtype=object)
        users = np.atleast_1d(self._index("user", raw_user_ids, "recommend", "raw_user_ids", "ignore"))
        if users.ndim != 1:
            raise ValueError(f"recommend: raw_user_ids must be a scalar or 1-D, got shape "
                             f"{np.shape(raw_user_ids)}")
        exclude = None
        if exclude_seen:
            exclude = csr_rows(*self._seen("recommend"), users)
        candidates = self._candidates(items, "recommend")
        idx, val = recommend_indices(self.params, users, n, exclude=exclude,
                                     candidates=candidates, batch_size=batch_size)
        unknown = np.flatnonzero(users < 0)
        if unknown.size and self.config.get("objective") == "ials" and self.seen_items is not None:
            idx, val = np.array(idx), np.array(val)
            idx[unknown] = most_popular(self.seen_items, len(self.item_ids), idx.shape[1],
                                        candidates)
            val[unknown] = 0.0
        return self._ranked(idx, val, scalar)


    def recommend_for_ratings(self, raw_item_ids, ratings, n: int = 10, *, items=None,
                              reg: float | None = None, bias_reg: float | None = None,
                              missing: str = "raise"):
        """The n best items for a new user given their ratings, without retraining.

        Folds the user in (:meth:`fold_in`; for an implicit model ``ratings``
        are interaction values, ``None`` all 1) and ranks every candidate by
        ``μ + b + b_i + <p, q_i>``, leaving out the items they rated.

        Args:
            raw_item_ids, ratings: the new user's ratings, equal-length 1-D.
            n: how many items (≥ 1).
            items: raw item IDs to rank among; ``None`` = every item.
            reg, bias_reg, missing: as in :meth:`fold_in`.

        Returns:
            ``(raw_item_ids, scores)``, 1-D, best first; fewer than n when
            fewer candidates remain.
        """
        from .recommend import recommend_indices

        n = check_positive_int(n, "recommend_for_ratings: n")
        p, b, rated = self._fold_in(raw_item_ids, ratings, reg, bias_reg, missing,
                                    "recommend_for_ratings")
        rated = np.unique(rated)
        idx, val = recommend_indices(
            self.params, None, n, exclude=(np.array([0, len(rated)]), rated),
            candidates=self._candidates(items, "recommend_for_ratings"),
            user_factors=jnp.asarray(p)[None, :], user_bias=jnp.asarray([b], p.dtype))
        return self._ranked(idx, val, True)

    def fold_in(self, raw_item_ids, ratings, *, reg: float | None = None,
                bias_reg: float | None = None, missing: str = "raise"):
        """Factor and bias of a new user from their ratings, against the fixed items.

        Solves in closed form the objective of :func:`mfjax.loss` restricted
        to this one user with μ, b_i and q_i held fixed,

            min_(p, b) ½ Σ_i [(μ + b + b_i + <p, q_i> − r_i)² + λ‖p‖² + λ_b b²],

        i.e. ``(Aᵀ A + n_u Λ) [p; b] = Aᵀ y`` with rows ``a_i = [q_i; 1]``,
        ``y_i = r_i − μ − b_i``, ``Λ = diag(λ, …, λ, λ_b)`` and n_u ratings
        (see :func:`mfjax.serving.recommend.fold_in`). A training user folded in from
        their own training ratings gets back their trained (p_u, b_u), up to
        how far training was from convergence. No ratings give p = 0, b = 0,
        which scores like an unknown user.

        Implicit models (``config["objective"]`` ``"ials"``/``"bpr"``): ``ratings``
        are interaction values (``None``: all 1), b = 0, and p is the closed-form
        iALS row solve against the fixed items (exactly the trained vector for a
        training user's own interactions) or a few Newton steps on the user's BPR
        objective (:mod:`mfjax.serving.fold_in`).

        Gibbs models (``config["solver"] == "gibbs"``): the same ridge solve against
        the posterior-mean model (the S samples' factors side by side), with
        ``reg`` (default ``config["reg"]``, which Gibbs itself did not use): a point
        estimate, not a posterior draw for the new user.

        Args:
            raw_item_ids: raw IDs of the rated items [n_u] (repeats count twice).
            ratings: the ratings [n_u], finite.
            reg: λ; ``None`` = the model's training value (``config["reg"]``).
            bias_reg: λ_b; ``None`` = the model's training value
                (``config["bias_reg"]``, which if itself None means λ, as in ``fit``).
            missing: ``"raise"``: an item ID the model does not know raises
                KeyError naming it; ``"ignore"``: such ratings are dropped.

        Returns:
            ``(user_factor [k], user_bias)`` as a NumPy array and a float.

        Raises:
            KeyError: unknown item IDs with ``missing="raise"``.
            ValueError: bad ratings, negative or unavailable regularization,
                or a singular system (λ = 0 with too few ratings).
        """
        p, b, _ = self._fold_in(raw_item_ids, ratings, reg, bias_reg, missing, "fold_in")
        return np.asarray(p), float(b)

    def similar_items(self, raw_item_id, n: int = 10):
        """The n items whose factors are most cosine-similar to an item's, itself excluded.

        ``cos(i, j) = <q_i, q_j> / (‖q_i‖ ‖q_j‖)``, 0 where a factor is zero.

        Args:
            raw_item_id: a raw item ID (or a 1-D list of them).
            n: how many (≥ 1); clipped to n_items − 1.

        Returns:
            ``(raw_item_ids, similarities)``, most similar first: 1-D for one
            item, 2-D [n_queries, n] for a list.

        Raises:
            KeyError: the item is unknown.
        """
        idx = self._index("item", raw_item_id, "similar_items", "raw_item_id")  # KeyError if unknown
        return self._similar(self.params.item_factors, idx, n, self.item_ids, "similar_items")

    def similar_users(self, raw_user_id, n: int = 10):
        """The n users whose factors are most cosine-similar to a user's, itself excluded.

        As :meth:`similar_items`, on the user factors p_u. An unknown user
        raises KeyError.
        """
        idx = self._index("user", raw_user_id, "similar_users", "raw_user_id")
        return self._similar(self.params.user_factors, idx, n, self.user_ids, "similar_users")

    def _similar(self, factors, idx, n, ids, where):
        from .recommend import similar

        n = check_positive_int(n, f"{where}: n")
        if factors.shape[0] < 2:
            raise ValueError(f"{where}: the model has only one row; nothing to compare with")
        q = np.atleast_1d(idx)
        if q.ndim != 1:
            raise ValueError(f"{where}: pass one ID or a 1-D list of IDs")
        nn, sims = similar(factors, jnp.asarray(q), n=min(n, factors.shape[0] - 1))
        out_ids, sims = np.asarray(ids)[np.asarray(nn)], np.asarray(sims)
        return (out_ids[0], sims[0]) if np.ndim(idx) == 0 else (out_ids, sims)

    def _index(self, side, raw, where, name, missing="raise"):
        """index_users/index_items, with a TypeError naming the argument for unusable IDs."""
        lookup = self.index_users if side == "user" else self.index_items
        try:
            return lookup(raw, missing=missing)
        except TypeError as e:
            raise TypeError(f"{where}: {name} must be raw {side} IDs (a hashable scalar or a "
                            f"1-D list), got {type(raw).__name__} ({e})") from None

    def _seen(self, where):
        if self.seen_indptr is None or self.seen_items is None:
            raise ValueError(f"{where}: this model has no index of seen items (it was not made "
                             "by fit); pass exclude_seen=False")
        return self.seen_indptr, self.seen_items

    def _candidates(self, items, where):
        if items is None:
            return None
        idx = np.atleast_1d(self._index("item", items, where, "items"))  # KeyError if unknown
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"{where}: items must be a non-empty 1-D list of raw item IDs")
        return np.unique(idx)  # sorted, so ties still go to the lower item index

    def _ranked(self, idx, val, scalar):
        """Indices/scores from recommend_indices -> raw IDs; -1 -> the documented filler."""
        filler = -1 if np.issubdtype(np.asarray(self.item_ids).dtype, np.integer) else None
        ids = np.asarray(self.item_ids)[np.maximum(idx, 0)]
        if scalar:
            keep = idx[0] >= 0
            return ids[0][keep], val[0][keep]
        if (idx < 0).any():
            if filler is None and ids.dtype != object:
                ids = ids.astype(object)
            ids[idx < 0] = filler
        return ids, val

    def _fold_in(self, raw_item_ids, ratings, reg, bias_reg, missing, where):
        from .recommend import fold_in

        if missing not in ("raise", "ignore"):
            raise ValueError(f"{where}: missing must be 'raise' or 'ignore', got {missing!r}")
        raw = np.asarray(raw_item_ids, dtype=object) if isinstance(raw_item_ids, str) \
            else np.asarray(raw_item_ids)
        r = np.ones(len(raw)) if ratings is None else np.asarray(ratings)
        if raw.ndim != 1 or r.ndim != 1 or len(raw) != len(r):
            raise ValueError(f"{where}: raw_item_ids and ratings must be 1-D and of equal length, "
                             f"got shapes {raw.shape} and {r.shape}")
        if r.size and r.dtype.kind not in "iuf":
            bad = next((j for j, x in enumerate(r) if not _real(x)), 0)
            raise ValueError(f"{where}: ratings must be real numbers (not bool, str or complex); "
                             f"ratings[{bad}] = {_plain(r[bad])!r} has dtype {r.dtype}")
        if r.size and not np.isfinite(r).all():
            bad = int(np.flatnonzero(~np.isfinite(r))[0])
            raise ValueError(f"{where}: ratings[{bad}] = {_plain(r[bad])!r} is not a finite number")
        idx = np.asarray(self._index("item", raw, where, "raw_item_ids", "ignore"), np.int64).reshape(-1)
        unknown = idx < 0
        if unknown.any() and missing == "raise":
            names = ", ".join(repr(_plain(x)) for x in raw[unknown][:5])
            more = f" and {unknown.sum() - 5} more" if unknown.sum() > 5 else ""
            raise KeyError(f"{where}: unknown item IDs {names}{more}; pass missing='ignore' "
                           "to drop their ratings")
        idx, r = idx[~unknown], r[~unknown]
        if is_implicit(self) and bias_reg is not None:
            raise ValueError(f"{where}: bias_reg is for explicit models; an implicit model "
                             "(iALS, BPR) folds in no user bias")
        reg, bias_reg = self._fold_in_regs(reg, bias_reg, where)
        if is_implicit(self):  # ials/bpr: no user bias
            from .fold_in import fold_in_for

            if r.size and (r < 0).any():
                raise ValueError(f"{where}: implicit values must be >= 0")
            p = fold_in_for(self.params, self.config, idx, r, reg)
            if not np.isfinite(np.asarray(p)).all():
                raise ValueError(f"{where}: the fold-in solve gave a non-finite vector (reg={reg}, "
                                 f"{len(idx)} interactions, largest value "
                                 f"{float(np.max(r, initial=0)):g}); use reg > 0 and smaller values")
            return p, 0.0, idx
        dtype = self.params.item_factors.dtype
        p, b = fold_in(self.params.item_factors, self.params.item_bias, self.params.global_bias,
                       jnp.asarray(idx, jnp.int32), jnp.asarray(r, dtype), reg=reg,
                       bias_reg=bias_reg)
        if not (np.isfinite(np.asarray(p)).all() and np.isfinite(float(b))):
            raise ValueError(f"{where}: the ridge system is singular (reg={reg}, "
                             f"bias_reg={bias_reg}, {len(idx)} ratings); use reg > 0")
        return p, b, idx

    def _fold_in_regs(self, reg, bias_reg, where):
        if reg is None:
            if self.config.get("reg") is None:
                raise ValueError(f"{where}: the model's config records no 'reg'; pass reg=")
            reg = self.config["reg"]
        if bias_reg is None:
            bias_reg = self.config.get("bias_reg")
            bias_reg = reg if bias_reg is None else bias_reg
        for name, v in (("reg", reg), ("bias_reg", bias_reg)):
            if not (isinstance(v, (int, float, np.integer, np.floating))
                    and not isinstance(v, (bool, np.bool_)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{where}: {name} must be a non-negative number, got {v!r}")
        return float(reg), float(bias_reg)

    # ----------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the model to ``path`` (npz arrays + a JSON header), atomically.

        The file is written to a temporary name in the same folder and renamed,
        so a crash never leaves a half-written model behind. The format is
        described in :mod:`mfjax.persistence`; :func:`load_model` gives back
        exactly these IDs (type and value).

        Raises:
            ValueError: an ID cannot be saved exactly (a type other than int,
                float, bool or str), or a field would not load back.
        """
        write_model(_check_path(path, "Model.save"), self)


def load_model(path) -> Model:
    """Load a model written by :meth:`Model.save` (format versions 1 and 2).

    Every array and header field is validated (see :mod:`mfjax.persistence`).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``path``, if the file is corrupt, truncated, tampered
            with or not an mfjax model.
    """
    return Model(**read_model(_check_path(path, "load_model")))


def _real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _check_path(path, where: str):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__}")
    return path


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x
