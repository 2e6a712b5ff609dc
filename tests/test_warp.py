"""WARP for BPR (#28 item 3): the rank weight, the vectorized first-violator sampler, the
hand-written gradient (against jax.grad, finite differences and check_grads) and the
spec's refusals."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfjax
from mfjax.evaluation.gradcheck import check_gradient_terms
from mfjax.models.bpr.losses import OBJECTIVE
from mfjax.models.bpr.warp import rank_weight, warp_loss, warp_manual_grad, warp_negatives
from mfjax.models.bpr.objective import sample_negatives
from mfjax.objectives.explicit import Params, init_params


def point(n_users=7, n_items=9, k=3, scale=0.9, seed=0):
    p = init_params(jax.random.PRNGKey(seed), n_users, n_items, k, init_scale=scale,
                    dtype=jnp.float64)
    return p._replace(item_bias=jnp.asarray(np.random.default_rng(seed).normal(size=n_items)))


def triples(n_users=7, n_items=9, n=40, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n_users, n), rng.integers(0, n_items, n),
            rng.integers(0, n_items, n))


def test_rank_weight_is_log_floor_of_items_over_tries():
    got = np.asarray(rank_weight(jnp.array([1, 2, 3, 10, 999]), 100))
    want = np.log(np.maximum(1, np.floor(99 / np.array([1, 2, 3, 10, 999]))))
    np.testing.assert_allclose(got, want, rtol=1e-6)


# jax.grad, finite differences and check_grads (about 10 s of compile on the shared CPU):
# the slow run; the default run compares the hand-written gradient with jax.grad below.
@pytest.mark.slow
def test_warp_gradient_is_verified_on_both_sides_of_the_margin():
    p = point()
    users, pos, neg = triples()
    x = (np.sum(np.asarray(p.user_factors)[users] * (np.asarray(p.item_factors)[pos]
                                                     - np.asarray(p.item_factors)[neg]), 1)
         + np.asarray(p.item_bias)[pos] - np.asarray(p.item_bias)[neg])
    assert (x > 1.05).sum() >= 3 and (x < 0.95).sum() >= 3  # the hinge is on and off
    hyper = {"reg": 0.07, "bias_reg": 0.03, "loss": "warp"}
    report = check_gradient_terms(OBJECTIVE, p, users, pos, np.zeros(len(users)), neg, hyper,
                                  order=1)
    assert report.ok, str(report)
    assert report.manual_vs_numerical is not None and report.dtype == "float64"


def test_warp_manual_grad_equals_jax_grad_with_weights():
    p = point(seed=2)
    users, pos, neg = triples(seed=3)
    r = jnp.asarray(np.random.default_rng(4).uniform(0.5, 3.0, len(users)))
    w = jnp.asarray(np.random.default_rng(5).integers(0, 2, len(users)).astype(float))
    kw = dict(reg=0.02, bias_reg=None, weights=w)
    x = (np.sum(np.asarray(p.user_factors)[users] * (np.asarray(p.item_factors)[pos]
                                                     - np.asarray(p.item_factors)[neg]), 1)
         + np.asarray(p.item_bias)[pos] - np.asarray(p.item_bias)[neg])
    assert (x > 1.05).any() and (x < 0.95).any()  # the hinge is on and off
    auto = jax.jit(jax.grad(lambda q: warp_loss(q, users, pos, neg, r, **kw)))(p)
    hand = jax.jit(lambda q: warp_manual_grad(q, users, pos, neg, r, **kw))(p)
    for a, b in zip(auto, hand):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_verify_gradients_takes_a_warp_spec():
    rng = np.random.default_rng(0)
    r = mfjax.Ratings.from_arrays(rng.integers(0, 8, 50), rng.integers(0, 12, 50), np.ones(50))
    report = mfjax.verify_gradients(mfjax.BPR(rank=3, loss="warp", reg=0.05), r, order=1,
                                    seed=1)
    assert report.ok, str(report)


def test_warp_negatives_pick_the_first_violator_of_each_block():
    n_users, n_items, M = 6, 40, 5
    p = point(n_users, n_items, k=4, scale=1.0, seed=3)
    rng = np.random.default_rng(0)
    indptr = np.zeros(n_users + 1, np.int64)
    seen = []
    for u in range(n_users):
        s = np.sort(rng.choice(n_items, 4, replace=False))
        seen.append(s)
        indptr[u + 1] = indptr[u] + len(s)
    seen_items = jnp.asarray(np.concatenate(seen), jnp.int32)
    users = jnp.asarray(np.repeat(np.arange(n_users), 3), jnp.int32)
    pos = jnp.asarray([seen[u][t] for u in range(n_users) for t in range(3)], jnp.int32)
    key = jax.random.PRNGKey(7)
    both = jax.jit(lambda key, p, users, pos, indptr, seen_items: (
        warp_negatives(key, p, users, pos, indptr, seen_items, n_items, M),
        sample_negatives(key, jnp.repeat(users, M), indptr, seen_items, n_items)[0]))
    (neg, r, found), block = jax.device_get(both(key, p, users, pos, jnp.asarray(indptr),
                                                 seen_items))
    block = np.asarray(block).reshape(-1, M)
    users, pos = np.asarray(users), np.asarray(pos)
    P, Q, b = (np.asarray(a) for a in (p.user_factors, p.item_factors, p.item_bias))
    assert found.any() and not found.all()
    for t in range(len(users)):
        u, i = int(users[t]), int(pos[t])
        assert not np.isin(block[t], seen[u]).any()  # negatives are unseen
        s_i = P[u] @ Q[i] + b[i]
        viol = [n for n, j in enumerate(block[t]) if P[u] @ Q[j] + b[j] > s_i - 1]
        assert bool(found[t]) == bool(viol)
        if viol:
            assert int(neg[t]) == block[t][viol[0]]
            assert float(r[t]) == pytest.approx(np.log(np.floor((n_items - 1) / (viol[0] + 1))))


@pytest.mark.parametrize("kw, error, match", [
    (dict(max_sampled=5), ValueError, "max_sampled=5 applies to loss='warp'"),
    (dict(loss="hinge"), ValueError, "loss must be one of"),
    (dict(loss="warp", max_sampled=0), ValueError, "max_sampled must be an integer"),
    (dict(loss="warp", max_sampled=2.5), TypeError, "max_sampled must be an integer"),
    (dict(identity_features="no"), TypeError, "identity_features must be True or False"),
])
def test_spec_refuses_bad_fields(kw, error, match):
    with pytest.raises(error, match=match):
        mfjax.BPR(**kw)


def test_warp_resolves_max_sampled_and_round_trips():
    spec = mfjax.BPR(loss="warp", max_sampled=4)
    assert mfjax.models.spec_from_dict(spec.to_dict()) == spec
    assert mfjax.BPR().loss == "bpr" and mfjax.BPR().max_sampled is None
