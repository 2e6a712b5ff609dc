"""Compile mfjax's C++ CPU kernels while mfjax is installed (``setup.py``'s build step).

``pip install .`` and ``pip install -e .`` run :func:`build_all` after copying the Python
files: each library is built by :func:`mfjax.kernels.cache.build`, the very function
``mfjax build-kernels`` uses, into the kernel cache the loader reads (``$MFJAX_CACHE``,
else ``$XDG_CACHE_HOME/mfjax`` or ``~/.cache/mfjax``, then ``kernels/``), under the
same key (source, shared headers, jaxlib, compiler, CPU) and beside the SHA-256 record
that every load checks. So nothing here is loaded unverified, and a jaxlib upgrade, another
compiler or another CPU after the install is a key the cache does not hold: the fit says
so once and runs its XLA route, as it does before any build.

The build never fails the install: without a compiler, with ``MFJAX_KERNELS=0`` or when
a compile fails, it prints one line saying what was not built and what runs instead.
"""

from __future__ import annotations

import os
import sys
import concurrent.futures
import time

from . import cache, switched_off

__all__ = ["LIBRARIES", "build_all"]

#: ``(source file, library name, words for messages)`` of each kernel library; the
#: wrappers (:mod:`mfjax.kernels.fused`, ``als``, ``ials``) build the same names.
LIBRARIES = (("fused_cpu.cc", "mfjax_fused", "fused gradient CPU kernel"),
             ("als_cpu.cc", "mfjax_als", "explicit ALS/Gibbs CPU kernel"),
             ("ials_cpu.cc", "mfjax_ials", "iALS CPU kernel"))

_XLA = "fits run the XLA routes (`mfjax build-kernels` builds the kernels later)"


def build_all(stream=None) -> int:
    """Build every kernel library that is not cached and verified yet; never raises an
    ``Exception`` (a failure is one line on ``stream``, default stderr).

    Returns:
        How many of the :data:`LIBRARIES` are built and verified in the cache.
    """
    stream = stream or sys.stderr
    try:
        off = switched_off()
    except ValueError as exc:  # a bad MFJAX_KERNELS: the fits will refuse it too
        off = str(exc)
    if off:
        print(f"mfjax: C++ kernels not built: they are {off}", file=stream, flush=True)
        return 0
    try:
        cxx = cache.find_compiler()
    except RuntimeError as exc:
        print(f"mfjax: C++ kernels not built: {exc}; {_XLA}", file=stream, flush=True)
        return 0
    if cxx is None:
        print(f"mfjax: C++ kernels not built: no C++ compiler found (install g++ or set $CXX); "
              f"{_XLA}", file=stream, flush=True)
        return 0
    here = os.path.dirname(os.path.abspath(__file__))
    t0 = time.perf_counter()

    def one(library) -> bool:
        source, name, what = library
        try:
            cache.build(os.path.join(here, source), name, what=what, cxx=cxx)
            return True
        except Exception as exc:  # noqa: BLE001 - the install goes on; the fit says what runs
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            print(f"mfjax: the {what} was not built ({first}); its fits run the XLA route",
                  file=stream, flush=True)
            return False

    # One compiler process per core: the libraries are independent (distinct cache names).
    workers = max(1, min(len(LIBRARIES), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        ready = sum(pool.map(one, LIBRARIES))
    print(f"mfjax: {ready} of {len(LIBRARIES)} C++ kernel libraries ready in "
          f"{cache.cache_folder()} ({time.perf_counter() - t0:.0f} s)", file=stream, flush=True)
    return ready
