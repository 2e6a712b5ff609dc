"""Shared pieces of the training benchmarks (bench_ml100k, bench_ml20m, bench_netflix,
bench_bandwidth): machine and version lines, the memory-bandwidth probe and the
traffic bound, a memory-lean planted data generator, tables and RESULTS.md.

Every benchmark runs from a checkout without installing mfjax: the repository
root is put on ``sys.path`` here.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
RESULTS = os.path.join(HERE, "RESULTS.md")


# --------------------------------------------------------------------------- machine


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import jax

    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs{mem}; "
            f"JAX backend {jax.default_backend()} ({devices})")


def versions(extra=()) -> str:
    import jax
    import jaxlib
    import optax

    parts = [f"Python {platform.python_version()}", f"jax {jax.__version__}",
             f"jaxlib {jaxlib.__version__}", f"optax {optax.__version__}",
             f"numpy {np.__version__}"]
    for name in extra:
        try:
            mod = __import__(name)
            parts.append(f"{name} {getattr(mod, '__version__', '?')}")
        except ImportError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


# --------------------------------------------------------------------------- bandwidth


def copy_bandwidth(mb: int = 512, repeats: int = 7) -> dict:
    """Memory bandwidth of a large NumPy copy, counting read plus write bytes.

    ``mb`` MB is copied into an already-faulted buffer ``repeats`` times; the
    median and best GB/s are returned, with an in-place add (two reads, one
    write) as a second witness. NumPy runs on one core; that is the rate the
    2-core machine's epoch can expect from each of its streams.
    """
    n = mb * (1 << 20) // 4
    a = np.ones(n, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    copy, add = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        copy.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.add(b, a, out=b)
        add.append(time.perf_counter() - t)
    nbytes = a.nbytes
    return {
        "copy_gbps_median": 2 * nbytes / np.median(copy) / 1e9,
        "copy_gbps_best": 2 * nbytes / min(copy) / 1e9,
        "add_gbps_median": 3 * nbytes / np.median(add) / 1e9,
        "mb": mb,
    }


def traffic_bytes(n_ratings: int, n_users: int, n_items: int, rank: int, n_batches: int,
                  itemsize: int = 4) -> dict:
    """Bytes an epoch must move at the least, by the model of the issue.

    Per rating: read the user and the item row and write (accumulate) their
    gradient rows, ``4 * rank * itemsize`` bytes (1 KiB at rank 64, float32).
    Per step: the dense optimizer pass over both tables (Adam reads params,
    gradient, two moments and writes params and two moments: 7 table-sized
    streams). Biases add one column to each table.
    """
    per_rating = 4 * rank * itemsize
    table = (n_users + n_items) * (rank + 1) * itemsize
    ratings = n_ratings * per_rating
    optimizer = 7 * table * n_batches
    return {"ratings": ratings, "optimizer": optimizer, "total": ratings + optimizer,
            "per_rating": per_rating}


# --------------------------------------------------------------------------- data


def planted(n_users: int, n_items: int, rank: int = 8, seed: int = 0):
    """The planted model of :func:`mfjax.datasets.synthetic` (same distributions)."""
    from mfjax.datasets import planted_params

    rng = np.random.default_rng(seed)
    P, Q, bu, bi, mu = planted_params(rng, n_users, n_items, rank)
    # Popularity: weight 1/j^a for the j-th most active user / popular item,
    # ranks shuffled over the IDs (as mfjax.datasets.synthetic's "zipf").
    pops = []
    for n, a in ((n_users, 0.7), (n_items, 1.0)):
        cdf = np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64) ** a)
        pops.append((cdf / cdf[-1], rng.permutation(n).astype(np.int32)))
    return {"P": P, "Q": Q, "bu": bu, "bi": bi, "mu": mu, "pop": pops}


def sample(model: dict, n: int, noise: float = 0.5, seed: int = 1, chunk: int = 1 << 22):
    """``n`` ratings from a :func:`planted` model, in chunks (no [n] float64 temporaries).

    Returns a :class:`mfjax.Ratings` (no timestamps). Its RMSE floor is ``noise``.
    """
    from mfjax.data import Ratings

    rng = np.random.default_rng(seed)
    users = np.empty(n, np.int32)
    items = np.empty(n, np.int32)
    ratings = np.empty(n, np.float32)
    (ucdf, uperm), (icdf, iperm) = model["pop"]
    P, Q, bu, bi = model["P"], model["Q"], model["bu"], model["bi"]
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        u = uperm[np.minimum(np.searchsorted(ucdf, rng.random(m), side="right"), len(ucdf) - 1)]
        i = iperm[np.minimum(np.searchsorted(icdf, rng.random(m), side="right"), len(icdf) - 1)]
        r = np.einsum("nk,nk->n", P[u], Q[i]) + bu[u] + bi[i] + model["mu"]
        r += np.float32(noise) * rng.standard_normal(m, dtype=np.float32)
        users[lo:lo + m], items[lo:lo + m], ratings[lo:lo + m] = u, i, r
    return Ratings(users, items, ratings, None, np.arange(len(P)), np.arange(len(Q)))


# --------------------------------------------------------------------------- output


def markdown_table(header, rows) -> str:
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    width = [max(len(r[j]) for r in cells) for j in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, width)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in width) + "|"]
                     + [line(r) for r in cells[1:]])


def command_line(script: str) -> str:
    return " ".join(["python", f"benchmarks/{script}"] + sys.argv[1:])


def append_results(title: str, command: str, body: str, extra_versions=()) -> None:
    """Append one section to benchmarks/RESULTS.md (never rewrites what is there)."""
    section = (f"\n## {title} ({datetime.date.today().isoformat()})\n\n"
               f"- command: `{command}`\n- versions: {versions(extra_versions)}\n"
               f"- machine: {machine()}\n- load average (1/5/15 min) at the end: {load_average()}\n\n"
               f"{body.rstrip()}\n")
    new = not os.path.exists(RESULTS)
    with open(RESULTS, "a") as f:
        if new:
            f.write("# Benchmark results\n")
        f.write(section)
    print(f"appended to {os.path.relpath(RESULTS, ROOT)}")


def write_json(path: str | None, obj: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(obj, f, indent=2, default=float)


class EpochClock:
    """A ``fit`` callback recording the wall time at the end of every epoch."""

    def __init__(self):
        self.start = time.perf_counter()
        self.ends = []
        self.rows = []

    def __call__(self, epoch, metrics, params):
        self.ends.append(time.perf_counter() - self.start)
        self.rows.append(dict(metrics))
