"""Logistic MF objective: the hand-written gradient against autodiff and finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from mfjax.models.logistic_mf.objective import LogisticParams, loss, manual_grad


def _problem(seed=0, n_users=5, n_items=7, k=3):
    rng = np.random.default_rng(seed)
    params = LogisticParams(*(jnp.asarray(rng.normal(size=s)) for s in
                              ((n_users, k), (n_items, k), (n_users,), (n_items,))))
    conf = jnp.asarray(np.where(rng.random((n_users, n_items)) < 0.3, 2.0 * rng.random((n_users, n_items)), 0.0))
    return params, conf


@pytest.mark.parametrize("reg,bias_reg", [(0.0, 0.0), (0.3, 0.1)])
def test_manual_grad_matches_autodiff(reg, bias_reg):
    params, conf = _problem()
    auto = jax.grad(loss)(params, conf, reg=reg, bias_reg=bias_reg)
    manual = manual_grad(params, conf, reg=reg, bias_reg=bias_reg)
    for a, m in zip(auto, manual):
        np.testing.assert_allclose(m, a, rtol=1e-12, atol=1e-12)


def test_manual_grad_matches_finite_differences():
    params, conf = _problem(1)
    g = manual_grad(params, conf, reg=0.2, bias_reg=0.05)
    f = lambda p: float(loss(p, conf, reg=0.2, bias_reg=0.05))
    eps = 1e-6
    for leaf in range(4):
        flat = np.asarray(params[leaf]).ravel()
        for j in range(flat.size):
            up, dn = flat.copy(), flat.copy()
            up[j] += eps
            dn[j] -= eps
            mk = lambda v: params._replace(**{params._fields[leaf]: jnp.asarray(v.reshape(params[leaf].shape))})
            fd = (f(mk(up)) - f(mk(dn))) / (2 * eps)
            assert abs(fd - float(np.asarray(g[leaf]).ravel()[j])) < 1e-6


def test_check_grads_orders_1_2():
    params, conf = _problem(2)
    check_grads(lambda p: loss(p, conf, reg=0.2, bias_reg=0.05), (params,), order=2,
                modes=("fwd", "rev"))


def test_spec_fields_are_checked():
    from mfjax.models.logistic_mf.spec import LogisticMF

    assert LogisticMF().rank == 32
    with pytest.raises(ValueError, match="LogisticMF: rank"):
        LogisticMF(rank=0)
    with pytest.raises(ValueError, match="LogisticMF: alpha"):
        LogisticMF(alpha=0.0)
    with pytest.raises(TypeError, match="LogisticMF: epochs"):
        LogisticMF(epochs=2.5)


def test_train_decreases_loss_and_ranks_planted_positives():
    from mfjax.models.logistic_mf.solver import train
    from mfjax.models.logistic_mf.spec import LogisticMF
    from mfjax.models.logistic_mf.objective import score

    rng = np.random.default_rng(0)
    n_users, n_items = 30, 20
    liked = (rng.random((n_users, 1)) < 0.5) == (np.arange(n_items) < 10)[None, :]
    liked &= rng.random((n_users, n_items)) < 0.7
    rows, cols = np.nonzero(liked)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_users))])
    spec = LogisticMF(rank=4, epochs=150, reg=0.1, bias_reg=0.1, alpha=4.0, init_scale=0.1)
    params, losses = train(indptr, cols, np.ones(len(cols)), n_users, n_items, spec, seed=0)
    losses = np.asarray(losses)
    assert losses[-1] < 0.7 * losses[0] and np.all(np.diff(losses[-50:]) < 0)
    s = np.asarray(score(params))
    assert s[liked].mean() > s[~liked].mean() + 1.0


def test_fold_in_returns_the_row_minimiser():
    from mfjax.models.logistic_mf.fold_in import fold_in_rows

    params, conf = _problem(3)
    p, b = fold_in_rows(params.item_factors, params.item_bias, conf, reg=0.5, bias_reg=0.5)
    folded = params._replace(user_factors=p, user_bias=b)
    g = manual_grad(folded, conf, reg=0.5, bias_reg=0.5)
    np.testing.assert_allclose(g.user_factors, 0.0, atol=1e-9)
    np.testing.assert_allclose(g.user_bias, 0.0, atol=1e-9)
