"""The :class:`mfjax.Model` methods that add or update rows without retraining.

Partial fits (:meth:`Updates.partial_fit_users`, :meth:`Updates.partial_fit_items`: many
users or items solved against the fixed other side, :mod:`mfjax.serving.partial_fit`) and
the fold-in of one new user (:meth:`Updates.fold_in`, :meth:`Updates.recommend_for_ratings`),
each by the row solve of the model's record. :class:`mfjax.Model` inherits them.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..data import Features
from ..plumbing import check_positive_int
from .lists import candidate_items, ranked_ids

__all__ = ["Updates"]


class Updates:
    """Partial fits and fold-in of a :class:`mfjax.Model` (which mixes this class in)."""

    def partial_fit_users(self, ratings=None, *, missing: str = "raise",
                        features: Features | None = None):
        """A new model with the users of ``ratings`` solved against the fixed items.

        Each user that has rows in ``ratings`` (an :class:`mfjax.Ratings` with raw
        IDs), existing or new, is solved in one batched jitted call with every
        item parameter fixed: the exact row solve for ALS and iALS (a training
        user re-solved from its own rows gets its trained vector back, up to
        how converged training was), the ridge solve of :meth:`fold_in` for
        Optax and Gibbs (posterior mean) models, converged Newton steps for BPR at
        the fold-in λ that gives back the trained users
        (:func:`mfjax.models.bpr.fold_in.bpr_fold_in_reg`, computed on the first call and
        kept in ``config["fold_in_reg"]``; :mod:`mfjax.serving.partial_fit`). New IDs are appended to
        ``user_ids`` (explicit models: with their solved bias).

        ``ratings`` must hold each user's **full** history, not just what is
        new: the user's vector and seen items (what :meth:`recommend` excludes)
        are replaced by the solution for exactly these rows. To add one new
        interaction to user u, pass all of u's interactions.

        The original model is unchanged; every row not in ``ratings`` is copied
        bit for bit. The result saves and loads like any model.

        Args:
            ratings: the users' histories (implicit models: interaction values
                ≥ 0; BPR: all 1).
            missing: ``"raise"``: an item ID the model does not know raises
                KeyError; ``"ignore"``: its rows are dropped.

        Returns:
            The updated :class:`mfjax.Model`.

        Raises:
            TypeError: ``ratings`` is not a Ratings, or its user IDs are not of
                the model's ID type.
            ValueError: empty ``ratings``, negative implicit values, values other
                than 1 for a BPR model, or a singular system.
            KeyError: unknown item IDs with ``missing="raise"``.
        """
        from .partial_fit import partial_fit

        return partial_fit(self, ratings, "users", missing=missing, features=features)

    def partial_fit_items(self, ratings=None, *, missing: str = "raise",
                        features: Features | None = None):
        """A new model with the items of ``ratings`` solved against the fixed users.

        As :meth:`partial_fit_users` with the sides swapped: explicit models
        solve [q_i; b_i], iALS the exact item row. ``ratings`` holds each
        item's full history (which users interacted with it); the seen index
        is updated so the users' new interactions are excluded by
        :meth:`recommend`. BPR models refuse (ValueError): their item side does
        not split into independent rows.
        """
        from .partial_fit import partial_fit

        return partial_fit(self, ratings, "items", missing=missing, features=features)

    def recommend_for_ratings(self, raw_item_ids, ratings, n: int = 10, *, items=None,
                              reg: float | None = None, bias_reg: float | None = None,
                              missing: str = "raise"):
        """The n best items for a new user given their ratings, without retraining.

        Folds the user in (:meth:`fold_in`; for an implicit model ``ratings``
        are interaction values, ``None`` all 1) and ranks every candidate by
        ``μ + b + b_i + <p, q_i>``, leaving out the items they rated. With no
        rating on a known item the user takes the fallback of :meth:`recommend`.
        For many users at once, :meth:`partial_fit_users` then :meth:`recommend`
        solves them in one batched call.

        Args:
            raw_item_ids, ratings: the new user's ratings, equal-length 1-D.
            n: how many items (≥ 1).
            items: raw item IDs to rank among; ``None`` = every item.
            reg, bias_reg, missing: as in :meth:`fold_in`.

        Returns:
            ``(raw_item_ids, scores)``, 1-D, best first; fewer than n when
            fewer candidates remain.
        """
        from .fallback import ranking_fallback
        from .recommend import recommend_indices

        n = check_positive_int(n, "recommend_for_ratings: n")
        p, b, rated = self._fold_in(raw_item_ids, ratings, reg, bias_reg, missing,
                                    "recommend_for_ratings")
        rated = np.unique(rated)
        fallback = ranking_fallback(self)
        cold = np.array([rated.size == 0])
        idx, val = recommend_indices(
            self.params, None, n, exclude=(np.array([0, len(rated)]), rated),
            candidates=candidate_items(self, items, "recommend_for_ratings"),
            user_factors=jnp.asarray(p)[None, :], user_bias=jnp.asarray([b], p.dtype),
            cold=cold, fallback=fallback)
        if fallback is not None and cold[0]:
            val = np.where(np.isneginf(val), -np.inf, 0.0)
        return ranked_ids(self, idx, val, True)

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

        Implicit models (:class:`mfjax.ImplicitALS`, :class:`mfjax.BPR`): ``ratings``
        are interaction values (``None``: all 1), b = 0, and p is the closed-form
        iALS row solve against the fixed items (exactly the trained vector for a
        training user's own interactions) or a few Newton steps on the user's BPR
        objective (:mod:`mfjax.models.bpr.fold_in`) at λ = ``config["fold_in_reg"]``
        (see :meth:`partial_fit_users`) unless ``reg`` is given.

        Bayesian MF models, ``reg`` and ``bias_reg`` left out: per kept sample s, the
        mean of the user's conditional posterior given that sample's items and priors,
        ``[p; b]ˢ = (Λ_Uˢ + τ_s Σ_i a_i a_iᵀ)⁻¹ (Λ_Uˢ μ_Uˢ + τ_s Σ_i a_i y_i)`` with
        ``a_i = [q_iˢ; 1]``, ``y_i = r_i − μ_s − b_iˢ``; ``p`` holds the pˢ/√S side by
        side, ``b`` is their bˢ's mean (:mod:`mfjax.models.bayesian_mf.refresh`). Given
        ``reg`` or ``bias_reg`` (the other defaulting to
        :data:`mfjax.models.bayesian_mf.parts.FOLD_IN_REG`), and, with a warning, for a
        file saved without the samples' priors: the ridge above on the posterior mean.

        Args:
            raw_item_ids: raw IDs of the rated items [n_u] (repeats count twice).
            ratings: the ratings [n_u], finite.
            reg: λ; ``None`` = the model's training value (``model.spec.reg``).
                Bayesian MF: given, the ridge; ``None``, the posterior means (above).
            bias_reg: λ_b; ``None`` = the model's training value
                (``model.spec.bias_reg``, which if itself None means λ, as in ``fit``).
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

    def _fold_in(self, raw_item_ids, ratings, reg, bias_reg, missing, where):
        from .partial_fit import fold_in_one

        return fold_in_one(self, raw_item_ids, ratings, reg, bias_reg, missing, where)
