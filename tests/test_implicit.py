"""iALS and BPR math core (mfjax.models.implicit_als.objective, mfjax.models.bpr.objective), in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import mfjax
from mfjax.models.implicit_als import objective as im
from mfjax.data import interactions
from mfjax.models.implicit_als import layout as ials_layout
from mfjax.plumbing import bucket
from mfjax.models.implicit_als import solve as ia
from mfjax.models.implicit_als import steps as st
from mfjax.models.bpr import objective as bpr
from mfjax.objectives.explicit import Params
from mfjax.evaluation.gradcheck import numerical_grad

# Jitted once per shape (hyperparameters are traced), so the many small cases
# don't pay eager op-by-op dispatch.
LOSS = jax.jit(im.loss)
GRAD = jax.jit(jax.grad(im.loss))
MGRAD = jax.jit(im.manual_grad)
BPR_LOSS = jax.jit(bpr.bpr_loss)
BPR_GRAD = jax.jit(jax.grad(bpr.bpr_loss))
BPR_MGRAD = jax.jit(bpr.bpr_manual_grad)


def make_problem(n_users, n_items, rank, n, *, seed=0, skip_user=None, skip_item=None,
                 bias=False):
    """Random factors (and optionally item biases) plus distinct interactions with values."""
    rng = np.random.default_rng(seed)
    p = mfjax.init_params(jax.random.PRNGKey(seed), n_users, n_items, rank, init_scale=0.5,
                          dtype=jnp.float64)
    if bias:
        p = p._replace(item_bias=jnp.asarray(rng.normal(size=n_items)))
    us = [u for u in range(n_users) if u != skip_user]
    its = [i for i in range(n_items) if i != skip_item]
    pairs = np.array([(u, i) for u in us for i in its])
    pick = pairs[rng.choice(len(pairs), size=min(n, len(pairs)), replace=False)]
    values = rng.integers(1, 6, size=len(pick)).astype(np.float64)
    data = interactions.build_implicit_data(pick[:, 0], pick[:, 1], values, n_users=n_users,
                                  n_items=n_items, dtype=np.float64)
    return p, data


def triples(data):
    return data.user_rows, data.user_items, data.user_values


def dense_loss(p, u, i, v, *, alpha, unobserved_weight, reg, nu, weights=None):
    """Brute force over the full n_users × n_items score matrix."""
    P, Q = np.asarray(p.user_factors), np.asarray(p.item_factors)
    u, i, v = np.asarray(u), np.asarray(i), np.asarray(v)
    w = np.ones(len(u)) if weights is None else np.asarray(weights)
    S = P @ Q.T
    obs = np.sum(w * (1 + alpha * v) * (1 - S[u, i]) ** 2)
    allpairs = unobserved_weight * np.sum(S ** 2)
    cu = np.bincount(u, weights=w, minlength=P.shape[0])
    ci = np.bincount(i, weights=w, minlength=Q.shape[0])
    ru = (cu + unobserved_weight * Q.shape[0]) ** nu
    ri = (ci + unobserved_weight * P.shape[0]) ** nu
    return obs + allpairs + reg * (np.sum(ru * np.sum(P ** 2, 1)) + np.sum(ri * np.sum(Q ** 2, 1)))


SHAPES = {
    "plain": dict(n_users=6, n_items=9, rank=4, n=25),
    "rank1": dict(n_users=5, n_items=4, rank=1, n=8),
    "empty_rows": dict(n_users=6, n_items=5, rank=3, n=14, skip_user=2, skip_item=4),
}
HPARAMS = {
    "classic": dict(alpha=2.0, unobserved_weight=1.0, reg=0.1, nu=0.0),
    "rendle": dict(alpha=0.5, unobserved_weight=0.3, reg=0.05, nu=1.0),
    "half_nu": dict(alpha=3.0, unobserved_weight=0.05, reg=0.2, nu=0.5),
}


@pytest.mark.parametrize("hp", HPARAMS.values(), ids=HPARAMS.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_loss_matches_dense_brute_force(shape, hp):
    p, data = make_problem(**shape)
    got = LOSS(p, *triples(data), **hp)
    np.testing.assert_allclose(got, dense_loss(p, *triples(data), **hp), rtol=1e-12)


def test_loss_weights_scale_terms_and_counts():
    p, data = make_problem(6, 7, 3, 20)
    u, i, v = triples(data)
    w = np.random.default_rng(1).uniform(0, 2, size=u.shape[0])
    w[:3] = 0.0  # padding
    hp = HPARAMS["rendle"]
    np.testing.assert_allclose(LOSS(p, u, i, v, weights=jnp.asarray(w), **hp),
                               dense_loss(p, u, i, v, weights=w, **hp), rtol=1e-12)
    g = MGRAD(p, u, i, v, weights=jnp.asarray(w), **hp)
    g_auto = GRAD(p, u, i, v, weights=jnp.asarray(w), **hp)
    for a, b in zip(g, g_auto):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("hp", [HPARAMS["rendle"], HPARAMS["half_nu"]], ids=["rendle", "half_nu"])
def test_zero_padded_tables_with_real_sizes_change_nothing(hp):
    # A mesh pads the tables with zero rows; n_users/n_items keep λ̃ on the real sizes.
    p, data = make_problem(6, 7, 3, 20)
    u, i, v = triples(data)
    pad = lambda x, n: jnp.pad(x, ((0, n), (0, 0)))  # noqa: E731
    padded = Params(pad(p.user_factors, 2), pad(p.item_factors, 3), jnp.zeros(8), jnp.zeros(10),
                    p.global_bias)
    sizes = dict(n_users=6, n_items=7)
    np.testing.assert_allclose(LOSS(padded, u, i, v, **sizes, **hp), LOSS(p, u, i, v, **hp),
                               rtol=1e-12)
    g, g_pad = MGRAD(p, u, i, v, **hp), MGRAD(padded, u, i, v, **sizes, **hp)
    np.testing.assert_allclose(g_pad.user_factors[:6], g.user_factors, rtol=1e-12)
    np.testing.assert_allclose(g_pad.item_factors[:7], g.item_factors, rtol=1e-12)
    assert not np.any(np.asarray(g_pad.user_factors[6:]))
    assert not np.any(np.asarray(g_pad.item_factors[7:]))
    # Without the sizes λ̃ counts the padding rows: a different objective.
    assert abs(float(LOSS(padded, u, i, v, **hp)) - float(LOSS(p, u, i, v, **hp))) > 1e-6


@pytest.mark.parametrize("hp", HPARAMS.values(), ids=HPARAMS.keys())
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_manual_grad_matches_autodiff_and_finite_differences(shape, hp):
    p, data = make_problem(**shape)
    u, i, v = triples(data)
    g_man = MGRAD(p, u, i, v, **hp)
    g_auto = GRAD(p, u, i, v, **hp)
    g_num = numerical_grad(lambda q: im.loss(q, u, i, v, **hp), p)
    for name, m, a, n in zip(Params._fields, g_man, g_auto, g_num):
        scale = max(float(np.abs(a).max()), 1e-12)
        np.testing.assert_allclose(m, a, rtol=0, atol=1e-10 * scale, err_msg=name)
        np.testing.assert_allclose(m, n, rtol=0, atol=1e-6 * scale, err_msg=name)
    for b in g_man[2:]:
        assert not np.any(np.asarray(b))


@pytest.mark.parametrize("hp,order", [pytest.param(HPARAMS["rendle"], 2, marks=pytest.mark.slow),
                                      (HPARAMS["half_nu"], 1)],  # order 2: ~10 s of compile
                         ids=["rendle_order2", "half_nu_order1"])
def test_check_grads_on_loss(hp, order):
    p, data = make_problem(5, 6, 3, 15)
    u, i, v = triples(data)
    check_grads(jax.jit(lambda q: im.loss(q, u, i, v, **hp)), (p,), order=order, modes=("fwd", "rev"))


# --------------------------------------------------------------------------- ALS


def grad_norm(p, data, hp, field):
    g = GRAD(p, *triples(data), **hp)
    return float(np.abs(getattr(g, field)).max())


SOLVES = {
    "cholesky": dict(method="cholesky"),
    "cholesky_tiny_chunks": dict(method="cholesky", chunk_rows=2, chunk_nnz=3, block=2),
    "cg_tiny_chunks": dict(method="cg", cg_steps=30, chunk_rows=2, chunk_nnz=3),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("solve", SOLVES.values(), ids=SOLVES.keys())
@pytest.mark.parametrize("hp", HPARAMS.values(), ids=HPARAMS.keys())
@pytest.mark.parametrize("shape", [SHAPES["plain"], SHAPES["empty_rows"]], ids=["plain", "empty_rows"])
def test_half_steps_are_exact_minimisers(shape, hp, solve):
    p, data = make_problem(**shape)
    g0 = grad_norm(p, data, hp, "user_factors")
    P = ia.solve_users(p.item_factors, data, init=p.user_factors, **hp, **solve)
    p = p._replace(user_factors=P)
    assert grad_norm(p, data, hp, "user_factors") < 1e-10 * max(g0, 1.0)
    Q = ia.solve_items(p.user_factors, data, init=p.item_factors, **hp, **solve)
    p = p._replace(item_factors=Q)
    assert grad_norm(p, data, hp, "item_factors") < 1e-10 * max(g0, 1.0)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_cholesky_chunking_does_not_change_the_solution():
    p, data = make_problem(13, 11, 4, 70, skip_user=5)
    hp = HPARAMS["rendle"]
    ref = ia.solve_users(p.item_factors, data, **hp, chunk_rows=1000, chunk_nnz=1000, block=1)
    for rows, nnz, block in [(1, 1, 1), (3, 5, 2), (4, 64, 32)]:
        got = ia.solve_users(p.item_factors, data, **hp, chunk_rows=rows, chunk_nnz=nnz,
                             block=block)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    # CG: same iterates whatever the chunking (only summation order differs).
    cg = dict(hp, method="cg", cg_steps=3, init=p.user_factors)
    ref = ia.solve_users(p.item_factors, data, **cg, chunk_rows=1000, chunk_nnz=1000)
    got = ia.solve_users(p.item_factors, data, **cg, chunk_rows=3, chunk_nnz=5)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunks", [dict(), dict(chunk_rows=2, chunk_nnz=3)], ids=["default", "tiny_chunks"])
@pytest.mark.parametrize("shape", [SHAPES["plain"], SHAPES["empty_rows"]], ids=["plain", "empty_rows"])
@pytest.mark.slow
def test_cg_half_step_matches_cg_rows_and_its_value_is_the_loss(shape, chunks):
    """half_step_cg on the padded layouts: the iterates of solve_users(method="cg") from
    the same start, padding rows 0, L = value_users + penalty_items equals loss(), and
    with k steps (exact arithmetic: the exact solve) the Cholesky solution."""
    p, data = make_problem(**shape)
    hp = HPARAMS["rendle"]
    users, items = ials_layout.shared_layouts(data, chunk_rows=chunks.get("chunk_rows", 256))
    n_pad = users.indptr.shape[0] - 1
    pad = lambda x: jnp.zeros((n_pad, x.shape[1]), x.dtype).at[:x.shape[0]].set(x)  # noqa: E731
    k = p.user_factors.shape[1]
    Qp, _, pen_q = st.half_step_cg(pad(p.user_factors), items, pad(p.item_factors), cg_steps=2,
                                   **hp, **chunks)
    Pp, value, _ = st.half_step_cg(Qp, users, pad(p.user_factors), cg_steps=2, **hp, **chunks)
    Q, P = Qp[:data.n_items], Pp[:data.n_users]
    assert not np.any(np.asarray(Qp[data.n_items:])) and not np.any(np.asarray(Pp[data.n_users:]))
    cg = dict(hp, method="cg", cg_steps=2)
    np.testing.assert_allclose(Q, ia.solve_items(p.user_factors, data, init=p.item_factors, **cg),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(P, ia.solve_users(Q, data, init=p.user_factors, **cg),
                               rtol=0, atol=1e-12)
    q = p._replace(user_factors=P, item_factors=Q)
    np.testing.assert_allclose(float(value) + float(pen_q), float(LOSS(q, *triples(data), **hp)),
                               rtol=1e-10)
    Pk, _, _ = st.half_step_cg(Qp, users, pad(p.user_factors), cg_steps=k, **hp, **chunks)
    np.testing.assert_allclose(Pk[:data.n_users], ia.solve_users(Q, data, **hp), rtol=0, atol=1e-8)


def test_bucket_rounds_up_to_few_shapes():
    assert [bucket(n) for n in (1, 7, 8, 15, 16, 17, 460256)] == [1, 7, 8, 15, 16, 18, 491520]
    assert bucket(6040, 256) == 6144 and bucket(3706, 256) == 3840
    for n in range(1, 3000, 7):
        b = bucket(n, 4)
        assert n <= b <= max(n * 1.125 + 4, 8) and b % 4 == 0


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunks", [dict(), dict(chunk_rows=2, chunk_nnz=3, block=2)],
                         ids=["default", "tiny_chunks"])
@pytest.mark.parametrize("hp", HPARAMS.values(), ids=HPARAMS.keys())
@pytest.mark.parametrize("shape", [SHAPES["plain"], SHAPES["empty_rows"]], ids=["plain", "empty_rows"])
def test_shared_half_step_is_exact_on_both_sides(shape, hp, chunks):
    """half_step_exact on the padded layouts: items then users are the exact minimisers
    (solve_items/solve_users), padding rows stay 0, L = value_users + penalty_items equals
    loss(), and both sides ran ONE executable."""
    p, data = make_problem(**shape)
    users, items = ials_layout.shared_layouts(data, chunk_rows=chunks.get("chunk_rows", 256))
    n_pad = users.indptr.shape[0] - 1
    assert items.indptr.shape == users.indptr.shape and items.cols.shape == users.cols.shape
    pad = lambda x: jnp.zeros((n_pad, x.shape[1]), x.dtype).at[:x.shape[0]].set(x)
    step = st.half_step_exact.cpu if jax.default_backend() == "cpu" else st.half_step_exact.plain
    Qp, _, pen_q = st.half_step_exact(pad(p.user_factors), items, **hp, **chunks)
    Pp, value, _ = st.half_step_exact(Qp, users, **hp, **chunks)
    # One executable: both sides lower to the very same program.
    texts = [step.lower(x, side, **hp, **chunks).as_text()
             for x, side in ((pad(p.user_factors), items), (Qp, users))]
    assert texts[0] == texts[1]
    Q, P = Qp[:data.n_items], Pp[:data.n_users]
    assert not np.any(np.asarray(Qp[data.n_items:])) and not np.any(np.asarray(Pp[data.n_users:]))
    np.testing.assert_allclose(Q, ia.solve_items(p.user_factors, data, **hp), rtol=0, atol=1e-10)
    np.testing.assert_allclose(P, ia.solve_users(Q, data, **hp), rtol=0, atol=1e-10)
    p = p._replace(user_factors=P, item_factors=Q)
    np.testing.assert_allclose(float(value) + float(pen_q), float(LOSS(p, *triples(data), **hp)),
                               rtol=1e-10)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("solve", [dict(method="cholesky"), dict(method="cg", cg_steps=2)],
                         ids=["cholesky", "cg_2_steps"])
def test_objective_never_increases_across_sweeps(solve):
    p, data = make_problem(8, 10, 3, 35, seed=3)
    hp = HPARAMS["rendle"]
    prev = float(LOSS(p, *triples(data), **hp))
    for _ in range(4):
        P = ia.solve_users(p.item_factors, data, init=p.user_factors, **hp, **solve)
        p = p._replace(user_factors=P)
        cur = float(LOSS(p, *triples(data), **hp))
        assert cur <= prev * (1 + 1e-12)
        prev = cur
        p = ia.als_sweep(p, data, **hp, **solve)  # the sweep also descends
        cur = float(LOSS(p, *triples(data), **hp))
        assert cur <= prev * (1 + 1e-12)
        prev = cur


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["cholesky", "cg"])
def test_planted_groups_never_cross_in_top_n(method):
    rng = np.random.default_rng(0)
    n_per, items_per = 12, 10
    users, items = [], []
    for g in range(2):
        for u in range(g * n_per, (g + 1) * n_per):
            its = rng.choice(items_per, size=5, replace=False) + g * items_per
            users += [u] * len(its)
            items += list(its)
    data = interactions.build_implicit_data(users, items, n_users=2 * n_per, n_items=2 * items_per,
                                  dtype=np.float64)
    p = mfjax.init_params(jax.random.PRNGKey(1), 2 * n_per, 2 * items_per, 4, init_scale=0.1,
                          dtype=jnp.float64)
    hp = dict(alpha=5.0, unobserved_weight=0.1, reg=0.05, nu=0.0)
    for _ in range(5):
        p = ia.als_sweep(p, data, **hp, method=method, cg_steps=4)
    scores = np.asarray(p.user_factors @ p.item_factors.T)
    top = np.argsort(-scores, axis=1)[:, :5]
    group_u = np.arange(2 * n_per)[:, None] // n_per
    assert np.all(top // items_per == group_u)
    for f in (p.user_bias, p.item_bias, p.global_bias):
        assert not np.any(np.asarray(f))


def test_build_implicit_data_merges_duplicates_and_sorts():
    d = interactions.build_implicit_data([2, 0, 2, 1, 0], [1, 3, 1, 0, 0], [1.0, 2.0, 3.0, 4.0, 5.0],
                               n_users=4, n_items=4, dtype=np.float64)
    np.testing.assert_array_equal(d.user_indptr, [0, 2, 3, 4, 4])
    np.testing.assert_array_equal(d.user_rows, [0, 0, 1, 2])
    np.testing.assert_array_equal(d.user_items, [0, 3, 0, 1])
    np.testing.assert_array_equal(d.user_values, [5.0, 2.0, 4.0, 4.0])
    np.testing.assert_array_equal(d.item_indptr, [0, 2, 3, 3, 4])
    np.testing.assert_array_equal(d.item_rows, [0, 0, 1, 3])
    np.testing.assert_array_equal(d.item_users, [0, 1, 2, 0])
    np.testing.assert_array_equal(d.item_values, [5.0, 4.0, 4.0, 2.0])
    assert (d.n_users, d.n_items) == (4, 4)
    with pytest.raises(ValueError):
        interactions.build_implicit_data([0], [4], n_users=1, n_items=4)


# --------------------------------------------------------------------------- BPR


def bpr_problem(seed=0):
    p, data = make_problem(6, 8, 3, 20, seed=seed, bias=True)
    rng = np.random.default_rng(seed)
    n = 30
    u = rng.integers(0, 6, n).astype(np.int32)
    i = rng.integers(0, 8, n).astype(np.int32)
    j = rng.integers(0, 8, n).astype(np.int32)
    j[0] = i[0]  # a degenerate triple still has the right gradient
    return p, jnp.asarray(u), jnp.asarray(i), jnp.asarray(j)


def numpy_bpr_loss(p, u, i, j, reg, bias_reg):
    P, Q, b = (np.asarray(x) for x in (p.user_factors, p.item_factors, p.item_bias))
    x = np.sum(P[u] * (Q[i] - Q[j]), 1) + b[i] - b[j]
    return np.sum(np.log1p(np.exp(-x)) + 0.5 * reg * np.sum(P[u] ** 2 + Q[i] ** 2 + Q[j] ** 2, 1)
                  + 0.5 * bias_reg * (b[i] ** 2 + b[j] ** 2))


@pytest.mark.parametrize("reg,bias_reg", [(0.0, None), (0.1, None), (0.1, 0.02)])
def test_bpr_manual_grad_matches_autodiff(reg, bias_reg):
    p, u, i, j = bpr_problem()
    np.testing.assert_allclose(BPR_LOSS(p, u, i, j, reg=reg, bias_reg=bias_reg),
                               numpy_bpr_loss(p, u, i, j, reg, reg if bias_reg is None else bias_reg),
                               rtol=1e-12)
    w = jnp.asarray(np.random.default_rng(2).uniform(0, 1, u.shape[0]))
    for weights in (None, w):
        kw = dict(reg=reg, bias_reg=bias_reg, weights=weights)
        g_man = BPR_MGRAD(p, u, i, j, **kw)
        g_auto = BPR_GRAD(p, u, i, j, **kw)
        for name, m, a in zip(Params._fields, g_man, g_auto):
            scale = max(float(np.abs(a).max()), 1e-12)
            np.testing.assert_allclose(m, a, rtol=0, atol=1e-10 * scale, err_msg=name)
        assert not np.any(np.asarray(g_man.user_bias)) and not np.any(np.asarray(g_man.global_bias))


def test_bpr_check_grads():
    p, u, i, j = bpr_problem(1)
    check_grads(jax.jit(lambda q: bpr.bpr_loss(q, u, i, j, reg=0.1, bias_reg=0.05)), (p,), order=1,
                modes=("fwd", "rev"))


def seen_lists(n_items, sizes, seed=0):
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u, m in enumerate(sizes):
        its = rng.choice(n_items, size=m, replace=False)
        users += [u] * m
        items += list(its)
    return interactions.build_implicit_data(users, items, n_users=len(sizes), n_items=n_items,
                                  dtype=np.float64)


@pytest.mark.parametrize("n_items", [1, 2, 7, 64])
def test_sampler_never_returns_a_positive(n_items):
    sizes = sorted({0, 1, n_items // 2, n_items - 1, n_items})
    data = seen_lists(n_items, sizes)
    users = jnp.asarray(np.repeat(np.arange(len(sizes)), 2000), jnp.int32)
    sample = jax.jit(bpr.sample_negatives, static_argnames="n_items")
    neg, valid = sample(jax.random.PRNGKey(0), users, data.user_indptr, data.user_items,
                        n_items=n_items)
    neg, valid, users = np.asarray(neg), np.asarray(valid), np.asarray(users)
    indptr, seen = np.asarray(data.user_indptr), np.asarray(data.user_items)
    for u, m in enumerate(sizes):
        mine = users == u
        if m == n_items:  # interacted with everything: no triple
            assert not valid[mine].any() and np.all(neg[mine] == -1)
            continue
        assert valid[mine].all()
        got = neg[mine]
        assert got.min() >= 0 and got.max() < n_items
        assert not np.isin(got, seen[indptr[u]:indptr[u + 1]]).any()
        # every unseen item is reachable
        assert len(np.unique(got)) == min(n_items - m, 2000)


def test_sampler_is_uniform_over_unseen_items():
    n_items, draws = 20, 40_000
    data = seen_lists(n_items, [6, 0], seed=4)
    users = jnp.zeros((draws,), jnp.int32)
    neg, _ = bpr.sample_negatives(jax.random.PRNGKey(7), users, data.user_indptr,
                                  data.user_items, n_items)
    unseen = np.setdiff1d(np.arange(n_items), np.asarray(data.user_items)[:6])
    counts = np.bincount(np.asarray(neg), minlength=n_items)[unseen]
    assert counts.sum() == draws
    expected = draws / len(unseen)
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 40.0  # 13 degrees of freedom: P(chi2 > 40) ~ 1e-4


def test_sample_triples_are_valid():
    data = seen_lists(9, [3, 9, 5, 1])
    u, i, j, w = jax.jit(bpr.sample_triples, static_argnums=2)(jax.random.PRNGKey(3), data, 500)
    u, i, j, w = map(np.asarray, (u, i, j, w))
    indptr, seen = np.asarray(data.user_indptr), np.asarray(data.user_items)
    for a, b, c, wt in zip(u, i, j, w):
        mine = seen[indptr[a]:indptr[a + 1]]
        assert b in mine
        assert (wt == 0) == (a == 1)
        if wt:
            assert c not in mine


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_float32_sweeps_stay_finite_and_descend():
    """The library default dtype: blocked Cholesky and CG in float32 on a larger, skewed problem."""
    rng = np.random.default_rng(5)
    n_users, n_items, n = 80, 60, 900
    u = rng.zipf(1.5, n) % n_users
    i = rng.zipf(1.3, n) % n_items
    data = interactions.build_implicit_data(u, i, rng.integers(1, 5, n), n_users=n_users, n_items=n_items,
                                  dtype=np.float32)
    hp = HPARAMS["rendle"]
    for method in ("cholesky", "cg"):
        p = mfjax.init_params(jax.random.PRNGKey(0), n_users, n_items, 8, dtype=jnp.float32)
        prev = float(LOSS(p, *triples(data), **hp))
        for _ in range(3):
            p = ia.als_sweep(p, data, **hp, method=method, chunk_rows=16, chunk_nnz=64, block=8)
            assert p.user_factors.dtype == jnp.float32
            cur = float(LOSS(p, *triples(data), **hp))
            assert np.isfinite(cur) and cur <= prev * (1 + 1e-5)
            prev = cur
