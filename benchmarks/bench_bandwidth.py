"""Benchmark (d): the memory-bandwidth probe behind the "multiple of the traffic bound".

Measures, on 512 MB float32 arrays (far beyond the caches):

- NumPy copy and in-place add (one core), the bandwidth the training benchmarks
  divide by (``_common.copy_bandwidth``);
- an XLA elementwise pass inside one jitted loop (XLA may split it over the
  cores), the best a fused JAX kernel can stream.

Then prints the memory-traffic bound of an epoch for the three training
scenarios: the model of the issue, 1 KiB per rating at rank 64 (read the user and
item rows, write their gradient rows) plus the optimizer's dense passes (Adam: 7
table-sized streams per step), divided by the NumPy copy bandwidth. The training
benchmarks (bench_ml20m.py, bench_netflix.py) state their epoch time as a
multiple of this bound, measured in the same run.

    python benchmarks/bench_bandwidth.py [--mb 512] [--no-results]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def xla_stream(mb: int, steps: int = 10) -> float:
    """GB/s (read + write) of ``x = x * c`` repeated inside one jitted fori_loop."""
    import jax
    import jax.numpy as jnp

    x = jnp.ones(mb * (1 << 20) // 4, jnp.float32)

    @jax.jit
    def run(x):
        return jax.lax.fori_loop(0, steps, lambda _, y: y * 1.0000001, x)

    run(x).block_until_ready()
    best = []
    for _ in range(5):
        t = time.perf_counter()
        run(x).block_until_ready()
        best.append(time.perf_counter() - t)
    return 2 * x.nbytes * steps / np.median(best) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=512, help="array size in MB")
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    import mfjax

    bw = C.copy_bandwidth(args.mb)
    xla = xla_stream(args.mb)
    rows = [
        ("NumPy copy, read + write (median / best)",
         f"{bw['copy_gbps_median']:.1f} / {bw['copy_gbps_best']:.1f} GB/s"),
        ("NumPy in-place add, 2 reads + 1 write (median)", f"{bw['add_gbps_median']:.1f} GB/s"),
        ("XLA elementwise pass in a jitted loop (median)", f"{xla:.1f} GB/s"),
    ]
    shapes = [("ML-100K (80k train, rank 128)", 80_000, 943, 1682, 128),
              ("ML-20M shape, rank 64", 20_000_000, 138_493, 26_744, 64),
              ("Netflix shape, rank 64", 100_000_000, 480_189, 17_770, 64)]
    bounds = []
    for name, n, nu, ni, k in shapes:
        nb = -(-n // mfjax.auto_batch_size(n, nu, ni))
        t = C.traffic_bytes(n, nu, ni, k, nb)
        bounds.append((name, f"{t['ratings'] / 1e9:.2f} GB", f"{t['optimizer'] / 1e9:.2f} GB ({nb} steps)",
                       f"{t['total'] / (bw['copy_gbps_median'] * 1e9):.3f} s"))
    table = C.markdown_table(("probe", "value"), rows)
    btable = C.markdown_table(("epoch", "rating rows (1 KiB/rating at k=64)", "optimizer passes",
                               "bound at the copy bandwidth"), bounds)
    print(table + "\n\n" + btable)
    if not args.no_results:
        C.append_results("memory bandwidth probe and epoch traffic bounds",
                         C.command_line("bench_bandwidth.py"),
                         f"{args.mb} MB float32 arrays.\n\n{table}\n\n{btable}\n")


if __name__ == "__main__":
    main()
