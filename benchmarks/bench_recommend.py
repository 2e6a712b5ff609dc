"""Benchmark: top-10 for every user at the ML-20M shape, seen items excluded.

138,493 users x 26,744 items, rank 64, random float32 parameters, and a
synthetic seen set of ~20M (user, item) pairs (about 144 per user, at least 20,
long-tailed like real logs). Times ``Model.recommend(all user IDs, 10)`` (raw
ID lookup, chunked scoring, exclusion, top-k, raw IDs back) and measures the
extra peak memory as the rise of VmHWM (peak RSS, which counts XLA's buffers,
unlike tracemalloc) above the RSS just before the call; the peak is reset via
/proc/self/clear_refs first. Targets: <= 30 s and <= 2 GB extra on a 2-core CPU.

    python benchmarks/bench_recommend.py                       # the ML-20M shape
    python benchmarks/bench_recommend.py --batch-sizes 64 256 1024   # tune the chunk
    python benchmarks/bench_recommend.py --append-results      # add a section to RESULTS.md

The cold time includes compilation (one program per call: every chunk is
padded to one shape); the warm time is a second identical call.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def proc_status(field: str) -> int:
    """A /proc/self/status field in bytes (e.g. VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_problem(n_users, n_items, rank, seen_mean, seed=0):
    import jax.numpy as jnp

    from mfjax.objectives.explicit import Params

    rng = np.random.default_rng(seed)
    params = Params(
        user_factors=jnp.asarray(rng.standard_normal((n_users, rank), np.float32) * 0.1),
        item_factors=jnp.asarray(rng.standard_normal((n_items, rank), np.float32) * 0.1),
        user_bias=jnp.asarray(rng.standard_normal(n_users, np.float32) * 0.3),
        item_bias=jnp.asarray(rng.standard_normal(n_items, np.float32) * 0.5),
        global_bias=jnp.asarray(3.5, jnp.float32),
    )
    # Long-tailed counts (at least 20, like ML-20M) with the requested mean.
    counts = 20 + rng.geometric(1.0 / max(seen_mean - 19, 1), n_users).astype(np.int64) - 1
    counts = np.minimum(counts, n_items)
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    # Popular items are seen more often (Zipf-like weights over a shuffled ID order).
    w = 1.0 / np.arange(1, n_items + 1) ** 0.8
    cdf = np.cumsum(w / w.sum())
    items = rng.permutation(n_items)[np.minimum(np.searchsorted(cdf, rng.random(indptr[-1])),
                                                n_items - 1)].astype(np.int32)
    return params, indptr, items


def run_once(model, n, batch_size):
    import jax

    users = model.user_ids
    jax.block_until_ready(model.params)
    before = proc_status("VmRSS")
    reset_ok = reset_peak()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    idx, val = model.recommend(users, n, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = proc_status("VmHWM")
    cpu = (r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime)
    return idx, val, seconds, peak - before if reset_ok else None, cpu


def check(idx, val, indptr, items, n_check=200, seed=1):
    """Spot-check: no seen item listed, lists sorted, no padding needed."""
    rng = np.random.default_rng(seed)
    for u in rng.choice(len(indptr) - 1, n_check, replace=False):
        seen = set(items[indptr[u]:indptr[u + 1]].tolist())
        assert not seen & set(idx[u].tolist()), f"user {u}: a seen item was recommended"
        assert np.all(np.diff(val[u]) <= 0), f"user {u}: not sorted"
    assert np.all(idx >= 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--users", type=int, default=138_493)
    ap.add_argument("--items", type=int, default=26_744)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--seen-per-user", type=float, default=144.0)
    ap.add_argument("--batch-sizes", type=lambda t: None if t == "auto" else int(t), nargs="*",
                    default=[None],
                    help="users per chunk to try; 'auto' is the library's choice")
    ap.add_argument("--append-results", action="store_true",
                    help="append a section to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)

    import jax

    from mfjax import Model
    from mfjax.serving.rows import auto_batch_size

    params, indptr, items = make_problem(args.users, args.items, args.rank, args.seen_per_user)
    # Raw IDs as in MovieLens (ints from 1), so the timing includes the ID mapping.
    model = Model(params, np.arange(1, args.users + 1), np.arange(1, args.items + 1), (0.5, 5.0),
                  {}, [], indptr, items)
    print(f"{args.users:,} users x {args.items:,} items, rank {args.rank}, top-{args.n}, "
          f"{len(items):,} seen pairs ({len(items) / args.users:.0f} per user)")
    rows = []
    for bs in args.batch_sizes:
        shown = bs or auto_batch_size(args.users, args.items)
        idx, val, cold, mem_cold, _ = run_once(model, args.n, bs)
        check(idx - 1, val, indptr, items)  # raw item ID = index + 1
        del idx, val
        _, _, warm, mem_warm, (user, system) = run_once(model, args.n, bs)
        mems = [m for m in (mem_cold, mem_warm) if m is not None]
        mem = max(mems) if mems else None
        rows.append((f"{shown}{'' if bs else ' (auto)'}", cold, warm, user, system, mem))
        print(f"batch {rows[-1][0]:>12}: cold {cold:6.2f} s  warm {warm:6.2f} s "
              f"(cpu user {user:.1f} s, sys {system:.1f} s)  "
              f"extra peak {mem / 2**30 if mem is not None else float('nan'):.2f} GiB", flush=True)

    table = ["| users per chunk | cold (incl. compile) | warm | warm CPU user / sys | "
             "extra peak memory |", "|---|---|---|---|---|"]
    for name, cold, warm, user, system, mem in rows:
        m = f"{mem / 2**30:.2f} GiB" if mem is not None else "n/a"
        table.append(f"| {name} | {cold:.1f} s | {warm:.1f} s | {user:.1f} s / {system:.1f} s "
                     f"| {m} |")
    print("\n".join(table))

    if args.append_results:
        cmd = "python benchmarks/bench_recommend.py" + (" " + " ".join(argv or sys.argv[1:])
                                                         ).replace(" --append-results", "")
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        section = [
            "",
            f"## recommend: top-{args.n} for all users, ML-20M shape "
            f"({datetime.date.today().isoformat()})",
            "",
            f"- command: `{cmd.strip()}`",
            f"- versions: Python {platform.python_version()}, jax {jax.__version__}, "
            f"numpy {np.__version__}",
            f"- machine: {cpu_model()}, {os.cpu_count()} CPUs (nproc), {mem_total:.0f} GiB RAM, "
            f"backend {jax.default_backend()}",
            f"- problem: {args.users:,} users x {args.items:,} items, rank {args.rank}, "
            f"{len(items):,} seen pairs excluded (synthetic, random float32 parameters)",
            "- targets: <= 30 s, <= 2 GB extra memory",
            f"- load average at the end: {os.getloadavg()[0]:.1f} (other jobs shared the "
            "machine)" if os.getloadavg()[0] > 1.5 else "- machine otherwise idle",
            "",
            *table,
            "",
        ]
        with open(os.path.join(ROOT, "benchmarks", "RESULTS.md"), "a") as f:
            f.write("\n".join(section))
        print("appended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
