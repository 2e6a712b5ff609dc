"""Run in a subprocess by tests/test_distributed.py (needs a fresh JAX runtime).

    python tests/dist_worker.py meshes OUT.json       # 4 forced CPU devices, several mesh shapes
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
    kw = dict(rank=6, epochs=3, batch_size=1001, validation=test, progress=False)
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


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "meshes":
        meshes(out, os.path.dirname(os.path.abspath(out)))
    else:
        raise SystemExit(f"unknown mode {mode}")
