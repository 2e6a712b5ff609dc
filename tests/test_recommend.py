"""Top-N recommendation, similar items/users and fold-in (mfjax.serving.recommend + Model wrappers)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mfjax
from mfjax.serving import recommend as rec
from mfjax.serving import rows as serving_rows


@pytest.fixture(scope="module")
def trained():
    ratings, _ = mfjax.datasets.synthetic(120, 80, 4000, rank=4, noise=0.3, seed=2)
    model = mfjax.fit(ratings, solver="optax", rank=4, reg=0.05, epochs=8, batch_size=512, progress=False)
    return model, ratings


def _seen(model, u):
    return set(model.seen_items[model.seen_indptr[u]:model.seen_indptr[u + 1]].tolist())


# ------------------------------------------------------------------ planted structure

def test_planted_blocks_top1_is_the_withheld_in_block_item():
    # Two user groups x two item groups: in-block ratings 5, off-block 1, so every
    # item has the same mean and only <p_u, q_i> can tell the blocks apart (a sign
    # error or a missing dot term would fail). Each user misses one in-block item
    # (the one withheld) and half of the off-block items; the withheld item must
    # come first among everything the user has not rated.
    n_users, n_items = 40, 20
    rng = np.random.default_rng(0)
    u_group, i_group = np.arange(n_users) % 2, np.arange(n_items) % 2
    withheld = {}
    rows = []
    for u in range(n_users):
        own = np.flatnonzero(i_group == u_group[u])
        other = np.flatnonzero(i_group != u_group[u])
        withheld[u] = int(own[u % len(own)])
        for i in own:
            if i != withheld[u]:
                rows.append((u, i, 5.0))
        for i in rng.choice(other, len(other) // 2, replace=False):
            rows.append((u, i, 1.0))
    u, i, r = map(np.array, zip(*rows))
    train = mfjax.Ratings.from_arrays(u, i, r)
    model = mfjax.fit(train, solver="optax", rank=2, reg=0.01, bias_reg=0.01, epochs=60, batch_size=256,
                      learning_rate=0.05, progress=False)
    ids, scores = model.recommend(list(range(n_users)), n=1)
    assert ids.shape == (n_users, 1)
    np.testing.assert_array_equal(ids[:, 0], [withheld[u] for u in range(n_users)])
    # Without exclusion the top of the list is user 0's whole block, rated items included.
    own0 = set(np.flatnonzero(i_group == u_group[0]).tolist())
    ids_all, _ = model.recommend(0, n=len(own0), exclude_seen=False)
    assert set(ids_all.tolist()) == own0 and own0 & _seen(model, 0)


# ------------------------------------------------------------------ recommend

def test_scores_are_predict_formula_and_sorted(trained):
    model, _ = trained
    ids, scores = model.recommend(7, n=model.n_items, exclude_seen=False)
    assert len(ids) == model.n_items and set(ids.tolist()) == set(model.item_ids.tolist())
    np.testing.assert_allclose(scores, model.predict(np.full(len(ids), 7), ids, clip=False),
                               rtol=1e-5)
    assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("user", [0, 5, 33])
def test_seen_items_are_excluded_and_the_rest_are_all_ranked(trained, user):
    model, _ = trained
    seen = _seen(model, model.index_users(user))
    assert seen, "fixture users should have training ratings"
    ids, scores = model.recommend(user, n=model.n_items)
    assert set(ids.tolist()) == set(range(model.n_items)) - seen
    assert len(ids) == model.n_items - len(seen)  # 1-D list is shorter than n
    assert np.all(np.isfinite(scores))


def test_batch_pads_users_with_fewer_candidates(trained):
    model, _ = trained
    users = [0, 1]
    n_seen = [len(_seen(model, u)) for u in users]
    ids, scores = model.recommend(users, n=model.n_items)
    assert ids.shape == scores.shape == (2, model.n_items)
    for row, k in zip(range(2), n_seen):
        tail = slice(model.n_items - k, None)
        assert np.all(np.isneginf(scores[row, tail])) and np.all(ids[row, tail] == -1)
        assert np.all(np.isfinite(scores[row, :model.n_items - k]))


def test_items_restricts_the_candidates(trained):
    model, _ = trained
    cand = [3, 17, 42, 55, 60, 79, 3]  # a repeat is ignored
    ids, scores = model.recommend(11, n=10, items=cand, exclude_seen=False)
    assert sorted(ids.tolist()) == sorted(set(cand))
    want = model.predict(np.full(6, 11), np.array(sorted(set(cand))), clip=False)
    np.testing.assert_allclose(np.sort(scores)[::-1], np.sort(want)[::-1], rtol=1e-5)
    # with exclusion, the seen candidates drop out
    ids2, _ = model.recommend(11, n=10, items=cand)
    assert set(ids2.tolist()) == set(cand) - _seen(model, 11)
    with pytest.raises(KeyError, match="12345"):
        model.recommend(11, items=[3, 12345])


@pytest.mark.parametrize("batch_size", [1, 3, 16, 50, None])
def test_chunked_and_unchunked_agree(trained, batch_size):
    model, _ = trained
    users = np.arange(model.n_users)
    ref_ids, ref_scores = model.recommend(users, n=7, batch_size=model.n_users)
    ids, scores = model.recommend(users, n=7, batch_size=batch_size)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)
    # and each row equals the single-user call
    for u in (0, 57, 119):
        one_ids, one_scores = model.recommend(u, n=7)
        np.testing.assert_array_equal(one_ids, ids[u])


def test_unknown_user_gets_best_items_by_item_bias(trained):
    model, _ = trained
    p = model.params
    bias = np.asarray(p.item_bias)
    ids, scores = model.recommend("nobody", n=5)
    np.testing.assert_array_equal(ids, np.argsort(-bias, kind="stable")[:5])
    np.testing.assert_allclose(scores, float(p.global_bias) + np.sort(bias)[::-1][:5], rtol=1e-6)
    # mixed with known users in a batch
    batch_ids, _ = model.recommend(["nobody", 4], n=5)
    np.testing.assert_array_equal(batch_ids[0], ids)
    np.testing.assert_array_equal(batch_ids[1], model.recommend(4, n=5)[0])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(n=0), ValueError, "n must be a positive integer"),
    (dict(n=2.5), ValueError, "n must be a positive integer"),
    (dict(items=[]), ValueError, "non-empty"),
    (dict(items=["x"]), KeyError, "'x'"),
])
def test_recommend_bad_arguments(trained, kwargs, error, match):
    model, _ = trained
    with pytest.raises(error, match=match):
        model.recommend(0, **kwargs)


def test_model_without_seen_index_needs_exclude_seen_false(trained):
    model, _ = trained
    bare = mfjax.Model(model.params, model.user_ids, model.item_ids, model.rating_range)
    with pytest.raises(ValueError, match="exclude_seen=False"):
        bare.recommend(0)
    ids, _ = bare.recommend(0, n=3, exclude_seen=False)
    np.testing.assert_array_equal(ids, model.recommend(0, n=3, exclude_seen=False)[0])


def test_recommend_survives_save_and_load(trained, tmp_path):
    model, _ = trained
    model.save(tmp_path / "m.npz")
    loaded = mfjax.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.recommend([0, 9], n=5)[0], model.recommend([0, 9], n=5)[0])


def test_string_ids_padding_uses_none():
    params = mfjax.init_params(jax.random.PRNGKey(0), 2, 3, 2)
    users, items = np.array(["a", "b"], object), np.array(["x", "y", "z"], object)
    model = mfjax.Model(params, users, items, (1.0, 5.0), {}, [], np.array([0, 3, 3]),
                        np.array([0, 1, 2], np.int32))
    ids, scores = model.recommend(["a", "b"], n=2)
    assert ids[0].tolist() == [None, None] and np.all(np.isneginf(scores[0]))
    assert set(ids[1].tolist()) <= {"x", "y", "z"}
    assert model.recommend("a", n=2)[0].size == 0


# ------------------------------------------------------------------ similar items / users

@pytest.mark.parametrize("what", ["items", "users"])
def test_similar_is_cosine_on_factors_excluding_self(trained, what):
    model, _ = trained
    f = np.asarray(model.params.item_factors if what == "items" else model.params.user_factors,
                   np.float64)
    query = 5
    ids, sims = getattr(model, f"similar_{what}")(query, n=6)
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    cos = unit @ unit[query]
    cos[query] = -np.inf
    np.testing.assert_array_equal(ids, np.argsort(-cos, kind="stable")[:6])
    np.testing.assert_allclose(sims, cos[ids], rtol=1e-5)
    assert query not in ids.tolist()
    # a list of queries gives one row each
    many, _ = getattr(model, f"similar_{what}")([query, 0], n=6)
    np.testing.assert_array_equal(many[0], ids)


def test_similar_unknown_raises_key_error(trained):
    model, _ = trained
    with pytest.raises(KeyError, match="999"):
        model.similar_items(999)
    with pytest.raises(KeyError, match="999"):
        model.similar_users(999)


@pytest.mark.parametrize("method", ["similar_items", "similar_users"])
def test_similar_unknown_suggests_nothing_it_does_not_accept(trained, method):
    """index_items' advice (missing='ignore') is no argument of similar_items."""
    model, _ = trained
    with pytest.raises(KeyError) as info:
        getattr(model, method)(999)
    text = str(info.value)
    assert "missing=" not in text and f"{method}: raw_" in text and "999" in text, text


