"""The objectives: each module holds one loss and its hand-written gradient, and a record.

An :class:`Objective` record is what the training loop, the configuration step,
gradient checks, :class:`mfjax.Model` and the CLI ask about an objective, instead of
comparing its name: which specs train it, whether its scores are ratings or
rankings, its fallback for a user without interactions, and its loss/gradient pair
for :func:`mfjax.verify_gradients`. Adding an objective means one module here (its
loss, gradient and ``OBJECTIVE``) plus one spec in :mod:`mfjax.specs`.

=============== ============================== ======================================
module          loss                           record
=============== ============================== ======================================
``explicit``    squared error of biased MF     ``explicit.OBJECTIVE``: ratings (RMSE)
``ials``        weighted implicit ALS          ``ials.OBJECTIVE``: rankings
``bpr``         Bayesian personalized ranking  ``bpr.OBJECTIVE``: rankings
=============== ============================== ======================================
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

__all__ = ["Objective", "OBJECTIVES", "get", "default_spec", "holds_interactions",
           "GIBBS_MAX_RATINGS"]

#: ``fit(train)`` with no model trains Bayesian MF up to this many ratings (ML-100K,
#: ML-1M: the most accurate, in seconds) and :class:`mfjax.MF` above (a 100-sweep Gibbs
#: run would take minutes at ML-10M/20M, MF's 25 epochs well under one).
GIBBS_MAX_RATINGS = 2_000_000


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the rest of mfjax needs to know about one objective.

    Attributes:
        name: ``"explicit"``, ``"ials"`` or ``"bpr"`` (``fit(objective=...)``).
        ranking: True when scores only rank items (implicit feedback): predictions are
            not clipped to a rating range, RMSE does not apply, validation is NDCG@10.
        specs: solver name -> spec class name in :mod:`mfjax.specs`.
        default_solver: the solver ``fit(objective=name)`` uses; None: by data size.
        biases: True when the model learns user/global biases (the unknown-user
            fallback is then ``μ + b_i``; without them, the most popular items).
        gradient_terms: ``(users, items, ratings, negatives, hyper) -> (loss, grad)``
            closures of ``params`` for :func:`mfjax.verify_gradients`.
        hyper: the hyperparameter names ``gradient_terms`` reads.
        negatives: True when the loss is over sampled (user, positive, negative) triples,
            so its gradient check needs a negative item per interaction.
        row_solve: the batched solve of rows against the fixed other side, for fold-in
            and partial fits (:data:`mfjax.serving.batch_solve.ROW_SOLVES`): ``"ridge"``
            (the exact ALS row), ``"ials"`` (the exact iALS row), ``"bpr"`` (Newton steps).
        row_sides: the sides whose rows are independent problems given the other side
            (BPR's items are not: every item's loss couples through the users' pairs).
        values: what a value must be: ``"ratings"`` (any real number), ``"strengths"``
            (interaction strengths ≥ 0) or ``"ones"`` (only which items: all 1).
    """

    name: str
    ranking: bool
    specs: dict
    default_solver: str | None
    biases: bool
    gradient_terms: Callable
    hyper: tuple
    negatives: bool = False
    row_solve: str = "ridge"
    row_sides: tuple = ("users", "items")
    values: str = "ratings"

    @property
    def implicit(self) -> bool:
        """Same as :attr:`ranking`: implicit-feedback objectives rank."""
        return self.ranking

    def spec_class(self, solver: str | None = None):
        """The spec class of ``solver`` (None: the default solver's)."""
        from .. import specs

        solver = self.default_solver if solver is None else solver
        if solver not in self.specs:
            raise ValueError(f"fit: objective {self.name!r} has no solver {solver!r}; "
                             f"its solvers are {sorted(self.specs)}")
        return specs.SPECS[self.specs[solver]]


def _registry() -> dict:
    from . import bpr, explicit, ials

    return {o.name: o for o in (explicit.OBJECTIVE, ials.OBJECTIVE, bpr.OBJECTIVE)}


#: Every objective by name.
OBJECTIVES: dict[str, Objective] = {}


def get(name) -> Objective:
    """The objective named ``name``.

    Raises:
        ValueError: an unknown name (the known ones are listed).
    """
    if not OBJECTIVES:
        OBJECTIVES.update(_registry())
    if not isinstance(name, str) or name not in OBJECTIVES:
        raise ValueError(f"fit: objective must be one of {sorted(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]


def holds_interactions(train) -> bool:
    """Whether ``train`` is implicit feedback by its values alone: every value is 1
    (clicks, ``Ratings.from_csr`` of a 0/1 matrix, ``Ratings.binarize``)."""
    r = np.asarray(train.ratings)
    return r.size > 0 and bool(np.all(r == 1))


def default_spec(train):
    """The spec ``fit(train)`` trains when no model is given, from the data alone.

    Interactions (every value 1): :class:`mfjax.ImplicitALS`. Ratings: Bayesian MF
    (:class:`mfjax.BayesianMF`) up to :data:`GIBBS_MAX_RATINGS` ratings, else
    :class:`mfjax.MF`. Keywords passed to ``fit`` never change which.
    """
    from .. import specs

    if holds_interactions(train):
        return specs.ImplicitALS()
    return specs.BayesianMF() if len(train) <= GIBBS_MAX_RATINGS else specs.MF()
