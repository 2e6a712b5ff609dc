"""The user-facing model: parameters plus ID maps, config and history.

:class:`Model` is a thin shell over the pure functions in :mod:`mfjax.objectives.explicit`:
it maps raw IDs to indices, clips predictions to the rating range, handles
unknown users and items, and saves to npz + JSON (no pickle). Its methods that add or
update users and items without retraining (partial fits, fold-in) are in
:class:`mfjax.serving.updates.Updates`.
"""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np

from .. import models
from ..objectives.explicit import Params, predict_with_fallback
from ..data import Features, IdSpace
from .. import jit_cache
from ..persistence import read_model, write_model
from ..plumbing import check_positive_int
from .lists import candidate_items, ranked_ids, raw_index, similar_rows
from .updates import Updates

__all__ = ["Model", "load_model"]


@dataclasses.dataclass(eq=False)
class Model(Updates, IdSpace):
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
            biases, μ, noise precisions and row priors (:data:`mfjax.solvers.gibbs.posterior.POSTERIOR_FIELDS`,
            leading axis S); ``params`` is their posterior mean as one rank k·S
            model. ``None`` otherwise.
        features: the :class:`mfjax.Features` it was trained with
            (``fit(..., features=F)``, models whose record takes features), saved and
            loaded with it; ``None`` otherwise.
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
    features: Features | None = None

    @property
    def spec(self):
        """The spec that trained this model, every default resolved (:mod:`mfjax.models`)."""
        return models.spec_of_config(self.config, "Model.spec")

    @property
    def record(self):
        """The model's :class:`mfjax.models.ModelRecord` (what it is, from its registry entry)."""
        name = self.config.get("model")
        return models.record_named(name, "Model") if name is not None else \
            models.record_of(self.spec)

    @property
    def objective(self):
        """The record of the objective it was trained on (:class:`mfjax.objectives.Objective`)."""
        return self.record.objective_record

    def predict(self, raw_users, raw_items, *, clip: bool = True, return_fallbacks: bool = False,
                return_std: bool = False, features: Features | None = None):
        """Predicted ratings for pairs of raw IDs.

        A known pair gets ``μ + b_u + b_i + <p_u, q_i>``. Users and items without
        training interactions (unknown IDs, or IDs in the tables without rows:
        :mod:`mfjax.serving.fallback`) fall back: such a user gets ``μ + b_i``,
        such an item ``μ + b_u``, and both ``μ`` (the parts that were learned,
        nothing invented).

        Args:
            raw_users, raw_items: raw IDs, scalars or equal-length arrays.
            clip: clip to ``rating_range`` (explicit models; the scores of an implicit
                model, iALS or BPR, are preferences, not ratings, and are never clipped).
            return_fallbacks: also return ``{"n_unknown_users", "n_unknown_items"}``,
                the pairs whose user (item) took the fallback (unknown or without
                training interactions).
            return_std: also return the posterior predictive standard deviation
                of each rating, sqrt(var_s r̂_s + mean_s 1/τ_s) over the S Gibbs
                samples (:func:`mfjax.solvers.gibbs.posterior.predictive_std`); needs a Gibbs
                model (``posterior`` set), else ValueError.
            features: side information to score with instead of the model's own
                (``model.features``), e.g. with rows for users that arrived after
                training; only for a model that takes features (else ValueError). A
                features model scores through its package's ``score_features``
                (:mod:`mfjax.serving.features`), so an ID with features but no training
                ratings is predicted from its features, not by the fallback.

        Returns:
            Predictions as a NumPy array (a float for scalar input), then the
            standard deviations (same shape) when asked, then the fallback
            counts when asked.
        """
        scalar = np.ndim(raw_users) == 0 and np.ndim(raw_items) == 0
        u = np.atleast_1d(raw_index(self, "user", raw_users, "predict", "raw_users", "ignore"))
        i = np.atleast_1d(raw_index(self, "item", raw_items, "predict", "raw_items", "ignore"))
        if u.shape != i.shape:
            raise ValueError(f"predict: {u.size} users but {i.size} items; pass equal-length arrays")
        from .fallback import fallback_indices

        u, i = fallback_indices(self, u, i)
        from .features import feature_scores

        pred = feature_scores(self, features, raw_users, raw_items, u, i, "predict")
        pred = self._predict_indices(u, i) if pred is None else pred
        if clip and not self.objective.ranking:  # implicit scores are not ratings: never clipped
            pred = np.clip(pred, *self.rating_range)
        out = float(pred[0]) if scalar else pred
        if return_std:
            predictive_std = getattr(self.record.parts, "predictive_std", None)
            if self.posterior is None or predictive_std is None:
                raise ValueError("predict: return_std=True needs a Gibbs model "
                                 "(fit(solver='gibbs')); this model has no posterior samples")
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
                  filter_items=None, batch_size: int | None = None):
        """The n best items for one user or a batch of users.

        Scores are :meth:`predict`'s formula ``μ + b_u + b_i + <p_u, q_i>``
        (unclipped, so ranks are not tied at the top of the rating range),
        computed by :func:`mfjax.serving.recommend.recommend_indices` in chunks of
        ``batch_size`` users with ``jax.lax.top_k``. Ties go to the item that
        comes first in ``item_ids``.

        A user without training interactions (an unknown ID, or an ID without
        rows) takes the one fallback of :mod:`mfjax.serving.fallback`: explicit
        models rank by ``μ + b_i`` (:meth:`predict`'s fallback); implicit models
        (iALS, BPR) give the items with the most training interactions, with
        score 0. :func:`mfjax.evaluate_ranking` scores exactly these lists.

        Args:
            raw_user_ids: one raw user ID, or a list/array of them.
            n: items per user (≥ 1).
            exclude_seen: leave out the items each user rated in training.
            items: raw item IDs to rank among (an allowlist; duplicates
                ignored); ``None`` = every item. An ID the model does not know
                raises KeyError.
            filter_items: raw item IDs never to recommend (a blocklist, applied
                after ``items``); IDs the model does not know are ignored.
            batch_size: users per chunk; the score block is at most
                [batch_size, n_candidates] floats. ``None``: at most ~8 MB
                (:func:`mfjax.serving.rows.auto_batch_size`).

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
        from .recommend import recommend_indices
        from .rows import csr_rows

        n = check_positive_int(n, "recommend: n")
        scalar = np.ndim(raw_user_ids) == 0
        if isinstance(raw_user_ids, (list, tuple)):
            # np.asarray(["ghost", 4]) would turn 4 into "4"; keep each ID's own type.
            raw_user_ids = np.array(raw_user_ids, dtype=object)
        users = np.atleast_1d(raw_index(self, "user", raw_user_ids, "recommend", "raw_user_ids", "ignore"))
        if users.ndim != 1:
            raise ValueError(f"recommend: raw_user_ids must be a scalar or 1-D, got shape "
                             f"{np.shape(raw_user_ids)}")
        from .fallback import cold_users, ranking_fallback

        exclude = None
        if exclude_seen:
            exclude = csr_rows(*self._seen("recommend"), users)
        candidates = candidate_items(self, items, "recommend", filter_items)
        cold, fallback = cold_users(self, users), ranking_fallback(self)
        idx, val = recommend_indices(self.params, users, n, exclude=exclude,
                                     candidates=candidates, batch_size=batch_size,
                                     cold=cold, fallback=fallback)
        if fallback is not None and cold.any():
            val = np.array(val)
            val[cold] = np.where(np.isneginf(val[cold]), -np.inf, 0.0)
        return ranked_ids(self, idx, val, scalar)

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
        idx = raw_index(self, "item", raw_item_id, "similar_items", "raw_item_id")  # KeyError if unknown
        return similar_rows(self.params.item_factors, idx, n, self.item_ids, "similar_items")

    def similar_users(self, raw_user_id, n: int = 10):
        """The n users whose factors are most cosine-similar to a user's, itself excluded.

        As :meth:`similar_items`, on the user factors p_u. An unknown user
        raises KeyError.
        """
        idx = raw_index(self, "user", raw_user_id, "similar_users", "raw_user_id")
        return similar_rows(self.params.user_factors, idx, n, self.user_ids, "similar_users")

    def _seen(self, where):
        if self.seen_indptr is None or self.seen_items is None:
            raise ValueError(f"{where}: this model has no index of seen items (it was not made "
                             "by fit); pass exclude_seen=False")
        return self.seen_indptr, self.seen_items

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
    jit_cache.configure()  # a serving process compiles its fold-in and top-N once
    return Model(**read_model(_check_path(path, "load_model")))


def _check_path(path, where: str):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__}")
    return path
