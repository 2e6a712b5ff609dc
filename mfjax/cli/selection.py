"""The ``mfjax cv`` and ``mfjax search`` subcommands (model selection).

``mfjax cv ratings.csv --model ALS --set rank=32 --folds 5`` prints the Surprise-style
per-fold table (and writes it as CSV with ``--out``). ``mfjax search ratings.csv
--model ImplicitALS --grid reg=0.003,0.01,0.03 --grid unobserved_weight=0.1,0.3
--metric ndcg@10`` splits a per-user validation set off the file, runs
:func:`mfjax.search` and prints the table (``--out`` CSV, ``--plot`` PNG). Building the
parsers imports nothing heavy (no JAX): :func:`add_cv_arguments` /
:func:`add_search_arguments` let the ``mfjax`` console command add them as
subcommands, and :func:`run_cv` / :func:`run_search` run parsed arguments.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import UsageError, run_main
from .runfiles import add_feature_arguments
from .constants import SPEC_NAMES
from ..models import objective_names, records_for

__all__ = ["main", "build_parser", "add_cv_arguments", "add_search_arguments", "run_cv",
           "run_search", "parse_value", "model_name", "library_words", "TRAIN_WORDS"]

#: ``mfjax train``'s words for the same models (``--solver`` / ``--objective``), also taken;
#: a solver word names the first record that trains with it, as ``mfjax train --solver``
#: picks (``gibbs``: BayesianMF, not BayesianFM).
TRAIN_WORDS = {}
for _record in records_for("explicit"):
    for _solver in _record.solvers:
        TRAIN_WORDS.setdefault(_solver, _record.name)
TRAIN_WORDS.update({o: records_for(o)[0].name for o in objective_names() if o != "explicit"})


def model_name(text: str) -> str:
    """``--model``: a spec name in any case (``als``, ``ImplicitALS``) or ``mfjax train``'s
    word for it (``gibbs``, ``ials``, ``optax``); returns the spec's name."""
    by_lower = {**{n.lower(): n for n in SPEC_NAMES}, **TRAIN_WORDS}
    name = by_lower.get(text.strip().lower())
    if name is None:
        raise argparse.ArgumentTypeError(
            f"unknown model {text!r}; choose from {', '.join(SPEC_NAMES)} (any case), or "
            f"mfjax train's {', '.join(TRAIN_WORDS)}")
    return name


