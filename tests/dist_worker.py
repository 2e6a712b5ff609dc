"""Run in a subprocess by tests/test_distributed.py (needs a fresh JAX runtime).

    python tests/dist_worker.py meshes OUT.json       # 4 forced CPU devices, several mesh shapes
    python tests/dist_worker.py implicit OUT.json     # the same for objective="ials"/"bpr"
"""

import json
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np  # noqa: E402

import mfjax  # noqa: E402
from mfjax import distributed, split  # noqa: E402

SHAPES = [(4, 1), (2, 2), (1, 4)]


def problem():
    ratings, _ = mfjax.datasets.synthetic(203, 101, 6000, rank=4, noise=0.5, seed=2)
    return split.holdout(ratings, 0.2, seed=0)


def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def meshes(out_path, tmp):
    import jax

    train, test = problem()
    # 1001 is not divisible by 4 or 2: the grid gets weight-0 padding rows.
    kw = dict(solver="optax", rank=6, epochs=3, batch_size=1001, validation=test, progress=False)
    ref = mfjax.fit(train, **kw)
    report = {"devices": len(jax.devices()), "runs": {}}
    for data, model in SHAPES:
        for tables in ("replicated", "sharded"):
            mesh = distributed.make_mesh(data, model)
            specs = []
            m = mfjax.fit(train, mesh=mesh, table_sharding=tables, **kw,
                          callbacks=[lambda e, row, p: specs.append(str(p.user_factors.sharding.spec))])
            path = os.path.join(tmp, f"m{data}x{model}{tables}.npz")
            m.save(path)
            loaded = mfjax.load_model(path)
            u, i = test.user_ids[test.users[:50]], test.item_ids[test.items[:50]]
            report["runs"][f"{data}x{model}/{tables}"] = {
                "param_diff": max_diff(m.params, ref.params),
                "loss_diff": max(abs(a["loss"] - b["loss"]) / b["loss"]
                                 for a, b in zip(m.history, ref.history)),
                "rmse": mfjax.evaluate(m, test)["rmse"],
                "ref_rmse": mfjax.evaluate(ref, test)["rmse"],
                "load_predict_equal": bool(np.array_equal(loaded.predict(u, i), m.predict(u, i))),
                "table_sharding": m.config["table_sharding"],
                "factor_spec": specs[-1],
                "rows": m.config["batch_slots"],
                "shapes_equal": [tuple(x.shape) for x in m.params] == [tuple(x.shape) for x in ref.params],
                "recommend_equal": (bool(np.array_equal(m.recommend(train.user_ids[0], 5)[0],
                                                        ref.recommend(train.user_ids[0], 5)[0]))
                                    if hasattr(m, "recommend") else None),
            }
    # Three of the four devices: the grid's rows (a multiple of 64 here) do not
    # split evenly over 3, so padding rows are added and must change nothing.
    kw3 = {**kw, "batch_size": 1500}
    ref3 = mfjax.fit(train, **kw3)
    m3 = mfjax.fit(train, mesh=distributed.make_mesh(3, 1, jax.devices()[:3]), **kw3)
    report["uneven"] = {"padding_rows": m3.config["mesh_padding_rows"],
                        "param_diff": max_diff(m3.params, ref3.params)}
    auto = mfjax.fit(train, mesh="auto", **kw)
    report["auto_param_diff"] = max_diff(auto.params, ref.params)
    with open(out_path, "w") as f:
        json.dump(report, f)


#: (spec, table_sharding choices, mesh shapes) of the implicit mesh runs. ALS splits rows
#: over all devices whatever the shape, so 2x2 and the uneven 3x1 cover it; the minibatch
#: solvers also get the pure data (4x1) and pure model (1x4) axes. 1001: a batch uneven
#: over 2 and 4 data devices.
IMPLICIT = {
    "ials": (mfjax.ImplicitALS(rank=6, epochs=3, cg_steps=0), ["auto"], [(2, 2), (3, 1)]),
    "ials_cg": (mfjax.ImplicitALS(rank=6, epochs=3, cg_steps=3), ["auto"], [(2, 2), (3, 1)]),
    "ials_optax": (mfjax.ImplicitALS(rank=6, epochs=3, solver="optax"), ["replicated", "sharded"],
                   [(2, 2), (1, 4)]),
    "bpr": (mfjax.BPR(rank=6, epochs=3, batch_size=1001), ["replicated", "sharded"],
            SHAPES + [(3, 1)])}