def test_similar_zero_vector_has_cosine_zero():
    f = jnp.array([[1.0, 0.0], [0.0, 0.0], [0.6, 0.8]])
    idx, sims = rec.similar(f, jnp.array([0]), n=2)
    np.testing.assert_array_equal(idx[0], [2, 1])
    np.testing.assert_allclose(sims[0], [0.6, 0.0], atol=1e-12)


# ------------------------------------------------------------------ fold-in

def _random_params(seed, n_users=5, n_items=30, k=4):
    key = jax.random.PRNGKey(seed)
    p = mfjax.init_params(key, n_users, n_items, k, init_scale=0.5, global_bias=3.5,
                          dtype=jnp.float64)
    return p._replace(item_bias=0.3 * jax.random.normal(jax.random.PRNGKey(seed + 1), (n_items,),
                                                        jnp.float64))


@pytest.mark.parametrize("reg,bias_reg", [(0.1, 0.1), (0.5, 0.02), (0.0, 0.3)])
def test_fold_in_is_the_minimizer_of_the_loss_restricted_to_the_user(reg, bias_reg):
    # The loss is strictly convex in (p_u, b_u) here, so the solution is exact iff
    # the gradient of mfjax.loss w.r.t. that user's row vanishes. A penalty missing
    # its per-rating factor n_u (λ instead of n_u·λ) leaves a gradient of order λ.
    params = _random_params(0)
    items = jnp.array([0, 3, 4, 7, 9, 9, 12, 20, 21, 29])  # item 9 twice: counts twice
    r = jnp.linspace(1.0, 5.0, items.shape[0])
    p, b = rec.fold_in(params.item_factors, params.item_bias, params.global_bias, items, r,
                       reg=reg, bias_reg=bias_reg)
    params = params._replace(user_factors=params.user_factors.at[2].set(p),
                             user_bias=params.user_bias.at[2].set(b))
    users = jnp.full(items.shape, 2)
    g = jax.grad(mfjax.loss)(params, users, items, r, reg=reg, bias_reg=bias_reg)
    np.testing.assert_allclose(g.user_factors[2], 0.0, atol=1e-10)
    np.testing.assert_allclose(g.user_bias[2], 0.0, atol=1e-10)
    # ... and it is not trivially zero: the ratings moved the user away from 0.
    assert float(jnp.linalg.norm(p)) > 0.05


