"""``mfjax.search``: grid or random search over spec fields, scored on a validation set.

Every trial is a spec: ``dataclasses.replace(model, **values)``, validated before any
training. Trials that share every shape-determining field (:func:`mfjax.selection.
vectorized.shape_key`) and have a vectorized route (ImplicitALS with ``solver="als"``,
ALS) are trained together as one vmapped program per group
(:mod:`mfjax.selection.vectorized`); the others are sequential ``fit`` calls. Each
row of the result's table says which (``route``: ``vectorized`` or ``sequential``; the
search prints each group's full route once, kept in ``SearchResult.routes``). With
``folds=k`` instead of ``validation=``, each trial is cross-validated
(:func:`mfjax.cross_validate`; Surprise's ``GridSearchCV``) and scored by its mean.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time

import numpy as np
import pandas as pd

from ..data import Ratings
from . import metrics as M
from . import vectorized as V
from .result import SearchResult

__all__ = ["search", "SearchResult", "expand_space", "trial_model"]


def expand_space(spec, space: dict, method: str, n_trials, seed: int) -> list[dict]:
    """The trials' field values: the grid's product, or ``n_trials`` random draws.

    Raises:
        ValueError, TypeError: an empty space, an unknown field, an empty or bad value
            list, a bad ``method`` or ``n_trials``.
    """
    if method not in ("grid", "random"):
        raise ValueError(f"search: method must be 'grid' or 'random', got {method!r}")
    if not isinstance(space, dict) or not space:
        raise ValueError("search: space must be a non-empty dict {field: values}")
    fields = spec.field_names()
    unknown = [f for f in space if f not in fields]
    if unknown:
        raise ValueError(f"search: {type(spec).__name__} has no field(s) {unknown}; "
                         f"its fields are {', '.join(fields)}")
    for f, v in space.items():
        listed = isinstance(v, (list, tuple, np.ndarray))
        if method == "grid" and not listed:
            raise TypeError(f"search: space[{f!r}] must be a list of values for a grid, got "
                            f"{type(v).__name__} (distributions need method='random')")
        if listed and len(v) == 0:
            raise ValueError(f"search: space[{f!r}] is empty")
        if not listed and not (hasattr(v, "rvs") or callable(v)):
            raise TypeError(f"search: space[{f!r}] must be a list, a distribution with .rvs, "
                            f"or a callable(rng), got {type(v).__name__}")
    if method == "grid":
        if n_trials is not None:
            raise ValueError("search: n_trials applies to method='random' only")
        return [dict(zip(space, combo)) for combo in itertools.product(*space.values())]
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"search: method='random' needs n_trials, a positive integer, "
                         f"got {n_trials!r}")
    rng = np.random.default_rng(seed)

    def draw(v):
        if isinstance(v, (list, tuple, np.ndarray)):
            return v[int(rng.integers(len(v)))]
        return v.rvs(random_state=rng) if hasattr(v, "rvs") else v(rng)

    return [{f: _plain(draw(v)) for f, v in space.items()} for _ in range(int(n_trials))]


def _plain(x):
    scalar = isinstance(x, np.generic) or (isinstance(x, np.ndarray) and x.ndim == 0)
    return x.item() if scalar else x


def search(train: Ratings, model, space: dict, *, validation: Ratings | None = None,
           metric: str, method: str = "grid", n_trials: int | None = None, seed: int = 0,
           refit: bool = False, vectorize="auto", progress: bool = True,
           folds: int | None = None, fold_in: Ratings | None = None,
           features=None) -> SearchResult:
    """Train one model per point of ``space`` and rank them by ``metric`` on ``validation``
    (or by its mean over ``folds`` cross-validation folds of ``train``).

    Args:
        train: the training :class:`mfjax.Ratings`.
        model: the base spec (``mfjax.ImplicitALS(rank=64)``), a spec class, or None
            (the default spec for ``train``); each trial replaces the fields of ``space``.
        space: spec field -> values. ``method="grid"``: lists, every combination is a
            trial. ``"random"``: lists (drawn uniformly), distributions with
            ``.rvs(random_state=rng)`` (``scipy.stats.loguniform(1e-3, 1)``) or
            callables ``rng -> value``.
        validation: the held-out :class:`mfjax.Ratings` the metric is computed on.
        metric: a name (any case: ``"RMSE"`` is ``"rmse"``) :func:`mfjax.evaluate`/:func:`mfjax.evaluate_ranking` produces
            (see :mod:`mfjax.selection.metrics`); rmse/mae lower is better, ranking
            metrics higher.
        method: ``"grid"`` or ``"random"``.
        n_trials: random draws (``method="random"`` only).
        seed: seeds the draws and every trial's training (the same for all trials).
        refit: also fit the best spec on ``train`` (the validation set is not merged;
            merge it yourself for a final model) into ``result.model``.
        vectorize: True trains each group of trials that differ only in continuous fields
            as one vmapped program (where a route exists); False runs every trial as its
            own ``fit`` call; ``"auto"`` (default): True off the CPU backend, False on a
            CPU, where sequential fits measured faster (ML-1M, 16 iALS trials: vmapped
            XLA 137 s, sequential XLA 104 s, sequential C++ kernel 20 s;
            ``benchmarks/RESULTS.md``). The route of every trial is in the table.
        progress: a tqdm bar over trials and one line per group saying its route.
        folds: instead of ``validation``, k: each trial is :func:`mfjax.cross_validate`-d
            on ``mfjax.split.kfold(train, k, seed)`` (k sequential fits per trial) and
            ranked by the mean of ``metric``, as Surprise's ``GridSearchCV`` does.
        fold_in: strong generalization: ``validation`` holds users the model never saw,
            folded in from their interactions here before the metric is computed
            (:func:`mfjax.evaluate_fold_in`; :func:`mfjax.split.users`' parts).
        features: side information (:class:`mfjax.Features`) passed to every trial's
            ``fit`` (and each fold's, and the refit), the same object each time; trials
            then run as sequential fits (the vectorized routes read no features).
            Refused, before any training, for a model that takes none.

    Returns:
        A :class:`SearchResult`.

    Raises:
        TypeError, ValueError: a bad argument, an unknown field, an empty space, an
            invalid value (the spec's own check), or a metric the model cannot produce,
            all before any training.
        ValueError: after training, when every trial's metric is NaN (each diverged,
            or the validation set has no user the metric can score): there is no best
            trial, and the message gives the trials' reasons.
    """
    from ..training.config import resolve

    if not isinstance(vectorize, bool) and vectorize != "auto":
        raise TypeError(f"search: vectorize must be True, False or 'auto', got {vectorize!r}")
    if (validation is None) == (folds is None):
        raise TypeError("search: give validation= (a held-out mfjax.Ratings) or folds=k "
                        "(cross-validate each trial), " + ("not both" if folds is not None
                                                            else "got neither"))
    if fold_in is not None and folds is not None:
        raise TypeError("search: fold_in= goes with validation=, not folds=")
    for name, data in (("train", train),) + ((("validation", validation),) if folds is None
                                             else ()) + ((("fold_in", fold_in),) if fold_in
                                                         is not None else ()):
        if not isinstance(data, Ratings):
            raise TypeError(f"search: {name} must be an mfjax.Ratings, got {type(data).__name__}")
        if len(data) == 0:
            raise ValueError(f"search: {name} is empty")
    base = M.spec_of(model, train, "search")
    if not isinstance(metric, str):
        raise TypeError(f"search: metric must be one metric name, got {metric!r}")
    metric = M.check_metrics((metric,), base, "search")[0]
    if fold_in is not None and M.parse_metric(metric)[1] is None:
        raise ValueError(f"search: with fold_in=, metric must be a NAME@K ranking metric, "
                         f"got {metric!r}")
    ranking, lower = M.is_ranking(base), M.lower_is_better(metric)
    values = expand_space(base, space, method, n_trials, seed)
    specs = []
    for j, v in enumerate(values):
        try:
            specs.append(dataclasses.replace(base, **v))
        except (TypeError, ValueError) as e:
            raise ValueError(f"search: trial {j} {v}: {e}") from None
    resolved = [resolve(train, s, seed=seed, features=features, where="search") for s in specs]
    run = resolved[0][1]
    groups: dict[tuple, list[int]] = {}
    for j, (spec, _) in enumerate(resolved):
        groups.setdefault(V.shape_key(spec), []).append(j)
    routes = [(False, f"{folds}-fold cross-validation, {folds} sequential fits per trial")
              if folds is not None else _route(resolved[idx[0]][0], run,
                                               False if features is not None else vectorize)
              for idx in groups.values()]
    if progress:  # said before the bar starts, so the lines stay readable
        for idx, (_, route) in zip(groups.values(), routes):
            print(f"search: {len(idx)} trial(s) of {type(specs[idx[0]]).__name__}: {route}")
    bar = _bar(len(specs), progress)
    rows: list[dict] = [None] * len(specs)
    for idx, (vec, route) in zip(groups.values(), routes):
        if vec:
            t0 = time.perf_counter()
            out = V.train_group(train, [resolved[j][0] for j in idx], run,
                                on_batch=None if bar is None else bar.update)
            share = (time.perf_counter() - t0) / len(idx)
            for j, (params, history) in zip(idx, out):
                m = None if params is None else trial_model(train, resolved[j][0], run, params,
                                                            history, route)
                why = None if m is not None else _vectorized_failure(history)
                rows[j] = _row(j, values[j], metric, m, train, validation, ranking, share,
                               _label(vec, None), why, fold_in)
        elif folds is not None:
            for j in idx:
                rows[j] = _cv_row(j, values[j], metric, train, specs[j], folds, seed, features)
                if bar is not None:
                    bar.update(1)
        else:
            for j in idx:
                m, fit_s, why = _fit_one(train, specs[j], seed, j, features)
                rows[j] = _row(j, values[j], metric, m, train, validation, ranking, fit_s,
                               _label(vec, None), why, fold_in)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    table = pd.DataFrame(rows)
    if table[metric].isna().all():
        raise ValueError(_no_best(table, metric))
    key = table[metric].fillna(math.inf if lower else -math.inf)
    table = table.iloc[np.argsort(key.to_numpy() if lower else -key.to_numpy(), kind="stable")]
    table = table.reset_index(drop=True)
    best = specs[int(table["trial"].iloc[0])]
    said: dict[str, list[str]] = {}
    for vec, route in routes:
        said.setdefault(_label(vec, folds), [])
        if route not in said[_label(vec, folds)]:
            said[_label(vec, folds)].append(route)
    result = SearchResult(table, best, metric, lower, tuple(space),
                          routes={k: "; ".join(v) for k, v in said.items()})
    if refit:
        from ..training.loop import fit

        result.model = fit(train, best, seed=seed, progress=False, features=features)
    return result


def _route(spec, run, vectorize) -> tuple[bool, str]:
    """``(vectorized, what runs)`` for one group (see :func:`search`'s ``vectorize``)."""
    if vectorize is False:
        return False, ("sequential fit (features given)" if run.features is not None
                       else "sequential fit (vectorize=False)")
    vec, why = V.route_of(spec)
    if vec and vectorize == "auto" and run.hardware.backend == "cpu":
        return False, ("sequential fit (vectorize='auto' on a CPU: sequential fits measured "
                       "faster than vmapped trials there)")
    return vec, why


def _bar(n: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n, unit="trial", desc="search")


def _fit_one(train, spec, seed, trial: int, features=None):
    """``(model or None, seconds, why None)``: a fit that became non-finite (gradient
    divergence, or an ALS/iALS/Gibbs sweep's :class:`~mfjax.solvers.finite.NonFiniteError`)
    is a failed trial, not the end of the search."""
    from ..training.loop import fit

    t0 = time.perf_counter()
    m = why = None
    try:
        m = fit(train, spec, seed=seed, progress=False, features=features)
    except FloatingPointError as e:
        why = str(e)
        print(f"search: trial {trial} {spec!r} diverged (its metric is NaN): {e}")
    return m, time.perf_counter() - t0, why


def _vectorized_failure(history) -> str:
    """Why a vectorized trial has no model: the first sweep whose loss was not finite."""
    bad = [h for h in history if not math.isfinite(h["loss"])]
    first = bad[0] if bad else {"epoch": "?", "loss": math.nan}
    return (f"the vectorized training's loss became non-finite ({first['loss']}) in sweep "
            f"{first['epoch']}")


def _label(vectorized: bool, folds) -> str:
    """A trial's ``route`` in the table (the words are in ``SearchResult.routes``)."""
    return "cross-validated" if folds is not None else (
        "vectorized" if vectorized else "sequential")


def _row(j, values, metric, m, train, validation, ranking, fit_s, route, why,
         fold_in=None) -> dict:
    value = (math.nan if m is None
             else M.score(m, train, validation, (metric,), ranking, fold_in)[metric])
    return {**values, metric: value, "fit_s": fit_s, "route": route, "trial": j, "error": why}


def _no_best(table: pd.DataFrame, metric: str, shown: int = 3) -> str:
    """The message of a search whose every trial has a NaN metric (a few trials' reasons)."""
    lines = []
    for _, row in table.head(shown).iterrows():
        why = row["error"] or (f"its model is finite but {metric} is NaN on the validation "
                               "set (no validation user or rating it can score)")
        lines.append(f"trial {row['trial']}: {why}")
    more = f"; and {len(table) - shown} more" if len(table) > shown else ""
    return (f"search: every trial's {metric} is NaN, so there is no best trial: "
            + "; ".join(lines) + more)


def _cv_row(j, values, metric, train, spec, folds, seed, features=None) -> dict:
    """One trial cross-validated: the mean and std of ``metric`` over the folds."""
    from .cross_validate import cross_validate

    why = None
    try:
        df = cross_validate(train, spec, folds=folds, metrics=(metric,), seed=seed,
                            progress=False, features=features)
        mean, std, fit_s = df[metric].mean(), df[metric].std(ddof=0), df["fit_s"].sum()
    except FloatingPointError as e:
        print(f"search: {spec!r} diverged: {e}")
        mean = std = fit_s = math.nan
        why = str(e)
    return {**values, metric: mean, f"{metric}_std": std, "fit_s": fit_s, "error": why,
            "route": "cross-validated", "trial": j}


def trial_model(train: Ratings, spec, run, params, history, route: str):
    """A :class:`mfjax.Model` of one vectorized trial (config as ``fit`` records it)."""
    from ..serving.model import Model
    from ..solvers.minibatch.layout import seen_index

    if "kernel" in spec.field_names():  # the vectorized trial ran XLA: say so in its spec
        spec = dataclasses.replace(spec, kernel=False)
    config = {**spec.to_dict(), "objective": spec.objective, "solver": spec.solver,
              "seed": run.seed, "patience": None, "n_ratings": len(train),
              "n_users": train.n_users, "n_items": train.n_items, "mesh": None, "route": route}
    indptr, seen = seen_index(train)
    return Model(params, train.user_ids, train.item_ids, train.rating_range, config, history,
                 indptr, seen)
