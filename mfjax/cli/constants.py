"""Constants the command-line parsers show (choices, defaults) without importing JAX.

The model choices come from the model registry (:mod:`mfjax.models`, which loads
no JAX); the rest mirror library values (``mfjax.DEFAULTS``, ``OPTIMIZERS``, ``GRADIENTS``,
``mfjax.datasets.VARIANTS``); ``tests/test_cli.py`` checks that they still agree.
"""

from ..models import REGISTRY, objective_names, records_for, solver_names

#: ``mfjax.DEFAULTS`` (the Optax solver's defaults) that the parsers show.
DEFAULTS = records_for("explicit", "optax")[0].cli_defaults
#: Field defaults the parsers show, by solver name of the explicit models
#: (the registry's ``cli_defaults``; ``tests/test_cli.py`` checks them against the specs).
SOLVER_DEFAULTS: dict = {}
for _r in records_for("explicit"):  # a solver's first record (the one --solver trains)
    for _s in _r.solvers:
        SOLVER_DEFAULTS.setdefault(_s, _r.cli_defaults)
del _r, _s
ALS_DEFAULTS = SOLVER_DEFAULTS["als"]
GIBBS_DEFAULTS = SOLVER_DEFAULTS["gibbs"]
#: ``sorted(mfjax.OPTIMIZERS)``.
OPTIMIZERS = ("adabelief", "adagrad", "adam", "adamax", "adamw", "lamb", "lion", "momentum",
              "nadam", "nesterov", "radam", "rmsprop", "sgd", "yogi")
#: ``mfjax.models.mf.resolve.GRADIENTS``.
GRADIENTS = ("auto", "fused", "blocked", "autodiff", "manual")
#: ``mfjax.datasets.VARIANTS``.
MOVIELENS = ("100k", "1m", "10m", "20m", "25m", "32m", "latest-small")
#: ``--dataset`` choices.
DATASETS = [f"movielens-{v}" for v in MOVIELENS] + ["synthetic"]
#: Explicit solvers (``fit(solver=...)``) and objectives (``fit(objective=...)``), from the
#: model registry.
SOLVERS = solver_names("explicit")
OBJECTIVES = objective_names()
#: Spec class names (``--model``), from the model registry.
SPEC_NAMES = tuple(REGISTRY)
