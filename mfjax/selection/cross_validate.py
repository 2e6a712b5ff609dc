"""``mfjax.cross_validate``: fit and score one spec on every fold, in one call.

Folds of one data set compile once: every solver pads its device layout to bucketed
shapes (the ALS/Gibbs block layout, :func:`mfjax.solvers.als.layout.make_layout`; the
iALS layout, :func:`mfjax.models.implicit_als.layout.shared_layouts`), and the folds of
:func:`mfjax.split.kfold` share the ID tables, so fold 2 onwards reuses fold 1's
compiled sweep (``benchmarks/RESULTS.md``, ``bench_selection.py``).
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd

from .. import models
from ..data import Ratings
from . import metrics as M

__all__ = ["cross_validate", "fold_pairs", "summary"]


def fold_pairs(ratings, folds, seed: int, where: str = "cross_validate") -> list:
    """The ``(train, test)`` pairs: ``kfold(ratings, folds, seed)`` for an int, else
    ``folds`` itself (each pair checked)."""
    from ..data.split import kfold

    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        if not isinstance(ratings, Ratings):
            raise TypeError(f"{where}: ratings must be an mfjax.Ratings when folds is a number, "
                            f"got {type(ratings).__name__}")
        return kfold(ratings, int(folds), seed)
    if isinstance(folds, (str, bytes, bool)) or not hasattr(folds, "__iter__"):
        raise TypeError(f"{where}: folds must be an int or an iterable of (train, test) "
                        f"Ratings pairs, got {folds!r}")
    pairs = list(folds)
    if not pairs:
        raise ValueError(f"{where}: folds is empty")
    for j, pair in enumerate(pairs):
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(x, Ratings) for x in pair)):
            raise TypeError(f"{where}: folds[{j}] must be a (train, test) pair of mfjax.Ratings")
        if len(pair[0]) == 0 or len(pair[1]) == 0:
            part = "train" if len(pair[0]) == 0 else "test"
            raise ValueError(f"{where}: folds[{j}] has an empty {part} set")
    return [tuple(p) for p in pairs]


def cross_validate(ratings, model=None, *, folds=5, metrics=None, seed: int = 0,
                   progress: bool = True, features=None) -> pd.DataFrame:
    """Fit ``model`` on each fold's train part and score it on the fold's test part.

    Args:
        ratings: the :class:`mfjax.Ratings` to split (may be None when ``folds`` is an
            iterable of pairs).
        model: a spec (``mfjax.ALS(rank=32)``), a spec class, a trained
            :class:`mfjax.Model` (its spec is refit on each fold, as :func:`mfjax.search`
            does), or None: the spec ``mfjax.fit(train)`` picks from the data (Bayesian
            MF for ratings up to 2M, iALS for all-1 interactions).
        folds: an int k (``mfjax.split.kfold(ratings, k, seed)``) or an iterable of
            ``(train, test)`` Ratings pairs.
        metrics: names :func:`mfjax.evaluate` / :func:`mfjax.evaluate_ranking` produce
            (``"rmse"``, ``"mae"``, ``"ndcg@10"``, ``"recall@20"``, ...). Default
            ``("rmse", "mae")`` for explicit specs, ``("ndcg@10", "recall@20")`` for
            implicit ones. Ranking metrics of an implicit model count every test
            interaction relevant; of an explicit model, test ratings >= 4.0.
        seed: seeds the folds and every fit.
        progress: one line per fold as it finishes (its scores and times, like
            Surprise's ``verbose``), then the Surprise-style table (per fold, mean, std).
        features: side information (:class:`mfjax.Features`) passed to every fold's
            ``fit`` (the same object each time; each fold's model is scored with it).
            None with a trained ``model`` that has features: that model's. Refused,
            before any training, for a model that takes none.

    Returns:
        A DataFrame with one row per fold: ``fold`` (1-based), one column per metric,
        ``n_unknown_users`` and ``n_unknown_items`` (test ratings whose user or item has
        no training rating in the fold: they are scored by the fallbacks of
        :meth:`mfjax.Model.predict`/``recommend``), ``fit_s`` and ``test_s`` (seconds).
        ``df.attrs["spec"]`` holds the first fold's trained spec's repr.

    Warns:
        UserWarning: for a fold where more than half of the test ratings have an
            unknown user or item: its metrics then mostly score the fallback, not the
            model (e.g. folds whose test IDs match nothing in their train part).

    Raises:
        TypeError, ValueError: bad ``ratings``, ``folds``, ``model`` or a metric the model
        cannot produce, before any training.
    """
    from ..training.loop import fit

    from ..serving.model import Model

    pairs = fold_pairs(ratings, folds, seed)
    spec = M.spec_of(model, pairs[0][0], "cross_validate")
    if isinstance(model, Model):  # refit its spec (and its features) on every fold, as search does
        features = model.features if features is None else features
        model = spec
    models.check_features(models.record_of(spec), features, "cross_validate")
    ranking = M.is_ranking(spec)
    names = M.check_metrics(M.default_metrics(spec) if metrics is None else metrics, spec,
                            "cross_validate")
    rows, trained = [], None
    for j, (train, test) in enumerate(pairs):
        t0 = time.perf_counter()
        m = fit(train, model, seed=seed, progress=False, features=features)
        t1 = time.perf_counter()
        scores = M.score(m, train, test, names, ranking)
        unknown = _unknown_counts(m, test, j + 1)
        rows.append({"fold": j + 1, **scores, **unknown, "fit_s": t1 - t0,
                     "test_s": time.perf_counter() - t1})
        trained = trained or repr(m.spec)
        if progress:
            print(f"cross_validate: fold {j + 1}/{len(pairs)} of {type(m.spec).__name__}: "
                  + ", ".join(f"{n} {scores[n]:.4f}" for n in names)
                  + f" (fit {t1 - t0:.1f} s)", flush=True)
    df = pd.DataFrame(rows, columns=["fold", *names, "n_unknown_users", "n_unknown_items",
                                     "fit_s", "test_s"])
    df.attrs["spec"] = trained
    if progress:
        print(summary(df, names, trained))
    return df


def _unknown_counts(model, test, fold: int) -> dict:
    """``{"n_unknown_users", "n_unknown_items"}``: ``test`` ratings whose user (item) takes
    the fallback; warns when more than half of the ratings have either."""
    from ..data.ids import model_indices
    from ..serving.fallback import fallback_indices

    users, items = fallback_indices(model, *model_indices(model, test))
    either = int(np.sum((users < 0) | (items < 0)))
    if 2 * either > len(test):
        warnings.warn(f"cross_validate: fold {fold}: {either} of its {len(test)} test ratings "
                      f"({either / len(test):.0%}) have a user or item without training "
                      "ratings in the fold, so its metrics mostly score the fallback "
                      "predictions, not the model; check that the folds' train and test parts "
                      "share their IDs", UserWarning, stacklevel=3)
    return {"n_unknown_users": int(np.sum(users < 0)), "n_unknown_items": int(np.sum(items < 0))}


def summary(df: pd.DataFrame, names, title: str = "") -> str:
    """Surprise's layout: a row per metric and time, a column per fold, then mean and std."""
    n = len(df)
    head = [f"Evaluating {', '.join(x.upper() for x in names)} of {title} on {n} split(s).", ""]
    width = max(18, *(len(x) + 11 for x in names))
    cols = "".join(f"{'Fold ' + str(f):>9}" for f in df["fold"]) + f"{'Mean':>9}{'Std':>9}"
    lines = [" " * width + cols]
    for label, key in [*((f"{x.upper()} (testset)", x) for x in names),
                       ("Fit time", "fit_s"), ("Test time", "test_s")]:
        v = df[key].to_numpy(float)
        fmt = "{:9.4f}" if key in names else "{:9.2f}"
        std = float(np.std(v)) if n > 1 else math.nan
        lines.append(f"{label:<{width}}" + "".join(fmt.format(x) for x in v)
                     + fmt.format(float(np.mean(v))) + fmt.format(std))
    return "\n".join(head + lines)
