"""JAX's persistent compilation cache, under mfjax's cache folder, on by default.

Every new process would otherwise recompile every jitted program (the fit's sweeps,
fold-in, top-N). :func:`configure` points ``jax_compilation_cache_dir`` at
``$MFJAX_CACHE/jit`` (``$MFJAX_CACHE``, else ``$XDG_CACHE_HOME/mfjax`` or
``~/.cache/mfjax``; a private 0700 folder) and caches every program that took at least
:data:`MIN_COMPILE_SECONDS` to compile. ``MFJAX_JIT_CACHE=0`` turns it off; a cache
folder the user set for JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left as it is.
What it saves is in benchmarks/RESULTS.md ("Persistent compilation cache").
"""

from __future__ import annotations

import os

__all__ = ["SWITCH", "MIN_COMPILE_SECONDS", "configure"]

#: The environment switch (``MFJAX_JIT_CACHE=0``: every process compiles afresh).
SWITCH = "MFJAX_JIT_CACHE"
#: Programs that compile faster than this are not written (JAX's default is 1 s).
MIN_COMPILE_SECONDS = 0.1

_done = False


def configure() -> str | None:
    """Turn the cache on once per process; returns its folder, or None when it is off.

    Raises:
        ValueError: ``$MFJAX_JIT_CACHE`` is not 0/1 (off/on, false/true, no/yes).
    """
    global _done
    import jax

    value = os.environ.get(SWITCH, "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return None
    if value and value not in ("1", "true", "yes", "on"):
        raise ValueError(f"{SWITCH} must be 0 or 1 (or off/on, false/true, no/yes), got {value!r}")
    if jax.config.jax_compilation_cache_dir:  # the user's own JAX setting wins
        return jax.config.jax_compilation_cache_dir
    if not _done:
        from .kernels.cache import cache_root
        from .plumbing import private_dir

        _done = True
        folder = private_dir(os.path.join(cache_root(), "jit"))
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return jax.config.jax_compilation_cache_dir
