"""LogisticMF's own tests: the objective's hand-written gradient (float64) against autodiff,
central differences and check_grads; the chunked layout; the half-step against its
explicitly built system; the sweep's reported loss; the Newton fold-in; the spec's checks.
The shared behaviour (fit, recommend, save/load, partial fits, CV, search) is in
tests/test_contract.py."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import mfjax
from mfjax.models.logistic_mf import fold_in, solver
from mfjax.models.logistic_mf.objective import OBJECTIVE, logits, loss, manual_grad
from mfjax.objectives.explicit import Params


def _problem(seed=0, n_users=5, n_items=7, k=3, repeats=True):
    """A float64 point (μ ≠ 0, so its gradient is checked too) and interactions; with
    ``repeats`` one (user, item) pair appears twice (its confidences add)."""
    rng = np.random.default_rng(seed)
    params = Params(*(jnp.asarray(rng.normal(size=s)) for s in
                      ((n_users, k), (n_items, k), (n_users,), (n_items,), ())))
    mask = rng.random((n_users, n_items)) < 0.4
    users, items = (jnp.asarray(x) for x in np.nonzero(mask))
    if repeats:
        users, items = jnp.concatenate([users, users[:1]]), jnp.concatenate([items, items[:1]])
    conf = jnp.asarray(rng.choice([0.5, 1.0, 2.0, 4.0], size=users.shape[0]))
    return params, users, items, conf


@pytest.mark.parametrize("reg,bias_reg", [(0.0, 0.0), (0.3, 0.1)])
@pytest.mark.parametrize("repeats", [False, True])
def test_manual_grad_matches_autodiff(reg, bias_reg, repeats):
    params, users, items, conf = _problem(repeats=repeats)
    auto = jax.grad(loss)(params, users, items, conf, reg=reg, bias_reg=bias_reg)
    manual = manual_grad(params, users, items, conf, reg=reg, bias_reg=bias_reg)
    for name, a, m in zip(Params._fields, auto, manual):
        np.testing.assert_allclose(m, a, rtol=1e-12, atol=1e-12, err_msg=name)


def test_manual_grad_matches_central_differences():
    params, users, items, conf = _problem(1)
    kw = dict(reg=0.2, bias_reg=0.05)
    g = manual_grad(params, users, items, conf, **kw)
    f = lambda p: float(loss(p, users, items, conf, **kw))
    eps = 1e-6
    for name in Params._fields:
        flat = np.asarray(getattr(params, name), float).ravel()
        shape = np.shape(getattr(params, name))
        for j in range(flat.size):
            up, dn = flat.copy(), flat.copy()
            up[j] += eps
            dn[j] -= eps
            at = lambda v: params._replace(**{name: jnp.asarray(v.reshape(shape))})
            fd = (f(at(up)) - f(at(dn))) / (2 * eps)
            assert abs(fd - float(np.asarray(getattr(g, name)).ravel()[j])) < 1e-6, (name, j)


@pytest.mark.slow  # 27 s of order-2 compile; order 1 runs by default in tests/test_contract.py
def test_check_grads_orders_1_2():
    params, users, items, conf = _problem(2)
    check_grads(lambda p: loss(p, users, items, conf, reg=0.2, bias_reg=0.05), (params,),
                order=2, modes=("fwd", "rev"))


def test_loss_is_the_dense_likelihood():
    """L equals Σ_ui (1 + c_ui) softplus(x_ui) − c_ui x_ui with a dense confidence matrix."""
    params, users, items, conf = _problem(3)
    C = np.zeros((5, 7))
    np.add.at(C, (np.asarray(users), np.asarray(items)), np.asarray(conf))
    x = np.asarray(logits(params))
    want = np.sum((1 + C) * np.logaddexp(0, x) - C * x)
    np.testing.assert_allclose(float(loss(params, users, items, conf, reg=0.0, bias_reg=0.0)),
                               want, rtol=1e-12)


def test_objective_record_names_its_hyperparameters():
    """verify_gradients reads these from the spec (run for every model in test_contract)."""
    assert OBJECTIVE.hyper == ("alpha", "reg", "bias_reg") and OBJECTIVE.ranking
    assert OBJECTIVE.row_sides == ("users", "items") and OBJECTIVE.values == "strengths"


@pytest.mark.parametrize("width", [1, 3, 32])
def test_chunks_hold_every_interaction_once(width):
    rng = np.random.default_rng(0)
    counts = np.array([0, 1, 5, 3, 0, 8])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    cols = rng.integers(0, 9, indptr[-1])
    vals = rng.random(indptr[-1]).astype(np.float32)
    c = solver.chunks(indptr, cols, vals, width)
    row, ok = np.asarray(c.row), np.asarray(c.valid)
    assert c.cols.shape == (int(sum(-(-counts // width))), width)
    got = sorted(zip(np.repeat(row, width)[ok.ravel()], np.asarray(c.cols).ravel()[ok.ravel()],
                     np.asarray(c.vals).ravel()[ok.ravel()]))
    want = sorted(zip(np.repeat(np.arange(6), counts), cols, vals))
    assert got == want
    assert np.all(np.asarray(c.vals)[~ok] == 0) and np.all(np.diff(row) >= 0)


def _chunked(users, items, conf, n):
    order = np.lexsort((np.asarray(items), np.asarray(users)))
    u, i, v = (np.asarray(x)[order] for x in (users, items, conf))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n))])
    return solver.chunks(indptr, i, v, width=2)


def test_half_step_solves_its_system_exactly_with_enough_cg_steps():
    """cg_steps = k + 1 gives z − H̃⁻¹ g, H̃ and g built densely here (module docstring)."""
    params, users, items, conf = _problem(4, repeats=False)
    reg, bias_reg, alpha = 0.7, 0.3, 1.0
    side = _chunked(users, items, conf, 5)
    P, b, _ = solver.half_step(params.user_factors, params.user_bias, params.item_factors,
                               params.item_bias, params.global_bias, side, alpha, reg, bias_reg,
                               cg_steps=4, want_loss=False)
    F = np.c_[np.asarray(params.item_factors), np.ones(7)]
    C = np.zeros((5, 7))
    C[np.asarray(users), np.asarray(items)] = np.asarray(conf)
    x = np.asarray(logits(params))
    s = 1 / (1 + np.exp(-x))
    lam = np.diag([reg] * 3 + [bias_reg])
    for u in range(5):
        z = np.r_[np.asarray(params.user_factors)[u], float(params.user_bias[u])]
        g = F.T @ (s[u] - C[u] * (1 - s[u])) + lam @ z
        w = np.where(C[u] > 0, (1 + C[u]) * s[u] * (1 - s[u]), 0.25)
        H = (F * w[:, None]).T @ F + lam
        want = z - np.linalg.solve(H, g)
        np.testing.assert_allclose(np.r_[np.asarray(P)[u], float(b[u])], want, rtol=1e-9,
                                   atol=1e-10)


@pytest.mark.slow
def test_sweep_reports_the_loss_between_its_half_steps_and_descends():
    params, users, items, conf = _problem(5, n_users=9, n_items=6, k=2, repeats=False)
    params = params._replace(global_bias=jnp.zeros(()))
    us = _chunked(users, items, conf, 9)
    its = _chunked(items, users, conf, 6)
    kw = dict(reg=0.5, bias_reg=0.5)
    before = float(loss(params, users, items, conf, **kw))
    new, value = solver.sweep(jax.tree.map(jnp.array, params), us, its, 1.0, 0.5, 0.5,
                              cg_steps=3)
    q, bi, _ = solver.half_step(params.item_factors, params.item_bias, params.user_factors,
                                params.user_bias, params.global_bias, its, 1.0, 0.5, 0.5,
                                cg_steps=3, want_loss=False)
    mid = params._replace(item_factors=q, item_bias=bi)
    np.testing.assert_allclose(float(value), float(loss(mid, users, items, conf, **kw)),
                               rtol=1e-9)
    assert float(loss(new, users, items, conf, **kw)) < float(value) < before


def test_fit_ranks_unseen_in_group_items_above_the_rest():
    """Two user groups, each liking half the items: a fit scores a user's unseen items of
    its own group above the other group's, and its loss falls."""
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    group = rng.random(n_users) < 0.5
    in_group = group[:, None] == (np.arange(n_items) < 15)[None, :]
    liked = in_group & (rng.random((n_users, n_items)) < 0.6)
    u, i = np.nonzero(liked)
    r = mfjax.Ratings(u, i, np.ones(len(u)), None, np.arange(n_users), np.arange(n_items))
    model = mfjax.fit(r, mfjax.LogisticMF(rank=4, reg=1.0, bias_reg=1.0, alpha=4.0, epochs=10,
                                          init_scale=0.1), progress=False)
    losses = [h["loss"] for h in model.history]
    assert losses[-1] < 0.8 * losses[0] and np.all(np.diff(losses) < 0)
    x = np.asarray(logits(model.params))
    assert x[in_group & ~liked].mean() > x[~in_group].mean() + 1.0


