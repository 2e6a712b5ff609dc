"""The fast training paths equal their references: the blocked route, member axes
(ensembles), the sorted grid layout and the radix-sorted seen index. Float64 (conftest)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.objectives.explicit import Params
from mfjax.solvers.minibatch.gradients import blocked_value_and_grad, make_blocks
from mfjax.training import config as C
from mfjax.solvers.minibatch import ensemble as E
from mfjax.solvers.minibatch import layout as L
from test_core import make_problem

REG = dict(reg=0.3, bias_reg=0.05)


def members_problem(n_users, n_items, rank, n, members, seed=0):
    """Member-structured params (factors [n, K, k], biases [n, K], μ [K]) and ratings."""
    ps = []
    for j in range(members):
        p, *data = make_problem(n_users, n_items, rank, n, seed=seed)
        key = jax.random.PRNGKey(100 + j)
        p = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(key, x.shape, x.dtype), p)
        ps.append(p)
        u, i, r = data
    stacked = Params(*(jnp.stack(xs, axis=min(1, xs[0].ndim)) if xs[0].ndim else jnp.stack(xs)
                       for xs in zip(*ps)))
    return ps, stacked, u, i, r


@pytest.mark.parametrize("max_block", [1, 2, 32])
def test_make_blocks_partitions_positions_by_key(max_block):
    keys = np.random.default_rng(0).integers(0, 9, 200)
    keys[keys == 4] = 5  # a key with no positions
    blocks = make_blocks(keys, max_block)
    seen = np.concatenate([pos for _, pos in blocks])
    assert np.array_equal(np.sort(seen), np.arange(len(keys)))  # each position once
    sizes = []
    for bkeys, pos in blocks:
        s = len(pos) // len(bkeys)
        sizes.append(s)
        assert s & (s - 1) == 0 and s <= max_block
        assert np.all(keys[pos].reshape(-1, s) == bkeys[:, None])
        assert np.all(np.diff(bkeys) >= 0)
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError, match="power of two"):
        make_blocks(keys, 3)


@pytest.mark.parametrize("by", ["users", "items"])
@pytest.mark.parametrize("max_block", [1, 4, 32])
# The 400-rating shape (~40 s of compile over its six cases) runs in the slow run.
@pytest.mark.parametrize("shape", [(6, 9, 4, 50), (3, 3, 1, 1),
                                   pytest.param((20, 7, 5, 400), marks=pytest.mark.slow)])
def test_blocked_route_equals_loss_and_manual_grad(by, max_block, shape):
    p, u, i, r = make_problem(*shape)
    w = np.random.default_rng(1).uniform(0, 1, len(u))
    keys, others = (u, i) if by == "users" else (i, u)
    value, grads = blocked_value_and_grad(p, make_blocks(keys, max_block), others, r, weights=w,
                                          sort_by=by, **REG)
    np.testing.assert_allclose(value, mfjax.loss(p, u, i, r, weights=w, **REG), rtol=1e-12)
    want = mfjax.manual_grad(p, u, i, r, weights=w, **REG)
    for name, a, b in zip(Params._fields, grads, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("sort_by", ["users", "items"])
def test_sort_by_is_only_a_promise(sort_by):
    p, u, i, r = make_problem(7, 6, 3, 60)
    order = np.argsort(u if sort_by == "users" else i, kind="stable")
    u, i, r = u[order], i[order], r[order]
    for f in (mfjax.loss, mfjax.manual_grad):
        a = f(p, u, i, r, sort_by=sort_by, **REG)
        b = f(p, u, i, r, **REG)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(x, y, rtol=1e-12)
    with pytest.raises(ValueError, match="sort_by"):
        mfjax.loss(p, u, i, r, sort_by="ratings")
    # the keyword's old name still works
    np.testing.assert_array_equal(mfjax.loss(p, u, i, r, sorted_by=sort_by, **REG),
                                  mfjax.loss(p, u, i, r, sort_by=sort_by, **REG))


@pytest.mark.slow
def test_member_axis_is_a_sum_of_independent_models():
    ps, stacked, u, i, r = members_problem(6, 8, 3, 70, members=3)
    w = np.random.default_rng(2).uniform(0, 1, len(u))
    kw = dict(weights=w, **REG)
    want_loss = sum(mfjax.loss(p, u, i, r, **kw) for p in ps)
    want = [mfjax.manual_grad(p, u, i, r, **kw) for p in ps]
    np.testing.assert_allclose(mfjax.loss(stacked, u, i, r, **kw), want_loss, rtol=1e-12)
    routes = {
        "autodiff": jax.grad(mfjax.loss)(stacked, u, i, r, **kw),
        "manual": mfjax.manual_grad(stacked, u, i, r, **kw),
        "blocked": blocked_value_and_grad(stacked, make_blocks(u, 4), i, r, **kw)[1],
        "blocked_items": blocked_value_and_grad(stacked, make_blocks(i, 2), u, r, sort_by="items", **kw)[1],
    }
    for route, g in routes.items():
        for j in range(3):
            for name, a, b in zip(Params._fields, g, want[j]):
                got = a[j] if name == "global_bias" else a[:, j]
                np.testing.assert_allclose(got, b, rtol=1e-10, atol=1e-12, err_msg=f"{route} {name}")


def test_combined_members_predict_their_average():
    ps, stacked, u, i, _ = members_problem(5, 4, 2, 30, members=4)
    combined = E.combine(stacked)
    assert combined.user_factors.shape == (5, 8) and combined.global_bias.shape == ()
    avg = np.mean([mfjax.predict(p, u, i) for p in ps], axis=0)
    np.testing.assert_allclose(mfjax.predict(combined, u, i), avg, rtol=1e-12)
    one = E.split_members(ps[0], 1)
    assert one is ps[0] and E.combine(one) is one


def test_n_members():
    assert [E.n_members(r, "auto") for r in (128, 64, 100, 8, 4, 24)] == [16, 8, 10, 1, 1, 3]
    assert E.n_members(64, 4) == 4
    for bad in (3, 0, "two"):
        with pytest.raises(ValueError, match="ensemble"):
            E.n_members(64, bad)


@pytest.mark.parametrize("sort_by", ["users", "items"])
def test_layout_holds_every_rating_once_and_batches_come_out_sorted(sort_by):
    r, _ = mfjax.datasets.synthetic(80, 30, 2_000, seed=3)
    n_batches = 7
    keys, others = (r.users, r.items) if sort_by == "users" else (r.items, r.users)
    order = L.radix_order(keys, others)
    grid = L.build_grid(r, sort_by, n_batches, order)
    gk, go, gr = (np.asarray(x) for x in (grid.keys, grid.others, grid.ratings))
    real = ~np.isnan(gr)
    assert real.sum() == len(r)
    slot_keys = np.repeat(gk, n_batches)
    got = sorted(zip(slot_keys[real], go[real], gr[real]))
    assert got == sorted(zip(keys, others, r.ratings.astype(np.float32)))
    assert np.all(np.diff(gk) >= 0)  # rows (= batch positions) in key order
    # A key's padding is less than one row, but for the last key's rows that
    # round the row count up to a multiple of ROW_QUANTUM.
    assert len(gk) % L.ROW_QUANTUM == 0
    rows = np.bincount(gk, minlength=keys.max() + 1)
    pad = rows * n_batches - np.bincount(keys, minlength=len(rows))
    assert np.all(pad[:-1] < n_batches) and pad[-1] < n_batches * L.ROW_QUANTUM


def test_seen_index_from_the_radix_order():
    for shape in ((300, 200), (70_000, 70_000)):
        r, _ = mfjax.datasets.synthetic(*shape, 5_000, seed=1)
        order = np.lexsort((r.items, r.users))  # the reference: NumPy's sort
        counts = np.bincount(r.users, minlength=r.n_users)
        want = (np.concatenate([[0], np.cumsum(counts)]), r.items[order])
        got = L.seen_index(r)
        assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])


@pytest.fixture(scope="module")
def planted():
    ratings, _ = mfjax.datasets.synthetic(300, 200, 30_000, rank=4, noise=0.5, seed=1)
    return mfjax.split.holdout(ratings, 0.2, seed=0)


FAST = dict(solver="optax", rank=8, reg=0.02, bias_reg=0.0, epochs=3, batch_size=1024, progress=False)


@pytest.mark.parametrize("sort_by,ensemble", [("users", 1), ("items", 2)])
@pytest.mark.slow
def test_every_route_gives_the_same_trajectory(planted, sort_by, ensemble):
    train, _ = planted
    kw = dict(FAST, sort_by=sort_by, ensemble=ensemble)
    runs = {g: mfjax.fit(train, gradient=g, **kw) for g in ("blocked", "autodiff", "manual")}
    ref = runs["manual"]
    assert ref.config["ensemble"] == ensemble and ref.config["sort_by"] == sort_by
    for g, m in runs.items():
        assert m.config["gradient"] == g
        for x, y in zip(m.params, ref.params):
            np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5, err_msg=g)
        for a, b in zip(m.history, ref.history):
            assert math.isclose(a["loss"], b["loss"], rel_tol=1e-5)


def test_auto_route_and_ensemble_reach_the_noise_floor(planted):
    train, test = planted
    m = mfjax.fit(train, **dict(FAST, rank=16, epochs=12, ensemble="auto"), validation=test)
    assert m.config["gradient"] == "autodiff" and m.config["ensemble"] == 2  # small data, rank 16
    assert m.params.user_factors.shape == (train.n_users, 16)
    assert mfjax.evaluate(m, test)["rmse"] <= 1.15 * 0.5


def test_auto_batch_size_takes_larger_steps_on_very_large_data():
    assert mfjax.auto_batch_size(20_000_000, 138_493, 26_744) == 1 << 20
    assert mfjax.auto_batch_size(100_000_000, 480_189, 17_770) == 1 << 21   # 48 steps, not 96
    assert mfjax.auto_batch_size(10 ** 10, 10, 10) == 1 << 22


def test_gpu_compiler_options_only_on_an_affected_gpu():
    assert C.scatter_add_is_slow((0, 10, 2)) and C.scatter_add_is_slow((0, 11, 0))
    assert not C.scatter_add_is_slow((0, 11, 1)) and not C.scatter_add_is_slow((0, 10, 1))
    assert C.compiler_options("gpu", (0, 10, 2)) == {"xla_gpu_ftz": True}
    assert C.compiler_options("gpu", (0, 11, 1)) is None
    assert C.compiler_options("cpu", (0, 10, 2)) is None
    assert C.detect_hardware(want_fused=False).compiler_options == C.compiler_options(
        jax.default_backend())
