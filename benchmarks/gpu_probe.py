"""Environment and scatter-add probe for scripts/gpu_bench.sh (jax issue 38806).

Prints the JAX backend, devices and versions, whether the installed jaxlib is in
the range 0.10.2-0.11.0 whose GPU f32 scatter-add compiles to a compare-and-swap
loop, and times the scatter-adds that training does:

- ``plain``: f32 ``segment_sum`` of [n, 64] rows into the item table with
  popularity-skewed (contended) item indices, as XLA compiles it by default;
- ``ftz``: the same program compiled with ``xla_gpu_ftz=True``, which is what
  ``mfjax.fit`` does on an affected GPU (native atomics come back);
- ``sorted``: the indices sorted and ``indices_are_sorted=True`` (XLA's sorted
  scatter pre-reduces runs of equal indices before any atomic);
- ``hot``: 16 rows only, the worst contention, plain and ftz.

    PYTHONPATH=. python benchmarks/gpu_probe.py [--small] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def timed(f, *args, repeats: int = 5) -> float:
    import jax

    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def scatter_probe(n: int, rows: int, rank: int = 64) -> dict:
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    cdf = np.cumsum(1.0 / np.arange(1, rows + 1))
    cdf /= cdf[-1]
    idx = np.minimum(np.searchsorted(cdf, rng.random(n)), rows - 1).astype(np.int32)
    upd = jnp.asarray(rng.standard_normal((n, rank), dtype=np.float32))
    hot = jnp.asarray(idx % 16)
    idx_sorted = jnp.asarray(np.sort(idx))
    idx = jnp.asarray(idx)

    def seg(u, i, m, is_sorted=False):
        return jax.ops.segment_sum(u, i, num_segments=m, indices_are_sorted=is_sorted)

    out = {}
    for name, opts in (("plain", None), ("ftz", {"xla_gpu_ftz": True})):
        kw = {"compiler_options": opts} if opts else {}
        f = jax.jit(lambda u, i: seg(u, i, rows), **kw)
        h = jax.jit(lambda u, i: seg(u, i, 16), **kw)
        out[f"{name}_ms"] = 1e3 * timed(f, upd, idx)
        out[f"hot_{name}_ms"] = 1e3 * timed(h, upd, hot)
    g = jax.jit(lambda u, i: seg(u, i, rows, True))
    out["sorted_ms"] = 1e3 * timed(g, upd, idx_sorted)
    out.update(n=n, rows=rows, rank=rank)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a tiny probe (CPU smoke test)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    import jax
    import jaxlib

    from mfjax.training import config as T

    env = {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__, "jaxlib": jaxlib.__version__,
        "versions": C.versions(),
        "affected_38806": T.scatter_add_is_slow(),
        "fit_compiler_options": T.detect_hardware(want_fused=False).compiler_options,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    print(f"JAX {env['jax']} / jaxlib {env['jaxlib']} on {env['backend']}: {env['devices']}")
    verdict = "IN" if env["affected_38806"] else "outside"
    print(f"jaxlib {env['jaxlib']} is {verdict} the range 0.10.2-0.11.0 of jax issue 38806 (GPU f32 "
          f"scatter-add as a CAS loop); fit's epoch compiler options here: {env['fit_compiler_options']}")
    n, rows = (20_000, 1_000) if args.small else (1 << 20, 26_744)
    probe = scatter_probe(n, rows)
    print(f"segment_sum of [{n:,}, 64] f32 rows into {rows:,} skewed rows: plain {probe['plain_ms']:.2f} ms, "
          f"ftz {probe['ftz_ms']:.2f} ms, sorted {probe['sorted_ms']:.2f} ms; into 16 rows: plain "
          f"{probe['hot_plain_ms']:.2f} ms, ftz {probe['hot_ftz_ms']:.2f} ms")
    C.write_json(args.json, {"env": env, "scatter": probe})


if __name__ == "__main__":
    main()
