"""What one model is, as the shared layers see it: a :class:`ModelRecord`.

Each model package (``mfjax/models/<name>/``) holds everything its model is (spec,
objective, solver, the resolution of its ``"auto"`` fields, its memory estimate, its
score, its fold-in / partial-fit row solve, its vectorized-trials route) and describes
itself with one :class:`ModelRecord` in its ``__init__``. The record is light: it names
the package's modules and loads them on first use, so the command line can list the
models without importing JAX. The shared layers (``training``, ``serving``,
``selection``, ``evaluation``, persistence, the CLI) ask the record and never name a
model, a spec class or an objective.

A model package's ``parts`` module defines:

======================== ======================================================================
name                     what
======================== ======================================================================
``SPEC``                 the spec class (a frozen :class:`mfjax.specs.Spec` dataclass)
``OBJECTIVE``            its :class:`mfjax.objectives.Objective` (loss, gradient, ranking, ...)
``PARAMS``               the parameter pytree class the solver returns and ``Model`` holds: a
                         NamedTuple of arrays whose ``_fields`` are what files and checkpoints
                         store, with ``n_users``/``n_items`` and a ``from_arrays(arrays, where)``
                         classmethod that validates stored arrays (errors name ``where`` and the
                         field; :class:`mfjax.objectives.explicit.Params`)
``make_solver``          ``(spec) -> Solver`` (:class:`mfjax.solvers.base.Solver`)
``resolve``              ``(spec, train, run) -> spec``: every ``"auto"`` field decided
``memory_bytes``         ``(spec, n_users, n_items, nnz, itemsize, backend) -> int``: peak bytes
``row_solve``            ``(other_factors, other_bias, global_bias, rows, cols, vals, n_rows, hp)
                         -> (factors, bias)`` or None: R rows solved against the fixed other side
                         (``hp``: the package's ``row_hyperparameters(spec)``)
``posterior_row_solve``  optional: ``(params, posterior, side, rows, cols, vals, n_rows, hp) ->
                         (factors, bias, sample_bias)``: the partial-fit and fold-in row solve of a
                         model that keeps per-sample arrays (``Model.posterior``), used instead of
                         ``row_solve`` when defined (fold-in with an explicit ``reg=``/``bias_reg=``
                         keeps ``row_solve``); ``sample_bias`` [S, R]: the solved rows' per-sample
                         biases for ``Model.posterior``, or None (each sample gets ``bias``)
``score``                ``(params, users, items) -> scores`` (the prediction before clipping)
``trials``               None, or the vectorized-trials route (``route``, ``trial_bytes``,
                         ``train_batch``; :mod:`mfjax.selection.vectorized`)
``calibrate_rows``       optional ``(model, hp) -> hp``: the row solve's hyperparameters fitted
                         to the trained model (BPR: the λ that gives back its users)
``score_features``       optional, models whose record has ``features=True``:
                         ``(model, features, raw_users, raw_items, users, items) -> scores``
                         [n] (unclipped, float64) for pairs of raw IDs [n], ``users``/``items``
                         the model's rows after the fallback (-1: no training rows), so an ID
                         with features but no ratings is scored from its features
                         (:mod:`mfjax.serving.features`); without it such IDs take ``score``'s
                         ID fallbacks
``feature_rows``         optional, records with ``feature_ids=True``: ``(model, features, side,
                         raw_ids) -> vectors [n, k]`` (or ``(vectors, biases [n])``; without
                         biases the new rows' bias is 0) for new IDs known only from features
                         (``partial_fit_items(features=F)``, :mod:`mfjax.serving.feature_rows`);
                         a model with ``Model.posterior`` returns ``(vectors, biases,
                         sample_biases [S, n])``
``feature_row_solve``    optional, features records: ``(model, features, side, raw_ids, rows,
                         cols, vals, n_rows, hp) -> (factors, bias, sample_bias)``: the
                         partial-fit row solve of a model whose rows' prior depends on their
                         features (``raw_ids`` [R] the solved rows' raw IDs, ``features`` the
                         call's or the model's), used instead of ``posterior_row_solve`` /
                         ``row_solve`` when there are features
======================== ======================================================================

A model that reads side information (:class:`mfjax.Features`) says so with
``features=True``: ``fit(train, spec, features=F)`` hands ``F`` to its solver as
``run.features`` (:class:`mfjax.solvers.hardware.Run`), the trained
:class:`mfjax.Model` keeps and saves it, and every other model refuses ``features=``
(:func:`mfjax.models.check_features`) rather than ignore it.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any

__all__ = ["ModelRecord", "legacy_fields"]


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """One registered model (:data:`mfjax.models.REGISTRY`).

    Attributes:
        name: the spec class's name (``"ALS"``), the ``"model"`` entry of saved specs.
        package: the model's package (``"mfjax.models.als"``).
        objective: its objective's name (``fit(objective=...)``, configs).
        solvers: the solver names its spec trains with (``fit(solver=...)``); the first
            is the spec's default.
        summary: one line for listings (the CLI's help, the README's table).
        meshes: whether its solver runs on a device mesh (``fit(mesh=...)``).
        default_for: ``"ratings"`` or ``"interactions"`` when ``fit(train)`` without a
            model may pick this record for such data (:func:`mfjax.models.default_record`),
            else None.
        data_size_default: among the records a default picks from, this one is picked
            up to this many ratings (None: no limit; the limited ones are tried first).
        cli_defaults: field defaults the command line's help shows (checked against
            the spec by the tests, so ``--help`` needs no JAX).
        features: whether the model reads side information (``fit(..., features=F)``,
            :class:`mfjax.Features`); False: ``features=`` is refused, naming the model.
        feature_ids: a features model that serves IDs known only from features as rows
            of its tables: ``fit`` appends the feature-only IDs of F to the training
            data's ID tables (:meth:`mfjax.Features.with_ids`; rows with no
            interactions) before the solver sees it, so the model's ``user_ids`` /
            ``item_ids`` include them and recommend / similar_items / evaluation treat
            them like any other ID.
    """

    name: str
    package: str
    objective: str
    solvers: tuple
    summary: str
    meshes: bool = False
    default_for: str | None = None
    data_size_default: int | None = None
    cli_defaults: dict = dataclasses.field(default_factory=dict)
    features: bool = False
    feature_ids: bool = False

    @property
    def parts(self) -> Any:
        """The package's ``parts`` module (imports JAX)."""
        return importlib.import_module(f"{self.package}.parts")

    @property
    def spec(self) -> type:
        """The spec class (``REGISTRY["ALS"].spec is mfjax.ALS``)."""
        return self.parts.SPEC

    @property
    def objective_record(self):
        """The :class:`mfjax.objectives.Objective` of this model."""
        return self.parts.OBJECTIVE

    @property
    def params_type(self) -> type:
        """The parameter pytree class."""
        return self.parts.PARAMS

    def make_solver(self, spec):
        """A new solver for ``spec`` (an instance of :attr:`spec`)."""
        return self.parts.make_solver(spec)

    def resolve(self, spec, train, run):
        """``spec`` with every ``"auto"`` field decided for ``train`` and ``run``."""
        return self.parts.resolve(spec, train, run)

    def memory_bytes(self, spec, *, n_users: int, n_items: int, nnz: int, itemsize: int = 4,
                     backend: str = "cpu") -> int:
        """Peak bytes of one fit of ``spec`` on data of this shape (no safety factor)."""
        return int(self.parts.memory_bytes(spec, n_users=n_users, n_items=n_items, nnz=nnz,
                                           itemsize=itemsize, backend=backend))

    @property
    def row_solve(self):
        """The fold-in / partial-fit row solve, or None when the model has none."""
        return getattr(self.parts, "row_solve", None)

    @property
    def posterior_row_solve(self):
        """The row solve that reads ``Model.posterior`` (Bayesian MF), or None."""
        return getattr(self.parts, "posterior_row_solve", None)

    @property
    def feature_row_solve(self):
        """The row solve that reads features (``parts.feature_row_solve``), or None."""
        return getattr(self.parts, "feature_row_solve", None) if self.features else None

    @property
    def score(self):
        """``(params, users, items) -> scores``: the model's prediction formula."""
        return self.parts.score

    @property
    def score_features(self):
        """The features model's scoring of raw-ID pairs (``parts.score_features``), or None."""
        return getattr(self.parts, "score_features", None) if self.features else None

    @property
    def trials(self):
        """The vectorized-trials route, or None (trials run as sequential fits)."""
        return getattr(self.parts, "trials", None)


def legacy_fields(config: dict, spec_class) -> dict:
    """The fields of ``spec_class`` a config written before specs existed records (flat,
    or under ``options``), None values left out (a package's ``legacy_spec`` starts here)."""
    old = {**config, **(config.get("options") or {})}
    return {k: old[k] for k in spec_class.field_names() if old.get(k) is not None}