def state_spec(train, spec, mesh, tables):
    """The item table's sharding in the solver state after one step (public solver seam)."""
    from mfjax.training.config import resolve

    spec, run = resolve(train, spec, seed=0, mesh=mesh, table_sharding=tables)
    solver = mfjax.models.record_of(spec).make_solver(spec)
    state, _ = solver.step(solver.init(train, spec, run))
    return str(getattr(state.params.item_factors.sharding, "spec", None))


def half_steps(train):
    """One sharded user half-step against the one-device exact solve, per mesh shape, on
    ``train`` and on 1,203 users (> 256 rows per device, not a multiple of 256: the row
    chunks of the solve then run past the last real row)."""
    rng = np.random.default_rng(5)
    users = np.concatenate([np.arange(1203), np.minimum(rng.zipf(1.3, 9000) - 1, 1202)])
    key = np.unique(users * 57 + rng.integers(0, 57, users.size))  # distinct, skewed pairs
    big = mfjax.Ratings.from_arrays(key // 57, key % 57, rng.integers(1, 6, key.size).astype(float))
    out = {}
    for name, r in (("small", train), ("big", big)):
        for shape, res in half_steps_on(r).items():
            out[f"{name}/{shape}"] = res
    return out


def half_steps_on(train):
    import jax
    import jax.numpy as jnp

    from mfjax.models.implicit_als import objective as im
    from mfjax.data import interactions
    from mfjax.models.implicit_als import solve as ia, mesh as imm

    data = interactions.build_implicit_data(train.users, train.items, train.ratings,
                                  n_users=train.n_users, n_items=train.n_items)
    hp = dict(alpha=0.5, unobserved_weight=0.3, reg=0.05, nu=1.0)
    Q = np.random.default_rng(0).normal(size=(train.n_items, 5)).astype(np.float32)
    want = np.asarray(ia.solve_users(jnp.asarray(Q), data, **hp))
    params = mfjax.Params(jnp.asarray(want), jnp.asarray(Q), jnp.zeros(train.n_users),
                          jnp.zeros(train.n_items), jnp.zeros(()))
    counts = np.diff(np.asarray(data.item_indptr)).astype(np.float64)
    penalty_items = hp["reg"] * np.sum((counts + hp["unobserved_weight"] * train.n_users)
                                       ** hp["nu"] * np.sum(Q.astype(np.float64) ** 2, axis=1))
    want_value = float(im.loss(params, data.user_rows, data.user_items, data.user_values, **hp)) \
        - penalty_items
    out = {}
    for shape in SHAPES + [(3, 1)]:
        mesh = distributed.make_mesh(*shape, jax.devices()[:shape[0] * shape[1]])
        users, items = imm.mesh_layouts(data, mesh)
        Qn = distributed.put_global(Q, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
        x, value, _ = imm.mesh_half_step(imm.from_natural(Qn, items, mesh), users, mesh, **hp)
        out[f"{shape[0]}x{shape[1]}"] = {
            "diff": float(np.max(np.abs(np.asarray(imm.to_natural(x, users, mesh)) - want))),
            "value_rel": abs(float(value) - want_value) / want_value,
            "indptr_spec": str(users.indptr.sharding.spec),
            "x_spec": str(x.sharding.spec),
            "shards": len(x.addressable_shards),
            "shard_rows": sorted({s.data.shape[0] for s in x.addressable_shards}),
            "rows_per_device": int(users.indptr.shape[1] - 1),
            "live": np.asarray(users.n_live).tolist(),
            "n_users": train.n_users,
        }
    return out


def implicit(out_path, tmp):
    import jax

    ratings, _ = mfjax.datasets.synthetic(203, 101, 6000, rank=4, noise=0.5, seed=2)
    ratings = ratings.subset(ratings.ratings >= 3.5)
    train, test = split.per_user(ratings, 0.2, seed=0)
    report = {"devices": len(jax.devices()), "runs": {}}
    users = train.user_ids[:7]
    for case, (spec, shardings, shapes) in IMPLICIT.items():
        kw = dict(validation=test, progress=False)
        ref = mfjax.fit(train, spec, **kw)
        ref_ids, _ = ref.recommend(users, 10)
        for shape in shapes:
            devices = jax.devices()[:shape[0] * shape[1]]
            for tables in shardings:
                mesh = distributed.make_mesh(*shape, devices)
                m = mfjax.fit(train, spec, mesh=mesh, table_sharding=tables, **kw)
                path = os.path.join(tmp, f"{case}{shape}{tables}.npz")
                m.save(path)
                loaded = mfjax.load_model(path)
                ids, scores = m.recommend(users, 10)
                report["runs"][f"{case}/{shape[0]}x{shape[1]}/{tables}"] = {
                    "param_diff": max_diff(m.params, ref.params),
                    "loss_diff": max(abs(a["loss"] - b["loss"]) / b["loss"]
                                     for a, b in zip(m.history, ref.history)),
                    "val_diff": max(abs(a["val_ndcg@10"] - b["val_ndcg@10"])
                                    for a, b in zip(m.history, ref.history)),
                    "epochs": len(m.history),
                    "shapes_equal": [x.shape for x in m.params] == [x.shape for x in ref.params],
                    "host_arrays": all(len(x.devices()) == 1 for x in m.params),
                    "table_sharding": m.config.get("table_sharding"),
                    "state_spec": state_spec(train, spec, mesh, tables),
                    "recommend_overlap": float(np.mean([len(set(a) & set(b)) / 10
                                                        for a, b in zip(ids, ref_ids)])),
                    "load_recommend_equal": bool(np.array_equal(loaded.recommend(users, 10)[0], ids)),
                }
    report["half_step"] = half_steps(train)
    # Rank 64: XLA calls LAPACK for the factorizations (rank 6 does not), and concurrent
    # batched LAPACK calls on CPU devices deadlock in jaxlib 0.10 (a hang before the
    # row-wise factorization on CPU meshes).
    kw64 = dict(objective="ials", rank=64, epochs=2, cg_steps=0, progress=False)
    one = mfjax.fit(train, **kw64)
    four = mfjax.fit(train, mesh=distributed.make_mesh(2, 2), **kw64)
    report["rank64"] = {"param_diff": max_diff(four.params, one.params),
                        "epochs": len(four.history)}
    try:
        mfjax.fit(train, objective="ials", kernel=True, epochs=1, progress=False,
                  mesh=distributed.make_mesh(2, 2))
        report["kernel_on_mesh_error"] = None
    except (ValueError, RuntimeError) as e:
        report["kernel_on_mesh_error"] = str(e)
    # A checkpoint written on a 2x2 mesh resumes on one device (ALS keeps the tables
    # in row order): the same model as an uninterrupted one-device run.
    kw = dict(objective="ials", rank=6, progress=False, seed=3)  # the default method
    ckpt = os.path.join(tmp, "ckpt")
    mfjax.fit(train, epochs=2, checkpoint_dir=ckpt, mesh=distributed.make_mesh(2, 2), **kw)
    resumed = mfjax.fit(train, epochs=4, checkpoint_dir=ckpt, resume=True, **kw)
    whole = mfjax.fit(train, epochs=4, **kw)
    report["resume"] = {"param_diff": max_diff(resumed.params, whole.params),
                        "loss_diff": max(abs(a["loss"] - b["loss"]) / b["loss"]
                                         for a, b in zip(resumed.history, whole.history)),
                        "epochs": len(resumed.history)}
    with open(out_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "meshes":
        meshes(out, os.path.dirname(os.path.abspath(out)))
    elif mode == "implicit":
        implicit(out, os.path.dirname(os.path.abspath(out)))
    else:
        raise SystemExit(f"unknown mode {mode}")