def test_fold_in_matches_gradient_descent_on_that_users_row():
    # The same answer by plain iterative minimization of mfjax.loss over one row.
    params = _random_params(3)
    items = jnp.arange(0, 30, 3)
    r = jnp.asarray(np.random.default_rng(0).integers(1, 6, items.shape[0]), jnp.float64)
    reg, bias_reg = 0.2, 0.05
    users = jnp.zeros_like(items)

    def row_loss(x):
        p = params._replace(user_factors=params.user_factors.at[0].set(x[:-1]),
                            user_bias=params.user_bias.at[0].set(x[-1]))
        return mfjax.loss(p, users, items, r, reg=reg, bias_reg=bias_reg)

    opt = optax.lbfgs()
    vg = optax.value_and_grad_from_state(row_loss)

    def step(_, carry):
        x, state = carry
        value, grad = vg(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=row_loss)
        return optax.apply_updates(x, updates), state

    x0 = jnp.zeros(params.rank + 1)
    x, _ = jax.jit(lambda x: jax.lax.fori_loop(0, 100, step, (x, opt.init(x))))(x0)
    p, b = rec.fold_in(params.item_factors, params.item_bias, params.global_bias, items, r,
                       reg=reg, bias_reg=bias_reg)
    np.testing.assert_allclose(p, x[:-1], atol=1e-7)
    np.testing.assert_allclose(b, x[-1], atol=1e-7)


