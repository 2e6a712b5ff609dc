"""The cost of the sharded code path: plain fit vs fit(mesh=1x1) (and "auto" when
there are several devices), same data, same seed, epochs timed side by side.

    python benchmarks/bench_mesh.py                       # 2M ratings, rank 64 (CPU: ~1 min)
    python benchmarks/bench_mesh.py --ratings 20000000    # ML-20M shape (GPU)
    python benchmarks/bench_mesh.py --no-record           # print only

The 1x1 mesh runs the same epoch through the sharding machinery (global arrays,
placement, padding rows); its median epoch time over the plain path's is the
overhead that issue #7 asks to record. The final parameters of both must agree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import _common as C  # noqa: E402  (puts the repo root on sys.path)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import mfjax  # noqa: E402
from mfjax import distributed  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--users", type=int, default=138_493)
    ap.add_argument("--items", type=int, default=26_744)
    ap.add_argument("--ratings", type=int, default=2_000_000)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)

    ratings, _ = mfjax.datasets.synthetic(args.users, args.items, args.ratings, seed=0)
    kw = dict(rank=args.rank, epochs=args.epochs, progress=False, seed=0)
    runs = {"plain": None, "mesh 1x1": distributed.make_mesh(1, 1, jax.devices()[:1])}
    if len(jax.devices()) > 1:
        runs["mesh auto"] = "auto"
    rows, models = [], {}
    for name, mesh in runs.items():
        t0 = time.perf_counter()
        m = mfjax.fit(ratings, mesh=mesh, **kw)
        total = time.perf_counter() - t0
        secs = [h["seconds"] for h in m.history]
        models[name] = m
        rows.append([name, m.config["mesh"], f"{secs[0]:.2f}", f"{statistics.median(secs[1:] or secs):.3f}", f"{total:.1f}"])
    base = statistics.median([h["seconds"] for h in models["plain"].history][1:] or [1])
    for row, m in zip(rows, models.values()):
        med = statistics.median([h["seconds"] for h in m.history][1:] or [1])
        diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                   for a, b in zip(m.params, models["plain"].params))
        row += [f"{med / base:.2f}x", f"{diff:.1e}"]
    table = C.markdown_table(["path", "layout", "first epoch s (compile)", "median epoch s",
                              "fit s", "vs plain", "max |param diff|"], rows)
    print(table)
    if not args.no_record:
        body = (f"{args.ratings:,} synthetic ratings, {args.users:,} x {args.items:,}, rank "
                f"{args.rank}, {args.epochs} epochs, fit defaults otherwise.\n\n{table}\n")
        C.append_results("mesh: plain vs sharded code path", C.command_line("bench_mesh.py"), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