@pytest.mark.parametrize("n_rows", [3, fold_in.ROWS + 5])
def test_row_solve_returns_each_rows_minimiser(n_rows):
    """Zero gradient of each row's objective, across a block boundary of the batching."""
    rng = np.random.default_rng(n_rows)
    m, k = 11, 3
    Q, bq = rng.normal(size=(m, k)), rng.normal(size=m)
    rows = np.repeat(np.arange(n_rows), 4)
    cols = np.concatenate([rng.choice(m, 4, replace=False) for _ in range(n_rows)])
    vals = rng.choice([1.0, 2.0], size=rows.size)
    hp = {"alpha": 3.0, "reg": 0.5, "bias_reg": 0.4}
    f, b = fold_in.row_solve(Q, bq, 0.0, rows, cols, vals, n_rows, hp)
    assert f.shape == (n_rows, k) and b.shape == (n_rows,)
    C = np.zeros((n_rows, m))
    np.add.at(C, (rows, cols), hp["alpha"] * vals)
    x = f @ Q.T + b[:, None] + bq[None, :]
    d = 1 / (1 + np.exp(-x)) - C / (1 + np.exp(x))
    np.testing.assert_allclose(d @ Q + hp["reg"] * f, 0.0, atol=1e-8)
    np.testing.assert_allclose(d.sum(1) + hp["bias_reg"] * b, 0.0, atol=1e-8)


def test_spec_fields_are_checked():
    assert mfjax.LogisticMF().rank == 32
    assert mfjax.models.REGISTRY["LogisticMF"].spec is mfjax.LogisticMF
    with pytest.raises(ValueError, match="LogisticMF: rank"):
        mfjax.LogisticMF(rank=0)
    with pytest.raises(ValueError, match="LogisticMF: alpha"):
        mfjax.LogisticMF(alpha=0.0)
    with pytest.raises(ValueError, match="LogisticMF: reg"):
        mfjax.LogisticMF(reg=0.0)
    with pytest.raises(TypeError, match="LogisticMF: epochs"):
        mfjax.LogisticMF(epochs=2.5)
    with pytest.raises((TypeError, ValueError), match="LogisticMF: cg_steps"):
        mfjax.LogisticMF(cg_steps=0)


def test_fit_refuses_negative_values():
    r = mfjax.Ratings(np.array([0, 1]), np.array([0, 1]), np.array([1.0, -1.0]), None,
                      np.arange(2), np.arange(2))
    with pytest.raises(ValueError, match="finite and >= 0"):
        mfjax.fit(r, mfjax.LogisticMF(rank=2, epochs=1), progress=False)