def test_fold_in_recovers_a_trained_users_vector():
    # Train (nearly) to convergence with full-batch Adam and a decaying rate. At a
    # stationary point of the full objective each user's row solves its own ridge
    # problem given the items, so folding a user in from their training ratings,
    # with the same reg, must give back the trained row.
    ratings, _ = mfjax.datasets.synthetic(60, 40, 1500, rank=3, noise=0.3, seed=4,
                                          popularity="uniform")
    steps = 1500
    model = mfjax.fit(ratings, solver="optax", rank=3, reg=0.1, bias_reg=0.05, batch_size=len(ratings),
                      epochs=steps, schedule=optax.exponential_decay(0.05, steps, 1e-3),
                      progress=False)
    for u in (0, 17, 42):
        sel = ratings.users == u
        p, b = model.fold_in(ratings.item_ids[ratings.items[sel]], ratings.ratings[sel])
        trained_p = np.asarray(model.params.user_factors[u])
        np.testing.assert_allclose(p, trained_p, atol=1e-4)  # float32 training reaches ~1e-6
        assert abs(b - float(model.params.user_bias[u])) < 1e-4
        # Solving with the penalty not scaled by n_u (reg / n_u) is visibly different.
        p_wrong, _ = model.fold_in(ratings.item_ids[ratings.items[sel]], ratings.ratings[sel],
                                   reg=0.1 / sel.sum(), bias_reg=0.05 / sel.sum())
        assert np.max(np.abs(p_wrong - trained_p)) > 0.05  # vs 1e-4 for the right penalty


def test_fold_in_defaults_to_the_models_regularization(trained):
    model, ratings = trained
    items, r = [1, 2, 5, 8], [5.0, 3.0, 4.0, 1.0]
    p, b = model.fold_in(items, r)
    p2, b2 = model.fold_in(items, r, reg=model.config["reg"], bias_reg=model.config["bias_reg"])
    np.testing.assert_array_equal(p, p2)
    p3, _ = model.fold_in(items, r, reg=10.0)
    assert not np.allclose(p, p3)
    assert p.shape == (model.params.rank,) and isinstance(b, float)


def test_fold_in_unknown_items_raise_or_are_ignored(trained):
    model, _ = trained
    with pytest.raises(KeyError, match="777.*888"):
        model.fold_in([1, 777, 2, 888], [5.0, 4.0, 3.0, 2.0])
    p, b = model.fold_in([1, 777, 2], [5.0, 4.0, 3.0], missing="ignore")
    p2, b2 = model.fold_in([1, 2], [5.0, 3.0])
    np.testing.assert_allclose(p, p2, rtol=1e-6)
    assert b == pytest.approx(b2)


def test_fold_in_of_nothing_is_the_unknown_user(trained):
    model, _ = trained
    p, b = model.fold_in([], [])
    assert np.all(p == 0) and b == 0
    ids, scores = model.recommend_for_ratings([], [], n=5)
    want_ids, want_scores = model.recommend("nobody", n=5)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)


@pytest.mark.parametrize("args,error,match", [
    (([1, 2], [5.0]), ValueError, "equal length"),
    (([1, 2], [5.0, float("nan")]), ValueError, r"ratings\[1\]"),
    (([1], ["good"]), ValueError, "ratings"),
])
def test_fold_in_bad_input(trained, args, error, match):
    model, _ = trained
    with pytest.raises(error, match=match):
        model.fold_in(*args)


def test_fold_in_singular_system_is_reported(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="singular"):
        model.fold_in([1], [4.0], reg=0.0, bias_reg=0.0)


def test_recommend_for_ratings_excludes_rated_items_and_ranks_by_folded_in_scores(trained):
    model, _ = trained
    items, r = [1, 2, 5, 8, 13], [5.0, 5.0, 1.0, 2.0, 4.0]
    ids, scores = model.recommend_for_ratings(items, r, n=model.n_items)
    assert set(ids.tolist()) == set(range(model.n_items)) - set(items)
    p, b = model.fold_in(items, r)
    P = model.params
    want = (float(P.global_bias) + b + np.asarray(P.item_bias) + np.asarray(P.item_factors) @ p)
    np.testing.assert_allclose(scores, want[ids], rtol=1e-5)
    assert np.all(np.diff(scores) <= 0)
    top, _ = model.recommend_for_ratings(items, r, n=3, items=[0, 1, 3, 4])
    assert set(top.tolist()) <= {0, 3, 4} and len(top) == 3


# ------------------------------------------------------------------ pure pieces

