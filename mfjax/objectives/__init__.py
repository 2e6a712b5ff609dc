"""The math of the objectives: each module holds one loss and its hand-written gradient.

An :class:`Objective` record is what the training loop, gradient checks,
:class:`mfjax.Model` and the CLI ask about an objective instead of comparing its name:
whether its scores are ratings or rankings, its fallback for a user without
interactions, which sides split into independent rows, what its values must be, and
its loss/gradient pair for :func:`mfjax.verify_gradients`. A model package
(:mod:`mfjax.models`) names its objective's record; one objective may serve several
models (explicit biased MF: ``MF``, ``ALS``, ``BayesianMF``), and a model may bring its
own (``mfjax.models.logistic_mf``).

=========================================== ============================== =====================
module                                      loss                           record
=========================================== ============================== =====================
:mod:`mfjax.objectives.explicit`            squared error of biased MF     ratings (RMSE)
:mod:`mfjax.models.implicit_als.objective`  weighted implicit ALS          rankings
:mod:`mfjax.models.bpr.objective`           Bayesian personalized ranking  rankings
:mod:`mfjax.models.logistic_mf.objective`   logistic MF                    rankings
:mod:`mfjax.models.fm.objective`            squared error of an FM         ratings (RMSE)
=========================================== ============================== =====================

Only objectives several models share live in this package (``explicit``: MF, ALS,
BayesianMF, BayesianFM); a model's own objective lives in its package.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

__all__ = ["Objective"]


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the rest of mfjax needs to know about one objective.

    Attributes:
        name: ``"explicit"``, ``"ials"`` or ``"bpr"`` (``fit(objective=...)``).
        ranking: True when scores only rank items (implicit feedback): predictions are
            not clipped to a rating range, RMSE does not apply, validation is NDCG@10.
        biases: True when the model learns user/global biases (the unknown-user
            fallback is then ``μ + b_i``; without them, the most popular items).
        gradient_terms: ``(users, items, ratings, negatives, hyper) -> (loss, grad)``
            closures of ``params`` for :func:`mfjax.verify_gradients`.
        hyper: the hyperparameter names ``gradient_terms`` reads.
        negatives: True when the loss is over sampled (user, positive, negative) triples,
            so its gradient check needs a negative item per interaction.
        row_sides: the sides whose rows are independent problems given the other side
            (BPR's items are not: every item's loss couples through the users' pairs).
        values: what a value must be: ``"ratings"`` (any real number), ``"strengths"``
            (interaction strengths ≥ 0) or ``"ones"`` (only which items: all 1).
    """

    name: str
    ranking: bool
    biases: bool
    gradient_terms: Callable
    hyper: tuple
    negatives: bool = False
    row_sides: tuple = ("users", "items")
    values: str = "ratings"

    @property
    def implicit(self) -> bool:
        """Same as :attr:`ranking`: implicit-feedback objectives rank."""
        return self.ranking
