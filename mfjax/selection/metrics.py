"""Metric names for model selection: which a spec can produce, which way is better, scoring.

A metric is a name :func:`mfjax.evaluate` or :func:`mfjax.evaluate_ranking` produces:

- ``"rmse"``, ``"mae"`` (explicit ratings only; lower is better), from
  :func:`mfjax.evaluate`;
- ``"<name>@K"`` with name one of :data:`RANKING_NAMES` (higher is better), from
  ``evaluate_ranking(model, train, test, k=K, threshold=...)``. For an implicit
  objective every test interaction is relevant (``threshold=None``); for an explicit
  model a test rating is relevant from :data:`EXPLICIT_THRESHOLD` (4.0) on, the
  :func:`mfjax.evaluate_ranking` default.

:func:`spec_of` is the one place this package reads a model's spec and objective.
"""
from __future__ import annotations

import re

from .. import models, specs

__all__ = ["ERROR_NAMES", "RANKING_NAMES", "WHOLE_RANKING_NAMES", "EXPLICIT_THRESHOLD", "default_metrics", "spec_of",
           "is_ranking", "parse_metric", "check_metrics", "lower_is_better", "score"]

#: Error metrics of explicit models (:func:`mfjax.evaluate`).
ERROR_NAMES = ("rmse", "mae")
#: Ranking metrics (``name@K``) of :func:`mfjax.evaluate_ranking`.
RANKING_NAMES = ("precision", "recall", "ndcg", "map", "hit_rate")
#: Ranking metrics without a K (:func:`mfjax.evaluate_ranking`'s ``auc=True``).
WHOLE_RANKING_NAMES = ("auc",)
#: Relevance threshold of ranking metrics for explicit models.
EXPLICIT_THRESHOLD = 4.0


def spec_of(model, train=None, where: str = "model selection"):
    """The spec of ``model`` (a spec, a spec class, a trained :class:`mfjax.Model`, or None:
    the default spec ``fit`` picks for ``train``)."""
    from ..serving.model import Model
    from ..training.config import spec_for

    if isinstance(model, Model):
        return model.spec
    if model is None and train is None:
        raise ValueError(f"{where}: model=None needs data to pick the default spec from")
    try:
        return spec_for(train, model, {})
    except TypeError as e:
        raise TypeError(f"{where}: {e}") from None


def is_ranking(spec) -> bool:
    """Whether ``spec``'s objective ranks (implicit feedback) rather than predicts ratings."""
    return models.record_of(spec).objective_record.ranking


def default_metrics(spec) -> tuple[str, ...]:
    """``("ndcg@10", "recall@20")`` for implicit specs, ``("rmse", "mae")`` for explicit ones."""
    return ("ndcg@10", "recall@20") if is_ranking(spec) else ERROR_NAMES


def parse_metric(name, where: str = "metric") -> tuple[str, int | None]:
    """``(base, k)`` of a metric name in any case (``"RMSE"``, ``"NDCG@10"``, ``"AUC"``;
    ``k`` None for rmse/mae/auc).

    Raises:
        ValueError: naming ``where``, for a name neither evaluate function produces.
    """
    original, name = name, name.strip().lower() if isinstance(name, str) else name
    if isinstance(name, str) and name in ERROR_NAMES + WHOLE_RANKING_NAMES:
        return name, None
    m = re.fullmatch(r"([a-z_]+)@(\d+)", name) if isinstance(name, str) else None
    if m is None or m.group(1) not in RANKING_NAMES or int(m.group(2)) < 1:
        raise ValueError(f"{where}: unknown metric {original!r}; use 'rmse', 'mae', 'auc' or "
                         f"NAME@K with "
                         f"NAME one of {', '.join(RANKING_NAMES)} and K >= 1 (e.g. 'ndcg@10')")
    return m.group(1), int(m.group(2))


def check_metrics(names, spec, where: str) -> tuple[str, ...]:
    """``names`` checked against what ``spec``'s model can produce: a tuple of their
    lower-case forms (the keys of every result), no repeats.

    Raises:
        ValueError: an unknown name, an empty list, or rmse/mae for an implicit objective.
    """
    if isinstance(names, str):
        names = (names,)
    names = tuple(dict.fromkeys(n.strip().lower() if isinstance(n, str) else n for n in names))
    if not names:
        raise ValueError(f"{where}: metrics must name at least one metric")
    for n in names:
        base, _ = parse_metric(n, where)
        if base in ERROR_NAMES and is_ranking(spec):
            raise ValueError(f"{where}: {type(spec).__name__} (objective {spec.objective!r}) "
                             f"ranks items and has no {n!r}; use a ranking metric such as "
                             "'ndcg@10'")
    return names


def lower_is_better(name: str) -> bool:
    """True for rmse/mae, False for ranking metrics."""
    return parse_metric(name)[0] in ERROR_NAMES


def score(model, train, test, names, ranking: bool, fold_in=None) -> dict:
    """``{name: value}`` for ``names`` on ``test`` (one evaluate_ranking call per K);
    with ``fold_in``, ``test``'s users are folded in from it first
    (:func:`mfjax.evaluate_fold_in`, ranking metrics but auc only)."""
    from ..evaluation.metrics import evaluate, evaluate_fold_in, evaluate_ranking

    out, by_k, auc = {}, {}, False
    for n in names:
        base, k = parse_metric(n)
        if base in WHOLE_RANKING_NAMES:
            by_k.setdefault(1, [])
            auc = True
        elif k is None:
            if n not in out:  # one evaluate call gives every error metric
                out.update({m: v for m, v in evaluate(model, test).items() if m in ERROR_NAMES})
        else:
            by_k.setdefault(k, []).append(n)
    for j, (k, wanted) in enumerate(by_k.items()):
        threshold = None if ranking else EXPLICIT_THRESHOLD
        r = (evaluate_ranking(model, train, test, k=k, auc=auc and j == 0, threshold=threshold)
             if fold_in is None else evaluate_fold_in(model, fold_in, test, k=k,
                                                      threshold=threshold))
        out.update({n: float(r[n]) for n in wanted + (["auc"] if auc and j == 0 else [])})
    return {n: float(out[n]) for n in names}


def is_spec(x) -> bool:
    """Whether ``x`` is a spec instance."""
    return isinstance(x, specs.Spec)
