"""Cold-start items on MovieLens-1M: feature-aware iALS and BPR/WARP with features against
random, a genre profile and LightFM.

Protocol (issue #28): ML-1M ratings >= 4 are interactions (value 1). A seeded 20 % of
the items with interactions are made cold with ``mfjax.split.cold_items(r, 0.2,
seed=SEED)``: all their interactions go to test, none to train. Each test user ranks
all the cold items (every cold item with a test interaction, the same candidates for
everyone); NDCG@20 (binary gains, ideal DCG over min(|relevant|, 20)) and AUC (per
user, all candidate pairs, averaged over users, as LightFM's ``auc_score``) are
computed here from each model's score matrix, by the same code for every row. Item
features: decade (one-hot) and genres (multi-hot, 1/n each) from
``mfjax.datasets.movielens_features("1m")`` (the item table only).

Rows: random scores; the user genre profile (a user's summed genre vectors over their
training items, scored by the dot product with each cold item's genres); mfjax
``ImplicitALS`` with ``features=`` (the cold items' vectors are ``B g_i``, the ridge
map of the warm item vectors); mfjax ``BPR`` with ``features=`` (LightFM-style feature
embeddings, ``loss="bpr"`` or ``"warp"``, with identity features or features only; the
cold items' vectors are their feature sums). Each mfjax row is cross-checked against
``mfjax.evaluate_ranking(..., candidates=cold, auc=True)``. The BPR/WARP rows' "fit s"
is the first of :data:`REPEATS` fits in the process (compiling, or reading mfjax's
persistent compilation cache) / the median of the others (compiled); LightFM's is the
median of its :data:`REPEATS` fits.

LightFM (the issue's reference) builds from its 1.17 sdist only after patching one line
of its ``setup.py`` (``__builtins__.__LIGHTFM_SETUP__`` → ``import builtins;
builtins.__LIGHTFM_SETUP__``) and ``pip install --no-build-isolation``; that recipe
stays here, never in the project's dependencies. ``pip download lightfm==1.17
--no-binary :all: --no-deps`` itself runs the unpatched setup.py; without ``wheel``
installed, ``pip install --target DIR wheel`` and ``PYTHONPATH=DIR pip download ...
--no-use-pep517`` fetch the sdist. Installed with ``--target``, it is found through
``PYTHONPATH``; its rows (WARP, 30 epochs, its other defaults: 10 components, Adagrad,
learning rate 0.05, ``max_sampled=10``, 2 threads; cold items as empty columns of the
interaction matrix) appear when ``import lightfm`` works.

``--warm`` adds the warm-items check on the per-user holdout of
``bench_implicit.py`` (iALS with item features against iALS without: Recall@20,
NDCG@10) and the per-sweep cost of the features (seconds per epoch after the first).
Run from the repository root::

    python benchmarks/bench_cold_start.py [--warm] [--no-record]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import _common
import mfjax
from bench_implicit import holdout, mf_top, metrics, positives

SEED = 0
K = 20
#: alpha=3 was the best of 10 settings (reg 0.003-0.2, alpha 1/3, nu, feature_reg 0.01-1,
#: 4/8 sweeps) on a validation split carved from the training items the same way
#: (cold_items(train, 0.2, seed=1)); the test's cold items were not looked at.
CONFIGS = {
    "iALS+features, defaults (rank 64, 4 sweeps, CG 3)": dict(),
    "iALS+features, alpha=3 (chosen on validation)": dict(alpha=3.0),
}
#: BPR/WARP with item features. The WARP settings (rank 32, 4 epochs, batch 16384,
#: learning rate 0.03, max_sampled 20) were chosen on the same validation split
#: (benchmarks/tune_cold_bpr.py: 15 settings of loss, identity, rank, epochs, batch,
#: learning rate, reg, max_sampled), for NDCG@20 at a fit time under a third of
#: LightFM's; the test's cold items were not looked at.
FAST = dict(rank=32, epochs=4, batch_size=16384, learning_rate=0.03)
BPR_CONFIGS = {
    "BPR+features, identity + features (defaults)": dict(),
    "BPR+features, features only (defaults)": dict(identity_features=False),
    "WARP+features, identity + features (chosen on validation)":
        dict(loss="warp", max_sampled=20, **FAST),
    "WARP+features, features only (chosen on validation)":
        dict(loss="warp", identity_features=False, max_sampled=20, **FAST),
    "WARP+features, features only (rank 64, 8 epochs)": dict(loss="warp",
                                                            identity_features=False),
}
#: Fits per BPR/WARP and LightFM row (the machine is shared: medians).
REPEATS = 3
#: LightFM's epochs (its fit times in issue #28, 31-35 s, suggest about this many).
LIGHTFM_EPOCHS = 30


def cold_metrics(S: np.ndarray, rel: np.ndarray) -> dict:
    """NDCG@K and AUC of scores S [n_users, n_cand] against relevance rel (bool, same)."""
    order = np.argsort(-S, axis=1, kind="stable")
    hits = np.take_along_axis(rel, order[:, :K], axis=1)
    disc = 1.0 / np.log2(np.arange(2, K + 2))
    n_rel = rel.sum(1)
    idcg = np.array([disc[:min(c, K)].sum() for c in n_rel])
    ndcg = (hits @ disc) / idcg
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(S.shape[1])[None, :], axis=1)  # 0 = best
    n = S.shape[1]
    # AUC = share of (relevant, irrelevant) pairs with the relevant one ranked higher
    above = (n - 1 - ranks) * rel  # candidates ranked below each relevant one
    auc = (above.sum(1) - n_rel * (n_rel - 1) / 2) / (n_rel * (n - n_rel))
    return {"NDCG@20": float(ndcg.mean()), "AUC": float(auc.mean())}


def setup():
    r = positives()
    train, test = mfjax.split.cold_items(r, 0.2, seed=SEED)
    F = mfjax.Features(items=mfjax.datasets.movielens_features("1m").items)
    cold = np.unique(test.item_ids[test.items])
    users = np.unique(test.user_ids[test.users])
    rel = np.zeros((len(users), len(cold)), bool)
    rel[np.searchsorted(users, test.user_ids[test.users]),
        np.searchsorted(cold, test.item_ids[test.items])] = True
    return r, train, test, F, cold, users, rel


def genre_profile(train, F, users, cold):
    cols = F.items.group_of("genres")
    G_train = F.items.dense(train.item_ids)[:, cols]
    prof = np.zeros((train.n_users, len(cols)))
    np.add.at(prof, train.users, G_train[train.items])
    rows = np.searchsorted(train.user_ids, users)
    return prof[rows] @ F.items.dense(cold)[:, cols].T


def mfjax_scores(model, users, cold):
    """b_i + <p_u, q_i> [users, cold] (the item bias is 0 for iALS, learned for BPR)."""
    P = np.asarray(model.params.user_factors, np.float64)[model.index_users(users)]
    rows = model.index_items(cold)
    Q = np.asarray(model.params.item_factors, np.float64)[rows]
    b = np.asarray(model.params.item_bias, np.float64)[rows]
    return P @ Q.T + b[None, :]


def cold_rows(train, test, F, cold, users, rel):
    rows = []
    t = time.perf_counter()
    rows.append(("random", cold_metrics(np.random.default_rng(SEED).random(rel.shape), rel),
                 None))
    rows.append(("user genre profile", cold_metrics(genre_profile(train, F, users, cold), rel),
                 time.perf_counter() - t))
    for name, kw in CONFIGS.items():
        t = time.perf_counter()
        m = mfjax.fit(train, mfjax.ImplicitALS(**kw), features=F, progress=False)
        sec = time.perf_counter() - t
        res = cold_metrics(mfjax_scores(m, users, cold), rel)
        check = mfjax.evaluate_ranking(m, train, test, k=K, threshold=None, candidates=cold,
                                       auc=True)
        res["check"] = (round(check[f"ndcg@{K}"], 4), round(check["auc"], 4))
        rows.append((f"mfjax {name}", res, sec))
        print(name, res, f"{sec:.1f} s", flush=True)
    m = mfjax.fit(train, mfjax.ImplicitALS(), progress=False)
    rows.append(("mfjax iALS without features (cold rows 0)",
                 cold_metrics(mfjax_scores(m, users, cold), rel), None))
    return rows + bpr_rows(train, test, F, cold, users, rel) + lightfm_rows(train, F, cold,
                                                                          users, rel)


def bpr_rows(train, test, F, cold, users, rel):
    """The BPR / WARP with features rows; fit s: "first / median of the others" (the
    later fits reuse the compiled epoch)."""
    rows = []
    for name, kw in BPR_CONFIGS.items():
        secs = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            m = mfjax.fit(train, mfjax.BPR(**kw), features=F, progress=False)
            secs.append(time.perf_counter() - t)
        res = cold_metrics(mfjax_scores(m, users, cold), rel)
        check = mfjax.evaluate_ranking(m, train, test, k=K, threshold=None, candidates=cold,
                                       auc=True)
        res["check"] = (round(check[f"ndcg@{K}"], 4), round(check["auc"], 4))
        rows.append((f"mfjax {name}", res, f"{secs[0]:.1f} / {np.median(secs[1:]):.1f}"))
        print(name, res, secs, flush=True)
    return rows


def lightfm_rows(train, F, cold, users, rel):
    """LightFM WARP, identity + features and features only (none when not installed)."""
    try:
        import lightfm  # noqa: F401
    except ImportError:
        print("LightFM is not installed: no LightFM rows", flush=True)
        return []
    from lightfm_rows import fit_lightfm

    rows = []
    for name, identity in (("identity + features", True), ("features only", False)):
        secs = []
        for _ in range(REPEATS):
            scores, sec = fit_lightfm(train, F, identity, epochs=LIGHTFM_EPOCHS)
            secs.append(sec)
        sec = float(np.median(secs))
        res = cold_metrics(scores(users, cold), rel)
        rows.append((f"LightFM 1.17 WARP, {name} ({LIGHTFM_EPOCHS} epochs)", res, sec))
        print("LightFM", name, res, f"{sec:.1f} s", flush=True)
    return rows


def warm_rows(F):
    train, test = holdout(positives(), seed=0)
    out = []
    for name, spec, feats in [
            ("iALS defaults (C++ kernel)", mfjax.ImplicitALS(), None),
            ("iALS defaults, kernel=False (XLA)", mfjax.ImplicitALS(kernel=False), None),
            ("iALS defaults + item features (XLA)", mfjax.ImplicitALS(), F)]:
        t = time.perf_counter()
        m = mfjax.fit(train, spec, features=feats, progress=False)
        sec = time.perf_counter() - t
        secs = [h["seconds"] for h in m.history]
        per = float(np.mean(secs[1:])) if len(secs) > 1 else float("nan")  # after compiling
        res = {**metrics(mf_top(m, train), test), "fit s": sec, "s/sweep": per}
        print(name, {k: round(v, 4) for k, v in res.items()}, flush=True)
        out.append((name, res))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", action="store_true")
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    r, train, test, F, cold, users, rel = setup()
    rows = cold_rows(train, test, F, cold, users, rel)
    table = _common.markdown_table(
        ["model", "NDCG@20", "AUC", "fit s", "evaluate_ranking check"],
        [[n, f"{x['NDCG@20']:.3f}", f"{x['AUC']:.3f}",
          "" if s is None else s if isinstance(s, str) else f"{s:.1f}",
          str(x.get("check", ""))] for n, x, s in rows])
    body = (f"ML-1M ratings >= 4; cold_items(0.2, seed={SEED}): {len(cold)} cold items, "
            f"{len(users)} test users, {len(train):,} train interactions. Item features: "
            f"decade + genres ({F.items.n_columns} columns).\n\n{table}\n\n"
            "LightFM reference quoted from issue #28 (NOT this run, not this machine, not "
            "this seed): WARP identity + features 0.133 / 0.692 (31 s fit), WARP features "
            "only 0.203 / 0.777 (35 s fit). The LightFM rows above (when present) are this "
            "run's.\n")
    if a.warm:
        wr = warm_rows(F)
        wt = _common.markdown_table(["model", "P@10", "Recall@20", "NDCG@10", "fit s", "s/sweep"],
                                    [[n, f"{x['P@10']:.4f}", f"{x['R@20']:.4f}",
                                      f"{x['NDCG@10']:.4f}", f"{x['fit s']:.1f}",
                                      f"{x['s/sweep']:.2f}"] for n, x in wr])
        body += f"\nWarm items (bench_implicit.py holdout, seed 0):\n\n{wt}\n"
    print(body)
    if not a.no_record:
        _common.append_results("Cold-start items, ML-1M (bench_cold_start.py)",
                               _common.command_line("bench_cold_start.py"), body,
                               extra_versions=("lightfm",))


if __name__ == "__main__":
    main()
