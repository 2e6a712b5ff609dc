"""fit(objective="ials"|"bpr"): solvers, fold-in, checkpoints, splits and the truncated recall."""
import numpy as np
import pytest

import mfjax
from mfjax import split
from mfjax.models.bpr.objective import sample_negatives  # noqa: F401  (public name used by the solver)
from mfjax.evaluation.metrics import evaluate_fold_in, evaluate_ranking
from mfjax.models.bpr.solver import bpr_epoch
from mfjax.solvers.minibatch.optimizers import make_optimizer


def planted(n_per=20, items_per=15, seed=0, density=0.6):
    """Two groups: users of group g interact only with items of group g."""
    rng = np.random.default_rng(seed)
    u, i = [], []
    for g in range(2):
        for a in range(n_per):
            for b in range(items_per):
                if rng.random() < density:
                    u.append(g * n_per + a)
                    i.append(g * items_per + b)
    return mfjax.Ratings.from_arrays(np.array(u), np.array(i), np.ones(len(u)))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("objective", ["ials", "bpr"])
def test_planted_groups_never_cross(objective):
    r = planted(density=0.4)
    kw = (dict(epochs=100, learning_rate=0.05, batch_size=64) if objective == "bpr"
          else dict(epochs=15, reg=1e-3, unobserved_weight=0.05))
    m = mfjax.fit(r, objective=objective, rank=2, progress=False, **kw)
    ids, _ = m.recommend(np.arange(40), n=3)
    seen = np.bincount(r.users, minlength=40)
    for u in range(40):  # as far as the user has unseen in-group items, they come first
        first = min(3, 15 - seen[u])
        assert first >= 1 and (ids[u, :first] // 15 == u // 20).all(), (u, ids[u])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", ["cg", "cholesky"])
def test_ials_history_never_increases(method):
    r = planted(seed=1)
    m = mfjax.fit(r, mfjax.ImplicitALS(rank=6, epochs=8, cg_steps=3 if method == "cg" else 0),
                  progress=False)
    assert m.config["als_method"] == method
    loss = np.array([h["loss"] for h in m.history])
    assert (np.diff(loss) <= 1e-6 * loss[:-1]).all(), loss


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kernel", ["auto", False], ids=["kernel_if_usable", "xla"])
def test_ials_cg_steps_runs_cg_both_sides_and_returns_exact_users(kernel):
    r = planted(seed=5)
    m = mfjax.fit(r, objective="ials", rank=6, epochs=5, cg_steps=2, kernel=kernel, progress=False)
    exact = mfjax.fit(r, objective="ials", rank=6, epochs=5, cg_steps=0, kernel=kernel,
                      progress=False)
    assert exact.config["als_method"] == "cholesky"
    assert m.config["als_method"] == "cg" and m.spec.cg_steps == 2
    loss = np.array([h["loss"] for h in m.history])
    assert (np.diff(loss) <= 1e-6 * loss[:-1]).all(), loss
    # Fewer CG steps than the rank: a different trajectory than the exact solver's ...
    assert not np.allclose(m.params.item_factors, exact.params.item_factors, atol=1e-3)
    # ... but the returned users are the exact solve against the returned items.
    for u in (0, 25):
        p, _ = m.fold_in(r.item_ids[r.items[r.users == u]], None)
        np.testing.assert_allclose(p, np.asarray(m.params.user_factors[u]), atol=1e-5)


@pytest.mark.slow
def test_ials_cg_kernel_and_xla_fits_agree():
    from mfjax import kernels

    if kernels.find_compiler() is None:
        pytest.skip("no C++ compiler")
    r = planted(seed=6)
    fits = {kernel: mfjax.fit(r, mfjax.ImplicitALS(rank=6, epochs=3, cg_steps=3, kernel=kernel),
                              progress=False) for kernel in (True, False)}
    assert fits[True].spec.kernel is True and fits[False].spec.kernel is False
    for a, b in zip(fits[True].params, fits[False].params):
        np.testing.assert_allclose(a, b, atol=2e-5)
    for a, b in zip(fits[True].history, fits[False].history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


@pytest.mark.parametrize("bad", [-2, 2.5, True, "3"])
def test_ials_cg_steps_must_be_a_non_negative_int(bad):
    with pytest.raises((ValueError, TypeError), match="cg_steps"):
        mfjax.fit(planted(), objective="ials", epochs=1, cg_steps=bad, progress=False)


def test_cg_steps_does_not_apply_to_bpr():
    with pytest.raises(TypeError, match="'cg_steps' does not apply to BPR"):
        mfjax.fit(planted(), objective="bpr", epochs=1, cg_steps=3, progress=False)


def test_resuming_an_exact_run_with_the_cg_default_names_the_fix(tmp_path):
    r = planted(seed=8)
    mfjax.fit(r, objective="ials", rank=4, epochs=1, cg_steps=0, checkpoint_dir=tmp_path,
              progress=False)
    with pytest.raises(ValueError, match=r"cg_steps.*cg_steps=0\) continues an exact-solve"):
        mfjax.fit(r, objective="ials", rank=4, epochs=2, checkpoint_dir=tmp_path, resume=True,
                  progress=False)
    m = mfjax.fit(r, objective="ials", rank=4, epochs=2, cg_steps=0, checkpoint_dir=tmp_path,
                  resume=True, progress=False)
    assert len(m.history) == 2


@pytest.mark.timeout(300)
def test_ials_resume_equals_uninterrupted(tmp_path):
    r = planted(seed=2)
    kw = dict(objective="ials", rank=6, progress=False, seed=3)
    full = mfjax.fit(r, epochs=6, **kw)
    mfjax.fit(r, epochs=3, checkpoint_dir=tmp_path, **kw)
    resumed = mfjax.fit(r, epochs=6, checkpoint_dir=tmp_path, resume=True, **kw)
    for a, b in zip(full.params, resumed.params):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.timeout(300)
def test_ials_fold_in_reproduces_trained_vector(tmp_path):
    r = planted(seed=3)
    m = mfjax.fit(r, objective="ials", rank=6, epochs=4, progress=False)
    for u in (0, 7, 33):
        items = r.item_ids[r.items[r.users == u]]
        p, b = m.fold_in(items, None)
        np.testing.assert_allclose(p, np.asarray(m.params.user_factors[u]), atol=1e-5)
        assert b == 0.0
    m.save(tmp_path / "m.npz")
    back = mfjax.load_model(tmp_path / "m.npz")
    p2, _ = back.fold_in(r.item_ids[r.items[r.users == 0]], None)
    np.testing.assert_allclose(p2, np.asarray(m.params.user_factors[0]), atol=1e-5)
    ids, _ = back.recommend_for_ratings([0, 1, 2], None, n=5)
    assert set(ids.tolist()).isdisjoint({0, 1, 2}) and (ids < 15).all()
    sim, _ = back.similar_items(0, 3)
    assert 0 not in sim


@pytest.mark.timeout(300)
def test_ials_unknown_user_gets_the_most_popular_items():
    r = planted(seed=7)
    m = mfjax.fit(r, objective="ials", rank=4, epochs=2, progress=False)
    counts = np.bincount(r.items, minlength=r.n_items)
    popular = r.item_ids[np.argsort(-counts, kind="stable")]
    ids, scores = m.recommend("nobody", 5)
    np.testing.assert_array_equal(ids, popular[:5])
    assert (scores == 0).all()
    batch, bscores = m.recommend([r.user_ids[0], "nobody"], 5)
    np.testing.assert_array_equal(batch[1], popular[:5])
    np.testing.assert_array_equal(batch[0], m.recommend(r.user_ids[0], 5)[0])
    assert (bscores[0] > 0).all() and (bscores[1] == 0).all()
    cand = np.array([3, 7, 20])  # among given items: their popularity order
    ids, _ = m.recommend("nobody", 2, items=r.item_ids[[20, 3, 7]])
    np.testing.assert_array_equal(ids, r.item_ids[cand[np.argsort(-counts[cand], kind="stable")][:2]])


def test_bpr_fold_in_lands_in_the_right_group():
    r = planted(seed=4)
    m = mfjax.fit(r, objective="bpr", rank=8, epochs=60, learning_rate=0.05, progress=False)
    ids, _ = m.recommend_for_ratings([16, 17, 18], None, n=5)
    assert (ids >= 15).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_bpr_epoch_negatives_are_never_positives(seed):
    r = planted(seed=seed)
    from mfjax.models.implicit_als import objective as im
    from mfjax.data import interactions
    from mfjax.solvers.minibatch.epoch import host_init

    d = interactions.build_implicit_data(r.users, r.items, None, n_users=r.n_users, n_items=r.n_items)
    opt = make_optimizer("adam", 0.01, None)
    p = host_init(0, r.n_users, r.n_items, 4, 1, 0.1, 0.0)
    import jax

    *_, neg = bpr_epoch(opt, r.n_items, 64, 0.01, 0.01, p, opt.init(p), jax.random.key(seed), 0,
                        d.user_rows, d.user_items, d.user_indptr)
    neg = np.asarray(neg)
    n = len(d.user_rows)
    perm = None  # the epoch permutes positives; check each sampled (user, negative) pair
    seen = set(zip(r.users.tolist(), r.items.tolist()))
    # Recover the users of the epoch's triples: same permutation key as inside bpr_epoch.
    kperm, _ = jax.random.split(jax.random.fold_in(jax.random.key(seed), 0))
    perm = np.asarray(jax.random.permutation(kperm, n))
    users = np.asarray(d.user_rows)[perm]
    assert (neg[n:] == -1).all() and (neg[:n] >= 0).all()
    assert not any((u, j) in seen for u, j in zip(users.tolist(), neg[:n].tolist()))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("objective,solver,extra", [("ials", "als", dict(cg_steps=0)),
                                                    ("ials", "als", dict(cg_steps=2)),
                                                    ("ials", "optax", {}), ("bpr", "optax", {})])
def test_implicit_fit_on_a_one_device_mesh_matches_no_mesh(objective, solver, extra):
    # Several devices: tests/test_distributed.py (a subprocess with 4 CPU devices).
    from mfjax import distributed

    kw = dict(objective=objective, solver=solver, rank=4, epochs=2, progress=False, **extra)
    ref = mfjax.fit(planted(), **kw)
    m = mfjax.fit(planted(), mesh=distributed.make_mesh(1, 1), **kw)
    for a, b in zip(m.params, ref.params):
        np.testing.assert_allclose(a, b, atol=2e-5)
    assert m.config["mesh"].startswith("mesh data=1")


def test_ials_on_a_one_device_mesh_keeps_the_cpu_kernel():
    # mesh="auto" on one device must not lose the kernel (several devices: the worker).
    from mfjax import distributed
    from mfjax.kernels import ials as implicit_kernel

    if not implicit_kernel.usable_for("float32"):
        pytest.skip("the iALS kernel cannot run here")
    m = mfjax.fit(planted(), objective="ials", epochs=1, mesh=distributed.make_mesh(1, 1),
                  progress=False)
    assert m.spec.kernel is True and m.config["als_method"] == "cg"


# ---------------------------------------------------------------- splits and metrics


def stamped(n_users=12, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    u, i, t = [], [], []
    for a in range(n_users):
        its = rng.choice(n_items, a % 6 + 1, replace=False)
        u += [a] * len(its)
        i += its.tolist()
        t += rng.permutation(len(its)).tolist()
    return mfjax.Ratings.from_arrays(np.array(u), np.array(i), np.ones(len(u)), np.array(t))


@pytest.mark.parametrize("k", [1, 2])
def test_leave_k_out_holds_out_each_users_latest(k):
    r = stamped()
    train, test = split.leave_k_out(r, k=k, seed=0)
    assert len(train) + len(test) == len(r)
    c = np.bincount(r.users, minlength=r.n_users)
    ct = np.bincount(test.users, minlength=r.n_users)
    assert (ct == np.where(c > k, k, 0)).all()
    for u in np.unique(test.users):
        assert test.timestamps[test.users == u].min() >= train.timestamps[train.users == u].max()


@pytest.mark.parametrize("frac", [0.5, 0.8])
def test_users_split_contract(frac):
    r = stamped(n_users=40)
    train, fold, test = split.users(r, 10, fold_in_fraction=frac, seed=0)
    assert len(train) + len(fold) + len(test) == len(r)
    held = set(fold.users.tolist())
    assert len(held) == 10 and held.isdisjoint(train.users.tolist())
    assert set(test.users.tolist()) <= held
    c = np.bincount(r.users, minlength=r.n_users)
    cf = np.bincount(fold.users, minlength=r.n_users)
    for u in held:
        assert cf[u] == min(max(int(np.floor(frac * c[u] + 0.5)), 1), max(c[u] - 1, 1))


def test_recall_divides_by_min_k_and_relevant_hand_computed():
    """One user, items 0..4 scored 5,4,3,2,1 (no training items); relevant {1, 4} and {0..3}."""
    import jax.numpy as jnp

    from mfjax.objectives.explicit import Params

    P = jnp.ones((2, 1))
    Q = jnp.asarray([[5.0], [4.0], [3.0], [2.0], [1.0]])
    params = Params(P, Q, jnp.zeros(2), jnp.zeros(5), jnp.zeros(()))
    m = mfjax.Model(params, np.array([0, 1]), np.arange(5), (1.0, 1.0), {}, [],
                    np.array([0, 0, 0]), np.array([], np.int64))
    train = mfjax.Ratings.from_arrays(np.array([0, 1]), np.array([0, 0]), np.ones(2))
    test = mfjax.Ratings.from_arrays(np.array([0, 0, 1, 1, 1, 1]), np.array([1, 4, 0, 1, 2, 3]),
                                     np.ones(6))
    # train only covers the excluded seen list, which is empty in the model's CSR; use the
    # model's own ID space with nothing excluded:
    empty = mfjax.Ratings.from_arrays(np.array([9]), np.array([9]), np.ones(1))
    out = evaluate_ranking(m, empty, test, k=2, threshold=None)
    # user 0: top-2 = {0, 1}, hits 1: recall 1/min(2, 2) = 1/2
    # user 1: top-2 = {0, 1}, hits 2: recall 2/min(2, 4) = 1 (h/|Rel| would be 1/2)
    assert out["recall@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert "truncated_recall@2" not in out
    assert out["precision@2"] == pytest.approx((0.5 + 1.0) / 2)


@pytest.mark.timeout(300)
def test_evaluate_fold_in_on_held_out_users():
    r = planted(n_per=30, seed=5)
    train, fold, test = split.users(r, 8, seed=0)
    m = mfjax.fit(train, objective="ials", rank=6, epochs=5, progress=False)
    out = evaluate_fold_in(m, fold, test, k=5)
    assert out["n_users"] == len(np.unique(test.users)) and out["n_unknown_users"] == 0
    assert out["precision@5"] > 0.3  # the groups are recovered from the fold-in part alone


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bad", [[3, 20], [3, -1], [3.0, 4.0]])
def test_bpr_fold_in_refuses_out_of_range_items(bad):
    """An item index outside [0, n_items) must raise, not be clamped by the jitted gathers
    (item 20 of 20 used to give exactly item 19's answer)."""
    from mfjax.models.bpr.fold_in import bpr_fold_in

    rng = np.random.default_rng(0)
    Q, b = rng.standard_normal((20, 4)).astype(np.float32), np.zeros(20, np.float32)
    with pytest.raises(ValueError, match="bpr_fold_in: items"):
        bpr_fold_in(Q, b, bad, reg=0.01)
    assert np.isfinite(np.asarray(bpr_fold_in(Q, b, [3, 19], reg=0.01))).all()


def _complete_block(n_users, n_items, extra_users=()):
    """Every user of range(n_users) has every item; ``extra_users`` (user, items) added."""
    u = np.repeat(np.arange(n_users), n_items)
    i = np.tile(np.arange(n_items), n_users)
    for user, items in extra_users:
        u, i = np.concatenate([u, np.full(len(items), user)]), np.concatenate([i, items])
    return mfjax.Ratings.from_arrays(u, i, np.ones(len(u)))


def test_bpr_refuses_when_every_active_user_has_every_item():
    # user 5 is in the ID table but has no rows left: it used to count as "has negatives"
    r = _complete_block(6, 4).subset(np.arange(5 * 4))
    assert r.n_users == 6 and len(np.unique(r.users)) == 5
    with pytest.raises(ValueError, match="no negatives"):
        mfjax.fit(r, objective="bpr", rank=2, epochs=2, progress=False)


@pytest.mark.timeout(300)
def test_bpr_users_with_every_item_get_weight_zero():
    r = _complete_block(3, 6, extra_users=[(3, [0, 1]), (4, [2, 3, 4])])
    m = mfjax.fit(r, objective="bpr", rank=2, epochs=3, batch_size=8, progress=False)
    assert np.isfinite(np.asarray(m.params.user_factors)).all()
    assert all(h["loss"] > 0 for h in m.history)
    from mfjax.models.bpr.solver import require_negatives

    require_negatives(r.users, r.items, r.n_items)  # some users have negatives: fine
