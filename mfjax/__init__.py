"""mfjax: matrix-factorization recommenders in JAX.

A model is a typed spec (:class:`MF`, :class:`ALS`, :class:`BayesianMF`, :class:`BayesianFM`, :class:`FM`,
:class:`ImplicitALS`, :class:`BPR`, :class:`LogisticMF`), one package each under
:mod:`mfjax.models` and registered in :data:`mfjax.models.REGISTRY`; :func:`fit` trains
it and returns a :class:`Model`. The packages follow a rating from a file to a served list:

- :mod:`mfjax.data`: the :class:`Ratings` container, readers, data sets and splits, and
  :class:`Features` (user and item side information, ``fit(..., features=F)``);
- :mod:`mfjax.objectives`: each loss with its hand-written gradient and its record;
- :mod:`mfjax.models`: one package per model (spec, objective, solver, ``"auto"``
  resolution, memory estimate, score, row solve) and the registry;
- :mod:`mfjax.solvers`: the solver engines the model packages build on (minibatch/Optax,
  ALS, Gibbs, iALS, BPR) behind one ``Solver`` seam; :mod:`mfjax.kernels`: their C++
  CPU kernels;
- :mod:`mfjax.training`: ``fit``, the solver-agnostic loop, checkpoints;
- :mod:`mfjax.serving`: ``Model``, top-N, fold-in, posterior uncertainty;
- :mod:`mfjax.evaluation`: metrics and gradient checks.

Public names are imported on first use (PEP 562), so ``import mfjax`` and the command
line's ``--help`` do not load JAX.
"""

import importlib
import sys

#: Public names -> (module, attribute or None for the module itself). Imported on first
#: use (PEP 562), so ``import mfjax`` and the command line's ``--help`` do not load JAX.
_LAZY = {
    "datasets": (".datasets", None), "dense": (".dense", None),
    "distributed": (".distributed", None), "split": (".split", None),
    "gradcheck": (".evaluation.gradcheck", None),
    "gradients": (".solvers.minibatch.gradients", None), "training": (".training", None),
    "als": (".solvers.als.sweep", None), "gibbs": (".solvers.gibbs.sampler", None),
    "implicit": (".models.implicit_als.objective", None), "implicit_bpr": (".models.bpr.objective", None),
    "implicit_als": (".models.implicit_als.solve", None),
    **{name: (".objectives.explicit", name) for name in (
        "Params", "init_params", "loss", "manual_grad", "predict")},
    "validate_ratings": (".plumbing", "validate_ratings"),
    "Ratings": (".data", "Ratings"), "Features": (".data", "Features"),
    "FeatureTable": (".data", "FeatureTable"), "load_ratings": (".data", "load_ratings"),
    **{name: (".evaluation.gradcheck", name) for name in (
        "GradientReport", "numerical_grad", "verify_gradients")},
    **{name: (".evaluation.metrics", name) for name in (
        "evaluate", "evaluate_fold_in", "evaluate_ranking")},
    "Model": (".serving.model", "Model"), "load_model": (".serving.model", "load_model"),
    "Spec": (".specs", "Spec"), "MF": (".models.mf.spec", "MF"), "ALS": (".models.als.spec", "ALS"),
    "BayesianMF": (".models.bayesian_mf.spec", "BayesianMF"),
    "BayesianFM": (".models.bayesian_fm.spec", "BayesianFM"), "FM": (".models.fm.spec", "FM"),
    "ImplicitALS": (".models.implicit_als.spec", "ImplicitALS"), "BPR": (".models.bpr.spec", "BPR"),
    "LogisticMF": (".models.logistic_mf.spec", "LogisticMF"),
    "REGISTRY": (".models", "REGISTRY"), "models": (".models", None),
    **{name: (".selection", name) for name in ("cross_validate", "search", "SearchResult")},
    "fit": (".training", "fit"),
    **{name: (".solvers.minibatch.optimizers", name) for name in ("OPTIMIZERS", "make_optimizer")},
    **{name: (".models.mf.resolve", name) for name in ("DEFAULTS", "auto_batch_size")},
}


_loading = False


def _load_all() -> None:
    """Import every public name at once (what ``import mfjax`` did before it was lazy), so
    submodules that the old eager imports loaded (``mfjax.kernels.fused``) are there.
    Re-entered from inside those imports (``from .. import plumbing``) it does nothing."""
    global _loading
    if _loading:
        return
    _loading = True
    try:
        for public, (module, attr) in _LAZY.items():
            value = importlib.import_module(module, __name__)
            globals()[public] = value if attr is None else getattr(value, attr)
    finally:
        _loading = False


def __getattr__(name: str):
    if name in _LAZY:
        if not _called_from_mfjax():
            _load_all()
            return globals()[name]
        module, attr = _LAZY[name]  # mfjax's own `from .. import x`: only x
        value = importlib.import_module(module, __name__)
        return value if attr is None else getattr(value, attr)
    try:  # a subpackage not named above (mfjax.evaluation, mfjax.kernels, ...)
        value = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    if not _called_from_mfjax():  # mfjax's own `from .. import x` must not load the rest
        _load_all()
    return value


def _called_from_mfjax() -> bool:
    """Whether the nearest caller outside importlib is a module of this package."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
        frame = frame.f_back
    caller = "" if frame is None else frame.f_globals.get("__name__", "")
    return caller == __name__ or caller.startswith(__name__ + ".")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "MF", "ALS", "BayesianMF", "BayesianFM", "FM", "ImplicitALS", "BPR", "LogisticMF", "Spec",
    "REGISTRY", "models",
    "cross_validate", "search",
    "SearchResult",
    "Params", "init_params", "predict", "loss", "manual_grad", "validate_ratings",
    "distributed", "dense", "gradients", "training", "numerical_grad", "verify_gradients", "GradientReport", "gradcheck",
    "Ratings", "Features", "FeatureTable", "load_ratings", "datasets", "split",
    "fit", "make_optimizer", "auto_batch_size", "DEFAULTS", "OPTIMIZERS",
    "Model", "load_model", "evaluate", "evaluate_ranking", "evaluate_fold_in",
    "als", "gibbs", "implicit", "implicit_als", "implicit_bpr",
]
