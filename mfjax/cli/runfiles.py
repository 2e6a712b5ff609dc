"""What ``mfjax train`` does once its flags are checked: load, split, verify gradients,
fit, evaluate, and write the run's files (``model.npz``, ``metrics.json``,
``learning_curve.png``)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import time

from ..plumbing import atomic_write_text
from . import UsageError
from .plot import model_summary, plot_curve

__all__ = ["RUN_FILES", "load_data", "load_features", "split_data", "check_gradients", "fit_model",
           "star_ratings_notice",
           "train_and_report", "remove_empty_tree", "write_json"]

#: What a run writes into --out; their presence means --out holds a previous run.
RUN_FILES = ("model.npz", "metrics.json", "learning_curve.png", "checkpoints")


def load_data(args):
    import mfjax

    if args.data:
        cols = {k: getattr(args, f"{k}_col") for k in ("user", "item", "rating", "time")}
        return mfjax.load_ratings(args.data, format=args.format,
                                  **{f"{k}_col": v for k, v in cols.items() if v})
    if args.dataset == "synthetic":
        n_users, n_items, n = args.synthetic_size
        return mfjax.datasets.synthetic(n_users, n_items, n, noise=args.synthetic_noise,
                                        seed=args.seed)[0]
    return mfjax.datasets.movielens(args.dataset.removeprefix("movielens-"))


def add_feature_arguments(ap) -> None:
    """The side-information flags (``--user-features`` ... ``--categorical``) on the parser
    ``ap`` (``mfjax train``, ``cv``, ``search``; read by :func:`load_features`)."""
    side = ap.add_argument_group("side information (mfjax.Features; models that take features)")
    side.add_argument("--user-features", metavar="PATH",
                      help="a CSV (.tsv: tab-separated) of user attributes, one row per user "
                           "ID; text columns one-hot, numbers standardised")
    side.add_argument("--item-features", metavar="PATH", help="the same for items")
    side.add_argument("--user-id-col", default="user_id", metavar="COL",
                      help="the user ID column of --user-features")
    side.add_argument("--item-id-col", default="item_id", metavar="COL",
                      help="the item ID column of --item-features")
    side.add_argument("--multi-valued", action="append", default=None, metavar="COL=SEP",
                      help="a column of several values split on SEP (multi-hot, each of n "
                           "values 1/n), e.g. genres='|'; repeatable")
    side.add_argument("--categorical", action="append", default=None, metavar="COL",
                      help="a numeric column to one-hot instead of standardise; repeatable")


def load_features(args):
    """``--user-features``/``--item-features`` as an :class:`mfjax.Features`, or None.

    Raises:
        UsageError: a bad ``--multi-valued`` (not COL=SEP), a file pandas cannot read, or
            features mfjax.Features refuses (the message names the flag and column).
    """
    import pandas as pd

    import mfjax

    paths = {"users": args.user_features, "items": args.item_features}
    if not any(paths.values()):
        if args.multi_valued or args.categorical:
            flag = "--multi-valued" if args.multi_valued else "--categorical"
            raise UsageError(f"{flag} describes a column of --user-features or --item-features; "
                             "give one of those files")
        return None
    multi = {}
    for text in args.multi_valued or ():
        col, sep, value = text.partition("=")
        if not sep or not col or not value:
            raise UsageError(f"--multi-valued {text}: expected COL=SEP, e.g. genres='|'")
        multi[col] = value
    frames = {}
    for side, path in paths.items():
        if path:
            flag = f"--{side[:-1]}-features"
            try:
                frames[side] = pd.read_csv(path, sep="\t" if path.endswith(".tsv") else ",")
            except (OSError, ValueError, pd.errors.ParserError) as e:
                raise UsageError(f"{flag} {path}: cannot read it as a CSV ({e})") from None
    try:
        return mfjax.Features.from_frames(**frames, user_id=args.user_id_col,
                                          item_id=args.item_id_col, multi_valued=multi or None,
                                          categorical=args.categorical or None)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--user-features/--item-features: {e}") from None


def split_data(args, ratings):
    from .. import split

    if args.split == "holdout":
        return split.holdout(ratings, args.test_fraction, seed=args.seed)
    if args.split == "per-user":
        return split.per_user(ratings, args.test_fraction, seed=args.seed)
    return split.temporal(ratings, args.test_fraction)


def make_schedule(args, spec, n_steps):
    """``--schedule`` over ``n_steps`` minibatches, from the spec's optimizer and rate."""
    import optax

    from ..solvers.minibatch.optimizers import OPTIMIZERS

    lr = spec.learning_rate or OPTIMIZERS[spec.optimizer][1]
    if args.schedule == "cosine":
        return optax.cosine_decay_schedule(lr, n_steps, alpha=0.05)
    return optax.exponential_decay(lr, n_steps, 0.05)


