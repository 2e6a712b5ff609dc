"""Up-front memory estimates for ``fit``: refuse a request that cannot fit, with the figure.

Without this, an oversized request (``rank=100_000``, an ID table of billions of rows)
failed deep inside XLA or a kernel (``std::bad_alloc``, "Out of memory allocating
3701430742064 bytes") or after a minute of swapping. Before a solver starts, ``fit``
asks the model's record for its peak bytes (each model package's ``memory_bytes``,
built from the pieces here) and :func:`check_memory` compares them with the memory
available.

The estimates count only what the solver must hold at its peak (no safety factor),
so they err low: they refuse requests that are hopeless, not ones that are tight.
With n = n_users + n_items rows, k the rank, z the float size, nnz the ratings, the
pieces are: a CSR layout of both sides, :func:`layout_bytes` = 2 nnz (8 + z); the row
systems of an exact row solve, :func:`row_systems_bytes` (on a CPU the C++ kernel's
per-thread d² (z + 8) for up to :data:`KERNEL_THREADS` threads, elsewhere XLA's chunk
of rows d² z).

Set ``MFJAX_MEMORY_CHECK=0`` to skip the check (the estimate is then not consulted).
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["KERNEL_THREADS", "layout_bytes", "row_systems_bytes", "available_bytes",
           "check_memory", "InsufficientMemoryError"]

#: Threads the C++ kernels' per-thread row systems are counted for.
KERNEL_THREADS = 8


class InsufficientMemoryError(MemoryError, ValueError):
    """A fit that needs more memory than is available (a MemoryError and a ValueError)."""


def layout_bytes(nnz: int, itemsize: int) -> int:
    """Bytes of the two CSR views of ``nnz`` ratings (an int32 pair and a value each)."""
    return 2 * int(nnz) * (8 + int(itemsize))


def row_systems_bytes(dim: int, itemsize: int, backend: str, xla_rows: int,
                      kernel: bool = True) -> int:
    """Bytes of the [dim, dim] row systems an exact row solve holds at once: the C++
    kernel's per-thread systems on a CPU (``kernel``), else XLA's chunk of ``xla_rows``."""
    d, z = int(dim), int(itemsize)
    if kernel and backend == "cpu":
        return KERNEL_THREADS * d * d * (z + 8)
    return int(xla_rows) * d * d * z


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
        estimate: bytes needed (a model record's ``memory_bytes``).
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
