"""Build, verify and load mfjax's C++ XLA FFI kernels (shared by every CPU kernel).

This package module holds the switch, the thread count and :class:`Kernel` (one
source's build, load and registration); :mod:`mfjax.kernels.cache` holds the compiled-code
cache (compile, verify, load) described next.

A kernel is one C++ source compiled with the system compiler (``$CXX``, else
``c++``/``g++``/``clang++``) against the XLA FFI headers that jaxlib ships, with
``-O3 -march=native``. Libraries are cached in a private 0700 folder of compiled code,
apart from the data (:func:`cache_folder`: ``$MFJAX_CACHE``, else
``$XDG_CACHE_HOME/mfjax``, else ``~/.cache/mfjax``; then ``/kernels``) as
``<name>_<key>.so``, the key hashing the source, the jaxlib version, the compiler's
version and the CPU, beside ``<name>_<key>.so.sha256``, the SHA-256 its build
recorded. Only a library that matches its record (and is a regular file of ours,
writable by no one else, not a symlink) is loaded, and the very bytes that were hashed
are the ones loaded (:func:`load`). Builds take a file lock, run the compiler in its own
process group with a timeout (``$MFJAX_BUILD_TIMEOUT``, default 600 s; the whole group is
killed on a timeout or any exception), compile into a private temporary folder and
publish with an atomic rename, record first (:func:`build`).

:class:`Kernel` bundles one source's build, load and FFI registration (once per
process) and the ``available()`` / ``unavailable_reason()`` / ``usable_for()`` answers
that callers use to pick an XLA route instead. :mod:`mfjax.kernels.fused`,
:mod:`mfjax.kernels.als` and :mod:`mfjax.kernels.ials` are built on it.

No build is silent, and none slows a fit that can run without it (a compile beside a
fit slowed it by 25-45% on 2 cores: benchmarks/RESULTS.md, "First fit"):

- ``$MFJAX_KERNELS=0`` turns every kernel off (the one switch; any value other than
  0/1, off/on, false/true, no/yes is an error).
- :meth:`Kernel.usable_for` (a fit's ``kernel="auto"``) never compiles: a cached,
  verified library is loaded at once; without one the fit runs its XLA route and one
  line on stderr (once per process and kernel) says so and how to build it
  (``mfjax build-kernels``).
- :meth:`Kernel.reason` / ``available()`` (a fit's ``kernel=True``, the direct kernel
  functions, ``mfjax build-kernels``) build when needed, with one line on stderr saying
  what is compiled, why and where to.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading
import warnings

import jax

from .cache import (
    BUILD_TIMEOUT,
    HEADERS,
    RefusedKernel,
    build,
    build_timeout,
    cache_folder,
    cache_root,
    find_compiler,
    key,
    load,
    read_verified)

__all__ = ["BUILD_TIMEOUT", "HEADERS", "MAX_THREADS", "SWITCH", "find_compiler", "cache_root",
           "cache_folder", "build", "build_timeout", "key", "load", "register", "read_verified",
           "threads", "switched_off", "Kernel", "NOT_BUILT"]

#: The one environment switch of every kernel (``MFJAX_KERNELS=0``: XLA routes only).
SWITCH = "MFJAX_KERNELS"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")

#: Most threads a kernel uses by default.
MAX_THREADS = 8

_UNSET = object()


def threads(env: str) -> int:
    """Threads per kernel call: ``$<env>``, else the CPUs this process may run on, at most
    :data:`MAX_THREADS`."""
    value = os.environ.get(env, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{env} must be a positive integer, got {value!r}")
        return int(value)
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def switched_off() -> str | None:
    """Why the kernels are off (``"turned off by MFJAX_KERNELS=0"``), or None when on.

    Raises:
        ValueError: ``$MFJAX_KERNELS`` is set to something other than 0/1, off/on,
            false/true, no/yes (a typo must not silently mean "on").
    """
    value = os.environ.get(SWITCH, "").strip()
    if value.lower() in _OFF:
        return f"turned off by {SWITCH}={value}"
    if value and value.lower() not in _ON:
        raise ValueError(f"{SWITCH} must be 0 or 1 (or off/on, false/true, no/yes), got {value!r}")
    return None


def register(lib: ctypes.CDLL, targets) -> None:
    """Register each ``(target name, handler symbol)`` of ``targets`` as a CPU FFI target."""
    for target, symbol in targets:
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")


#: :meth:`Kernel.usable_for`'s reason when the kernel is not compiled on this machine yet.
NOT_BUILT = "not compiled on this machine yet (`mfjax build-kernels` compiles it)"


class Kernel:
    """One C++ FFI kernel: built, verified, loaded and registered once per process.

    Args:
        source: the C++ file.
        name: the library's name prefix (and cache name).
        targets: ``(FFI target name, handler symbol)`` pairs it exports.
        what: words for messages ("the fused kernel").
        builder: a callable returning the library path (default: :func:`build` of
            ``source``).
        threads_env: the variable that sets its thread count (:func:`threads`).
    """

    def __init__(self, source, name, targets, *, what, builder=None, threads_env=None):
        self.source, self.name, self.targets, self.what = source, name, tuple(targets), what
        self.threads_env = threads_env
        self.builder = builder or (lambda: build(self.source, self.name, what=self.what))
        self._lock = threading.Lock()
        self._result = _UNSET  # None: registered; a string: why it cannot run
        self._noted = False  # whether the "not compiled yet" line was printed

    def _finish(self, path: str | None, error: BaseException | None) -> str | None:
        """Register the library at ``path`` (or record ``error``); the lock is held."""
        try:
            if error is not None:
                raise error
            register(load(path), self.targets)
            self._result = None
        except Exception as exc:  # noqa: BLE001 - any failure means: use the XLA route
            reason = f"{type(exc).__name__}: {exc}"
            first = reason.splitlines()[0] if reason.strip() else type(exc).__name__
            warnings.warn(f"mfjax: the {self.what} is unavailable, using the XLA routes: {first}",
                          stacklevel=4)
            self._result = reason
        return self._result

    def _state(self, build_now: bool) -> str | None:
        with self._lock:
            if self._result is not _UNSET:
                return self._result
            why = None
            try:
                path = build(self.source, self.name, what=self.what, cached_only=True)
            except RefusedKernel as exc:  # a build replaces it, as for NOT_BUILT
                path, why = None, f"{exc} (`mfjax build-kernels` rebuilds it)"
            except Exception as exc:  # noqa: BLE001 - no compiler, a bad CXX, an unsafe folder
                return self._finish(None, exc)
            if path is not None:
                return self._finish(path, None)
            if not build_now:  # asked again later: another process may have built it
                if not self._noted:
                    self._noted = True
                    why = why or f"the {self.what} is {self._not_built()}"
                    print(f"mfjax: {why}, so this runs the XLA route instead ({SWITCH}=0 "
                          "silences this)", file=sys.stderr, flush=True)
                return NOT_BUILT
            try:
                return self._finish(self.builder(), None)
            except Exception as exc:  # noqa: BLE001
                return self._finish(None, exc)

    def _not_built(self) -> str:
        """The notice's words: :data:`NOT_BUILT`, or, when the cache holds this library
        under another key only (built by the install or ``mfjax build-kernels`` before a
        jaxlib upgrade, for another compiler or CPU), that it is stale."""
        try:
            others = glob.glob(os.path.join(cache_folder(), glob.escape(self.name) + "_*.so"))
        except (OSError, ValueError):
            others = []
        if not others:
            return NOT_BUILT
        return ("not compiled for this jaxlib, compiler and CPU yet (the cached build is for "
                "another; `mfjax build-kernels` compiles it)")

    def threads(self) -> int:
        """Threads per call: ``$<threads_env>``, else the usable CPUs (at most
        :data:`MAX_THREADS`)."""
        return threads(self.threads_env)

    def reason(self) -> str | None:
        """None when the kernel is usable, else why not (``MFJAX_KERNELS=0``, or the
        build). Compiles it (one line on stderr) if it is not cached."""
        return switched_off() or self._state(build_now=True)

    def available(self) -> bool:
        """Whether the kernel can run here (compiles it on the first call if needed)."""
        return self.reason() is None

    def cached_reason(self) -> str | None:
        """Like :meth:`reason` but never compiles: :data:`NOT_BUILT` (with one line on
        stderr, once) when the kernel is not cached."""
        return switched_off() or self._state(build_now=False)

    def usable_for(self, dtypes, dtype, *, build: bool = False) -> bool:
        """Whether a fit in ``dtype`` on the default backend can use it: a CPU backend,
        ``dtype`` among ``dtypes`` (those it was compiled for), kernels on, and the
        library built. ``build=False`` (a fit's ``kernel="auto"``) never compiles: an
        uncached kernel answers False and says so once on stderr; ``build=True`` (a
        fit's ``kernel=True``) compiles it now."""
        import jax
        import numpy as np

        if switched_off() or jax.default_backend() != "cpu" or np.dtype(dtype) not in dtypes:
            return False
        return self._state(build_now=build) is None