def check_gradients(args, train) -> bool:
    """``--check-grads``: verify the gradients of the objective being trained (explicit
    loss, iALS, BPR, ...) at a random rank-4 point on 300 sampled training ratings, with
    the hyperparameters the flags give (else the objective's model defaults); print the
    report."""
    import dataclasses

    import numpy as np

    import mfjax
    from mfjax import models

    record = models.records_for(args.objective)[0]
    fields = {k: getattr(args, k) for k in ("reg", "bias_reg", "alpha", "unobserved_weight", "nu")
              if k in record.spec.field_names() and getattr(args, k, None) is not None}
    spec = dataclasses.replace(record.spec(), rank=4, **fields)
    if "ensemble" in spec.field_names():
        spec = dataclasses.replace(spec, ensemble=1)
    take = np.random.default_rng(args.seed).choice(len(train), min(300, len(train)), replace=False)
    report = mfjax.verify_gradients(spec, train.subset(np.sort(take)), seed=args.seed)
    print(f"gradient check of the {args.objective} objective:\n{report}")
    return report.ok


#: Flags that set a spec field (the field is the flag's name with "_").
SPEC_FLAGS = ("rank", "reg", "bias_reg", "epochs", "batch_size", "learning_rate", "init_scale",
              "optimizer", "gradient", "burn_in", "samples", "alpha", "unobserved_weight", "nu",
              "cg_steps")


