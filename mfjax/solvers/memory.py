"""Up-front memory estimates for ``fit``: refuse a request that cannot fit, with the figure.

Without this, an oversized request (``rank=100_000``, an ID table of billions of rows)
failed deep inside XLA or a kernel (``std::bad_alloc``, "Out of memory allocating
3701430742064 bytes") or after a minute of swapping. Each solver's ``init`` calls
:func:`check_fit` first; it estimates the peak bytes of that solver from the data's
shape and the configuration and compares them with the memory available.

The estimates count only what the solver must hold at its peak (no safety factor),
so they err low: they refuse requests that are hopeless, not ones that are tight.
With n = n_users + n_items rows, k the rank, z the float size, nnz the ratings:

- ``optax`` (explicit, minibatch): 4 tables of n (k+1) z per member (parameters,
  gradient, two Adam moments) + the ratings grid, 2 nnz (8 + z).
- ``als`` (explicit ALS): 2 n (k+1) z + the row systems (on a CPU the C++ kernel's
  per-thread (k+1)² (z + 8) for up to 8 threads, elsewhere XLA's chunk of 1024
  (k+1)² z) + the two CSR layouts, 2 nnz (8 + z).
- ``gibbs``: 2 n (k+1) z + a chunk of 1024 (k+1)² z + the layouts + the kept samples,
  S n (k+1) z capped at the sample budget (the solver thins to it), twice (the samples
  and their average).
- ``ials`` (iALS ALS): 4 n k z (both tables and their padded copies) + the row
  systems: on a CPU the C++ kernel's per-thread k² (z + 8) for up to 8 threads,
  elsewhere XLA's chunk of (256 + 32) k² z + the layouts.
- ``ials_optax``, ``bpr``: 4 n k z + 3 nnz (8 + z).

Set ``MFJAX_MEMORY_CHECK=0`` to skip the check (the estimate is then not consulted).
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["KINDS", "estimate_bytes", "available_bytes", "check_memory", "check_fit",
           "InsufficientMemoryError"]

#: The solver kinds :func:`estimate_bytes` knows.
KINDS = ("optax", "als", "gibbs", "ials", "ials_optax", "bpr")

#: Rows per chunk of the XLA row solves, and the Gibbs sample budget (mirrors the solvers).
_CHUNK_ROWS, _IALS_BLOCKS, _SAMPLE_BUDGET, _KERNEL_THREADS = 256, 32, 1 << 30, 8
_EXPLICIT_CHUNK_ROWS = 1024  # mfjax.solvers.als.solver.ROWS_PER_CHUNK


class InsufficientMemoryError(MemoryError, ValueError):
    """A fit that needs more memory than is available (a MemoryError and a ValueError)."""


def estimate_bytes(kind: str, *, n_users: int, n_items: int, nnz: int, rank: int,
                   members: int = 1, samples: int = 1, itemsize: int = 4,
                   backend: str = "cpu") -> int:
    """Peak bytes of one fit of solver ``kind`` (module docstring has the formulas).

    Args:
        kind: one of :data:`KINDS`.
        n_users, n_items, nnz: the training data's shape.
        rank: k.
        members: ensemble members (``optax``).
        samples: Gibbs samples requested (``gibbs``).
        itemsize: bytes per float (4, or 8 under ``jax_enable_x64``).
        backend: ``jax.default_backend()`` (``ials``: the CPU kernel's smaller systems).
    """
    if kind not in KINDS:
        raise ValueError(f"estimate_bytes: kind must be one of {KINDS}, got {kind!r}")
    n, k, z = int(n_users) + int(n_items), int(rank), int(itemsize)
    d = k + 1
    data = 2 * int(nnz) * (8 + z)
    if kind == "optax":
        return 4 * n * d * z * int(members) + data
    if kind in ("als", "gibbs"):
        systems = (_KERNEL_THREADS * d * d * (z + 8) if kind == "als" and backend == "cpu"
                   else _EXPLICIT_CHUNK_ROWS * d * d * z)
        out = 2 * n * d * z + systems + data
        if kind == "gibbs":
            out += 2 * min(int(samples) * n * d * z, _SAMPLE_BUDGET)
        return out
    if kind == "ials":
        systems = (_KERNEL_THREADS * k * k * (z + 8) if backend == "cpu"
                   else (_CHUNK_ROWS + _IALS_BLOCKS) * k * k * z)
        return 4 * n * k * z + systems + data
    return 4 * n * k * z + 3 * int(nnz) * (8 + z)  # ials_optax, bpr


def available_bytes() -> tuple[int | None, str]:
    """(bytes, where): free memory of the default JAX device when it reports it
    (``memory_stats``: bytes_limit − bytes_in_use), else the host's MemAvailable
    (``/proc/meminfo``, or ``os.sysconf``); ``None`` when neither is known."""
    try:
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            stats = device.memory_stats() or {}
            if "bytes_limit" in stats:
                return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), \
                    f"on {device.device_kind}"
    except Exception:  # noqa: BLE001 - no device information: fall back to the host
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "on the host"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "on the host"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def check_memory(estimate: int, where: str, hint: str = "reduce rank") -> None:
    """Raise :class:`InsufficientMemoryError` when ``estimate`` bytes exceed what is available.

    Args:
        estimate: bytes needed (:func:`estimate_bytes`).
        where: the caller, for the message (e.g. ``"fit(solver='als')"``).
        hint: what to reduce.
    """
    if os.environ.get("MFJAX_MEMORY_CHECK", "1") == "0":
        return
    free, place = available_bytes()
    if free is None or estimate <= free:
        return
    gb = lambda b: f"{b / 1e9:,.1f} GB"
    raise InsufficientMemoryError(
        f"{where}: needs about {gb(estimate)}, {gb(max(free, 0))} available {place}; {hint} "
        "(or set MFJAX_MEMORY_CHECK=0 to try anyway)")


def check_fit(train, spec, kind: str) -> None:
    """:func:`check_memory` for a fit of ``train`` (a Ratings) with the resolved ``spec``
    by solver ``kind`` (its rank, ensemble members and Bayesian MF samples)."""
    import jax

    rank = int(spec.rank)
    members = int(getattr(spec, "ensemble", 1) or 1)
    samples = int(getattr(spec, "samples", 1)) if kind == "gibbs" else 1
    # explicit ALS/Gibbs compute in float64 under jax_enable_x64; the others in float32
    itemsize = (np.dtype(jax.dtypes.canonicalize_dtype(np.float64)).itemsize
                if kind in ("als", "gibbs") else 4)
    need = estimate_bytes(kind, n_users=train.n_users, n_items=train.n_items, nnz=len(train),
                          rank=rank, members=members, samples=samples, itemsize=itemsize,
                          backend=jax.default_backend())
    what = {"optax": "rank or ensemble", "gibbs": "rank or samples"}.get(kind, "rank")
    check_memory(need, f"fit({kind.replace('_optax', '')}, rank={rank}, {train.n_users:,} users, "
                       f"{train.n_items:,} items, {len(train):,} ratings)", f"reduce {what}")
