"""Constants the command-line parsers show (choices, defaults) without importing JAX.

They mirror library values (``mfjax.training.DEFAULTS``, ``OPTIMIZERS``, ``GRADIENTS``,
``mfjax.datasets.VARIANTS``); ``tests/test_cli.py`` checks that they still agree.
"""

#: ``mfjax.training.DEFAULTS`` (the Optax solver's defaults) that the parsers show.
DEFAULTS = {"rank": 128, "reg": 0.1, "bias_reg": 0.01, "optimizer": "adam", "epochs": 25,
            "init_scale": 0.1}
#: ``mfjax.ALS()`` and ``mfjax.BayesianMF()`` field defaults the parsers show.
ALS_DEFAULTS = {"rank": 10, "reg": 0.08, "epochs": 6}
GIBBS_DEFAULTS = {"rank": 12, "burn_in": 10, "samples": 90}
#: ``sorted(mfjax.training.OPTIMIZERS)``.
OPTIMIZERS = ("adabelief", "adagrad", "adam", "adamax", "adamw", "lamb", "lion", "momentum",
              "nadam", "nesterov", "radam", "rmsprop", "sgd", "yogi")
#: ``mfjax.training.GRADIENTS``.
GRADIENTS = ("auto", "fused", "blocked", "autodiff", "manual")
#: ``mfjax.datasets.VARIANTS``.
MOVIELENS = ("100k", "1m", "10m", "20m", "25m", "32m", "latest-small")
#: ``--dataset`` choices.
DATASETS = [f"movielens-{v}" for v in MOVIELENS] + ["synthetic"]
#: Explicit solvers (``fit(solver=...)``) and objectives (``fit(objective=...)``).
SOLVERS = ("optax", "als", "gibbs")
OBJECTIVES = ("explicit", "ials", "bpr")