def test_csr_rows_selects_and_handles_unknown():
    indptr, items = np.array([0, 2, 2, 5]), np.array([7, 8, 1, 2, 3])
    ptr, sel = serving_rows.csr_rows(indptr, items, np.array([2, -1, 0, 1, 2]))
    np.testing.assert_array_equal(ptr, [0, 3, 3, 5, 5, 8])
    np.testing.assert_array_equal(sel, [1, 2, 3, 7, 8, 1, 2, 3])


def test_top_n_drops_padding_pairs_and_masks_the_rest():
    uf = jnp.zeros((2, 1))
    ub = jnp.zeros(2)
    q = jnp.zeros((4, 1))
    bi = jnp.array([4.0, 3.0, 2.0, 1.0])
    rows = jnp.array([0, 1, 2, 2])  # row 2 == b: padding, dropped (not clamped onto row 1)
    cols = jnp.array([0, 1, 0, 2])
    idx, val = rec.top_n(uf, ub, q, bi, jnp.asarray(0.0), rows, cols, n=3)
    np.testing.assert_array_equal(idx, [[1, 2, 3], [0, 2, 3]])
    np.testing.assert_allclose(val, [[3, 2, 1], [4, 2, 1]])


@pytest.mark.parametrize("n,block", [(1, 4), (5, 4), (10, 2), (3, 64), (25, 1)])
def test_select_top_is_exact_including_ties_and_minus_inf(n, block):
    rng = np.random.default_rng(n)
    s = np.round(rng.standard_normal((6, 301)), 1)  # many ties
    s[0, :295] = -np.inf  # fewer finite entries than some n
    s[1, ::2] = -np.inf
    idx, val = rec.select_top(jnp.asarray(s), n, block=block)
    # Reference: sort by (score descending, index ascending).
    ref = np.stack([np.lexsort((np.arange(301), -row))[:n] for row in s])
    finite = np.isfinite(np.take_along_axis(s, ref, axis=1))
    np.testing.assert_array_equal(np.where(finite, idx, -1), np.where(finite, ref, -1))
    np.testing.assert_array_equal(val, np.take_along_axis(s, ref, axis=1))


def test_select_top_ties_across_blocks_go_to_the_lower_index():
    # Blocks of 4: [1 1 0 0 | 2 1 0 0 | 0 ...]. Best by (score desc, index asc):
    # 4 (2.0), then the 1.0s at 0, 1 (before 5) - although block 1 has the larger max.
    s = np.zeros((1, 64))  # long enough for the two-stage path (m >= 4·n·block)
    s[0, [0, 1, 5]] = 1.0
    s[0, 4] = 2.0
    idx, val = rec.select_top(jnp.asarray(s), 3, block=4)
    np.testing.assert_array_equal(idx, [[4, 0, 1]])
    np.testing.assert_array_equal(val, [[2.0, 1.0, 1.0]])


@pytest.mark.parametrize("kwargs,match", [
    (dict(users=[0, 120]), r"users\[1\] = 120 is outside \[-1, 120\)"),
    (dict(users=[-2]), r"users\[0\] = -2"),
    (dict(users=[0], exclude=(np.array([0, 1]), np.array([80]))), r"exclude items\[0\] = 80"),
    (dict(users=[0], exclude=(np.array([0, 2]), np.array([1]))), "CSR"),
    (dict(users=[0], candidates=[3, 3]), "distinct"),
    (dict(users=[0], candidates=[90]), r"candidates\[0\] = 90"),
])
def test_recommend_indices_rejects_out_of_range_indices_before_jit(trained, kwargs, match):
    model, _ = trained
    with pytest.raises(ValueError, match=match):
        rec.recommend_indices(model.params, n=3, **kwargs)


def test_one_user_and_a_batch_score_bit_for_bit_alike():
    # #30 "Also": near-tied scores (~1e-6) ordered differently one by one than in a
    # batch, because a one-row product rounds differently; every chunk now has >= 8 rows.
    r, _ = mfjax.datasets.synthetic(60, 1500, 12000, rank=4, noise=0.3, seed=1)
    m = mfjax.fit(r, mfjax.ALS(rank=64, epochs=2), progress=False)
    ids = m.user_ids[:12]
    I, S = m.recommend(ids, 20)
    for bs in (1, 3, 16):
        I2, S2 = m.recommend(ids, 20, batch_size=bs)
        np.testing.assert_array_equal(S2, S)
        np.testing.assert_array_equal(I2, I)
    for j, u in enumerate(ids):
        i1, s1 = m.recommend(u, 20)
        np.testing.assert_array_equal(s1, S[j])
        np.testing.assert_array_equal(i1, I[j])