def library_words(text: str) -> str:
    """A library error as the command line says it: without the function's own prefix
    (``search:``), which ``mfjax search: error:`` already says."""
    for prefix in ("search: ", "cross_validate: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def parse_value(text: str):
    """A field value from the command line: JSON (numbers, true/false/null, strings in
    quotes), else the bare string (``adam``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _assignment(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{what} must look like FIELD=VALUE, got {text!r}")
    return name.strip(), value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("ratings", help="ratings file (CSV/TSV/MovieLens u.data/ratings.dat; "
                   "read by mfjax.load_ratings)")
    p.add_argument("--model", type=model_name, default=None, metavar="MODEL",
                   help=f"spec to train: {', '.join(SPEC_NAMES)} (any case) or mfjax train's "
                   f"{', '.join(TRAIN_WORDS)}; default: what fit(train) picks from the data")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   type=lambda s: _assignment(s, "--set"), help="a fixed spec field (repeatable)")
    p.add_argument("--binarize", type=float, default=None, metavar="THRESHOLD",
                   help="keep ratings >= THRESHOLD as interactions of value 1 (implicit feedback)")
    p.add_argument("--seed", type=int, default=0)
    add_feature_arguments(p)
    p.add_argument("--out", default=None, help="write the table as CSV here")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out (or --plot) file; without it they are refused")
    p.add_argument("--quiet", action="store_true",
                   help="no progress output (per fold or trial); the results still print")


def add_cv_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``cv`` arguments on ``p``."""
    _common(p)
    p.add_argument("--folds", type=int, default=5, help="k of the k-fold split (default 5)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names (default: rmse,mae or ndcg@10,recall@20)")
    return p


def add_search_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``search`` arguments on ``p``."""
    _common(p)
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2,...",
                   type=lambda s: _assignment(s, "--grid"), help="values of one field (repeatable)")
    p.add_argument("--metric", required=True,
                   help="the metric to rank trials by (e.g. rmse, ndcg@10)")
    p.add_argument("--method", choices=["grid", "random"], default="grid")
    p.add_argument("--n-trials", type=int, default=None, help="random draws (method random)")
    p.add_argument("--folds", type=int, default=None, metavar="K",
                   help="cross-validate each trial on K folds of the file (Surprise's "
                   "GridSearchCV) instead of one validation split")
    p.add_argument("--validation-fraction", type=float, default=0.2,
                   help="share of each user's ratings held out for validation (default 0.2)")
    p.add_argument("--vectorize", choices=["auto", "yes", "no"], default="auto",
                   help="train trials that differ only in continuous fields as one vmapped "
                   "program: auto (default) off a CPU only, yes, or no (one fit per trial)")
    p.add_argument("--plot", default=None, help="save the metric-against-field plot here (PNG)")
    return p


def build_parser() -> argparse.ArgumentParser:
    """``cv`` and ``search`` subcommands."""
    p = argparse.ArgumentParser(prog="mfjax", description="Model selection for mfjax.")
    sub = p.add_subparsers(dest="command", required=True)
    add_cv_arguments(sub.add_parser("cv", help="k-fold cross-validation of one spec"))
    add_search_arguments(sub.add_parser("search", help="grid/random hyperparameter search"))
    return p


def _once(pairs, flag: str) -> dict:
    """``--flag FIELD=...`` pairs as a dict, refusing a field given twice (never one
    silently replacing the other)."""
    out = {}
    for name, value in pairs:
        if name in out:
            raise UsageError(f"{flag} {name}= is given more than once; give it once"
                             + (" with every value (FIELD=V1,V2,...)" if flag == "--grid" else ""))
        out[name] = value
    return out


def _check_outputs(a) -> None:
    """Refuse, before any work, an --out/--plot that would replace a file unasked, the
    ratings file, or each other, and a --plot format matplotlib cannot write."""
    import os

    outputs = [(flag, path) for flag, path in (("--out", a.out),
                                               ("--plot", getattr(a, "plot", None))) if path]
    for flag, path in outputs:
        if os.path.isdir(path):
            raise UsageError(f"{flag} {path} is a folder; give a file name")
        if os.path.exists(path) and os.path.exists(a.ratings) and os.path.samefile(path, a.ratings):
            raise UsageError(f"{flag} {path} is the ratings file; write the results elsewhere")
        if os.path.lexists(path) and not a.overwrite:
            raise UsageError(f"{flag} {path} already exists; pass --overwrite to replace it")
    if len(outputs) == 2 and os.path.abspath(outputs[0][1]) == os.path.abspath(outputs[1][1]):
        raise UsageError(f"--out and --plot are the same file ({a.out}); give two names")
    if getattr(a, "plot", None):
        _plot_format(a.plot)


def _plot_format(path: str) -> str:
    """The matplotlib format of ``path``'s extension, or UsageError listing the usable ones."""
    import os

    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'mfjax[plot]'") from None
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext not in formats:
        what = "." + ext if ext else "a file without an extension"
        raise UsageError(f"--plot {path}: matplotlib cannot write {what}; use one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    return ext


def _write_outputs(a, table, result=None) -> None:
    """--out (CSV) and --plot, each written atomically."""
    from ..plumbing import atomic_write, atomic_write_text

    if a.out:
        atomic_write_text(a.out, table.to_csv(index=False))
    if result is not None and a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = result.plot()
        with atomic_write(a.plot) as f:
            fig.savefig(f, format=_plot_format(a.plot), dpi=110)
        plt.close(fig)


def _data_and_model(a):
    import numpy as np

    import mfjax
    from mfjax import models

    r = mfjax.load_ratings(a.ratings)
    if a.binarize is not None:
        keep = r.ratings >= a.binarize
        r = mfjax.Ratings(r.users[keep], r.items[keep], np.ones(int(keep.sum()), np.float32),
                          None, r.user_ids, r.item_ids)
    fields = {k: parse_value(v) for k, v in _once(a.set, "--set").items()}
    if a.model is None:
        model = models.default_record(r).spec if fields else None
    else:
        model = models.REGISTRY[a.model].spec
    if fields:
        unknown = [k for k in fields if k not in model.field_names()]
        if unknown:
            raise UsageError(f"--set {', '.join(unknown)}: {model.__name__} has no such field; "
                             f"its fields are {', '.join(model.field_names())}")
        model = model(**fields)
    return r, model


def run_cv(a) -> int:
    """Run parsed ``cv`` arguments; returns the exit status."""
    import mfjax

    _check_outputs(a)
    from .runfiles import load_features, star_ratings_notice

    r, model = _data_and_model(a)
    features = load_features(a)
    metrics = None if a.metrics is None else [m.strip() for m in a.metrics.split(",") if m.strip()]
    spec = model() if isinstance(model, type) else model or mfjax.models.default_record(r).spec()
    with star_ratings_notice(r, spec, "--binarize", "mfjax cv"):
        df = mfjax.cross_validate(r, model, folds=a.folds, metrics=metrics, seed=a.seed,
                                  progress=not a.quiet, features=features)
    if a.quiet:
        print(df.to_string(index=False))
    _write_outputs(a, df)
    return 0


def run_search(a) -> int:
    """Run parsed ``search`` arguments; returns the exit status."""
    import mfjax

    from .runfiles import load_features, star_ratings_notice

    if not a.grid:
        raise UsageError("give at least one --grid FIELD=V1,V2,...")
    grid = _once(a.grid, "--grid")
    both = sorted(set(grid) & {k for k, _ in a.set})
    if both:
        raise UsageError(f"--set {both[0]}= and --grid {both[0]}= both give {both[0]}; keep one")
    _check_outputs(a)
    r, model = _data_and_model(a)
    space = {k: [parse_value(x) for x in v.split(",")] for k, v in grid.items()}
    cls = model if isinstance(model, type) else type(
        model if model is not None else mfjax.models.default_record(r).spec())
    unknown = [k for k in space if k not in cls.field_names()]
    if unknown:
        raise UsageError(f"--grid {', '.join(unknown)}: {cls.__name__} has no such field; its "
                         f"fields are {', '.join(cls.field_names())}")
    if a.folds is not None:  # cross-validate each trial on the whole file
        train, split = r, {"folds": a.folds}
    else:
        train, val = mfjax.split.per_user(r, a.validation_fraction, seed=a.seed)
        split = {"validation": val}
    with star_ratings_notice(r, cls(), "--binarize", "mfjax search"):
        res = mfjax.search(train, model, space, metric=a.metric, method=a.method,
                           n_trials=a.n_trials, seed=a.seed,
                           vectorize={"auto": "auto", "yes": True, "no": False}[a.vectorize],
                           progress=not a.quiet, features=load_features(a), **split)
    print(res.table.to_string(index=False))
    print(f"best: {res.best!r}")
    _write_outputs(a, res.table, res)
    return 0


def main(argv=None) -> int:
    """``mfjax cv ...`` / ``mfjax search ...``; returns the exit status."""
    a = build_parser().parse_args(argv)
    return run_main(f"mfjax {a.command}", lambda: run_cv(a) if a.command == "cv" else run_search(a),
                    translate=library_words)


if __name__ == "__main__":
    sys.exit(main())