def spec_from_flags(args, fit_set):
    """The spec the flags ask for: ``--objective``/``--solver`` pick its class, every other
    flag given sets its field; a flag the spec does not have is refused, naming it."""
    import mfjax
    from mfjax import models

    found = models.records_for(args.objective)
    by_solver = len(found) > 1  # several models of one objective: --solver picks the spec
    pick = _features_record(args, found) if by_solver else None
    if pick is not None:
        cls, by_solver = pick.spec, False
    elif args.solver is not None and not by_solver:
        raise UsageError(f"--solver is for --objective explicit (--objective {args.objective} "
                         f"trains {found[0].name})")
    elif by_solver and args.solver is None:  # what mfjax.fit(train) picks for these ratings
        cls = models.pick_record(fit_set, args.objective, None).spec
    else:
        cls = (models.records_for(args.objective, args.solver)[0] if by_solver
               else found[0]).spec
    given = {f: getattr(args, f) for f in SPEC_FLAGS if getattr(args, f) is not None}
    refused = [f for f in given if f not in cls.field_names()]
    if args.schedule != "constant" and "schedule" not in cls.field_names():
        refused.append("schedule")
    if refused:
        flags = ", ".join("--" + f.replace("_", "-") for f in refused)
        usable = ", ".join("--" + f.replace("_", "-") for f in cls.field_names() if f in SPEC_FLAGS)
        what = f"--objective {args.objective}" + (f" --solver {args.solver}"
                                                   if by_solver and args.solver else "")
        what += f" ({cls.__name__})"
        if by_solver and args.solver is None:
            what = (f"the default model ({cls.__name__}, what mfjax.fit picks for "
                    f"{len(fit_set):,} ratings; --solver optax or als trains another)")
        raise UsageError(f"{flags} {'does' if len(refused) == 1 else 'do'} not apply to {what}; "
                         f"its flags are {usable}")
    spec = cls(**given)
    if args.schedule != "constant":
        batch = getattr(spec, "batch_size", None) or mfjax.auto_batch_size(
            len(fit_set), fit_set.n_users, fit_set.n_items)
        n_steps = spec.epochs * -(-len(fit_set) // min(batch, len(fit_set)))
        spec = spec.replace(schedule=make_schedule(args, spec, n_steps), learning_rate=None,
                            optimizer_name=f"{spec.optimizer}-{args.schedule}")
    return spec


def _features_record(args, found: list):
    """With ``--user-features``/``--item-features``, the first of the records ``found``
    (of ``--objective``) that reads features and trains with ``--solver`` when given;
    None without feature files or such a record (then a model that takes no features
    is refused by name, :func:`fit_model`)."""
    if not (args.user_features or args.item_features):
        return None
    return next((r for r in found if r.features
                 and (args.solver is None or args.solver in r.solvers)), None)


@contextlib.contextmanager
def star_ratings_notice(ratings, spec, flag: str, prog: str):
    """Around fits of ``spec`` on ``ratings``: when the spec is implicit and the values
    look like stars, one line on stderr naming the command's own flag (``--min-rating 4``)
    instead of the library's Python warning (its source line and ``binarize(4)`` advice)."""
    import warnings

    from mfjax import data, models

    with warnings.catch_warnings():
        if models.record_of(spec).objective_record.ranking and data.looks_like_star_ratings(ratings):
            warnings.filterwarnings("ignore", message=re.escape(data.STAR_RATINGS_WARNING[:60]))
            print(f"{prog}: warning: these values look like star ratings, but "
                  f"{type(spec).__name__} reads each as an interaction strength; pass "
                  f"{flag} 4 to keep ratings >= 4 as interactions of value 1", file=sys.stderr,
                  flush=True)
        yield


def fit_model(args, fit_set, monitor, common):
    """``mfjax.fit`` of the spec the flags ask for."""
    import mfjax

    from mfjax import models

    spec = spec_from_flags(args, fit_set)
    record = models.record_of(spec)
    if (args.user_features or args.item_features) and not record.features:
        raise UsageError(f"--user-features/--item-features: {record.name} does not use side "
                         "information, so the features would be ignored; drop the flags or "
                         "train a model that takes features")
    features = load_features(args)
    with star_ratings_notice(fit_set, spec, "--min-rating", "mfjax train"):
        return mfjax.fit(fit_set, spec, table_sharding=args.table_sharding, features=features,
                         **common)


def train_and_report(args, out: str, lead: bool, mesh) -> int:
    """Load, split, fit, evaluate and write the run's files into ``out``."""
    import numpy as np

    import mfjax

    t0 = time.perf_counter()
    ratings = load_data(args)
    if args.min_rating is not None:
        kept = ratings.subset(ratings.ratings >= args.min_rating)
        ratings = mfjax.Ratings(kept.users, kept.items, np.ones(len(kept)), kept.timestamps,
                                kept.user_ids, kept.item_ids)
    train, test = split_data(args, ratings)
    if args.objective is None:  # as mfjax.fit(train): ials when every value is 1
        args.objective = mfjax.models.default_record(train).objective
    print(f"data: {ratings!r}; train {len(train):,}, test {len(test):,} ({args.split})")
    if args.check_grads and not check_gradients(args, train):
        print("error: gradient check failed; not training", file=sys.stderr)
        return 1
    monitor = test  # scored each epoch for the curve; never used to pick parameters
    if args.patience:
        fit_set, monitor = mfjax.split.holdout(train, args.val_fraction, seed=args.seed)
    else:
        fit_set = train
    common = dict(seed=args.seed, validation=monitor, patience=args.patience,
                  checkpoint_dir=os.path.join(out, "checkpoints"),
                  checkpoint_every=args.checkpoint_every, resume=args.resume,
                  progress=lead and not args.quiet, mesh=mesh)
    model = fit_model(args, fit_set, monitor, common)
    if not lead:
        return 0
    metrics = evaluate(args, model, train, test, t0)
    model.save(os.path.join(out, "model.npz"))
    heldout = "validation" if args.patience else "test"
    write_json(run_record(args, model, metrics, heldout, time.perf_counter() - t0),
               os.path.join(out, "metrics.json"))
    data = args.data or args.dataset
    wrote = ["model.npz", "metrics.json"]
    if plot_curve(model.history, os.path.join(out, "learning_curve.png"),
                  data=os.path.basename(data), summary=model_summary(model),
                  split=f"{args.split} {args.test_fraction:.0%}",
                  heldout=heldout):
        wrote.append("learning_curve.png")
    print(f"wrote {out}/{', '.join(wrote)}")
    return 0


def evaluate(args, model, train, test, t0) -> dict:
    """Print and return the test metrics: RMSE/MAE and top-10 quality (explicit), or
    top-10/20 ranking metrics (implicit: every test interaction relevant)."""
    import mfjax

    if model.objective.ranking:
        metrics = {}
        for k in (10, 20):
            metrics.update(mfjax.evaluate_ranking(model, train, test, k=k, threshold=None))
        print(f"test precision@10 {metrics['precision@10']:.4f}  recall@20 "
              f"{metrics['recall@20']:.4f}  ndcg@10 {metrics['ndcg@10']:.4f}  "
              f"({metrics['n_users']:,} users, {len(model.history)} epochs, "
              f"{time.perf_counter() - t0:.1f} s)")
        return metrics
    metrics = mfjax.evaluate(model, test)
    print(f"test RMSE {metrics['rmse']:.4f}  MAE {metrics['mae']:.4f}  "
          f"({metrics['n']:,} ratings, {len(model.history)} epochs, "
          f"{time.perf_counter() - t0:.1f} s)")
    # Top-10 quality on the same split: relevant = test rating >= 4, train items excluded.
    ranking = mfjax.evaluate_ranking(model, train, test, k=10)
    metrics.update(ranking)
    print(f"test precision@10 {ranking['precision@10']:.4f}  recall@10 {ranking['recall@10']:.4f}  "
          f"ndcg@10 {ranking['ndcg@10']:.4f}  ({ranking['n_users']:,} users)")
    return metrics


def run_record(args, model, metrics, heldout, seconds) -> dict:
    import jax

    config = {**model.config, "data": args.data or args.dataset, "split": args.split,
              "test_fraction": args.test_fraction, "min_rating": args.min_rating}
    return {"config": config, "devices": [str(d) for d in jax.devices()],
            "mesh": model.config.get("mesh"), "backend": jax.default_backend(),
            "history": model.history, "history_scored_on": heldout, "test": metrics,
            "seconds": seconds}


def remove_empty_tree(path: str) -> None:
    """Remove ``path`` and its subfolders if nothing but folders is anywhere below it.

    The whole tree is checked first; ``os.rmdir`` then never removes a file (a file
    created in between makes it fail, and the rest is kept)."""
    for root, dirs, files in os.walk(path):
        if files or any(os.path.islink(os.path.join(root, d)) for d in dirs):
            return
    try:
        for root, _, _ in os.walk(path, topdown=False):
            os.rmdir(root)
    except OSError:
        pass


def _finite(obj):
    """NaN/inf -> None, so metrics.json stays strict JSON (e.g. NaN ranking metrics)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(obj, path):
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False))
