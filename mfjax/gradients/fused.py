"""The ``"fused"`` gradient route: one C++ pass per minibatch on a CPU (an XLA FFI call).

:func:`value_and_grad` returns the same ``(loss, grads)`` as
:func:`mfjax.gradients.blocked.blocked_value_and_grad` and ``(loss, manual_grad)``. That is, for a
minibatch of ratings sorted by key, with weights w (0 on padding),

    e = μ + b_u + b_i + p_u·q_i − r,       L = ½ Σ w e² + ½ Σ_u c_u (λ‖p_u‖² + λ_b b_u²) + (items alike)
    ∂p_u = Σ_{r∋u} w e q_i + λ c_u p_u,    ∂q_i = Σ_{r∋i} w e p_u + λ c_i q_i,    ∂μ = Σ w e

(per member when the tables carry a member axis). The difference is how the work is
done. XLA:CPU's gathers and scatters move each rating's rows three to five times per
step at about 0.5-0.8 ns per float; see the profile in ``benchmarks/RESULTS.md``. The
kernel (``fused_cpu.cc``) walks the sorted rows once. It keeps the key's row in
registers, reads the other side's row once per rating, and accumulates the other
side's gradient in a private copy per thread.

The kernel is compiled on first use with the system C++ compiler (``$CXX``, else
``c++``/``g++``) against the XLA FFI headers that jaxlib ships. It is built with
``-march=native`` and cached under ``$MFJAX_DATA`` or ``~/.cache/mfjax``/kernels (a private
0700 folder), keyed by the source, the jaxlib version and the CPU, with the SHA-256 each
build recorded beside it; only a library matching its record is loaded (see
:func:`build_kernel`). If no compiler is available or the build
fails, :func:`available` is False: ``fit(gradient="auto")`` then takes the
``"blocked"`` XLA route, and ``gradient="fused"`` raises an error that says why. Set
``MFJAX_FUSED=0`` to turn the kernel off.

Results are deterministic for a given thread count: the per-thread sums are added in a
fixed order. The thread count is ``$MFJAX_FUSED_THREADS``, else the CPUs this
process may use, at most 8.
Out-of-range indices raise an error naming the minibatch row; they are never clamped.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import math
import os
import platform
import shutil
import signal
import stat
import subprocess
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Params, resolve_bias_reg
from ..plumbing import (atomic_write_text, cache_dir, clean_stale_temporaries, private_dir,
                        temp_prefix)

__all__ = ["available", "unavailable_reason", "value_and_grad", "threads", "build_kernel", "find_compiler"]

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_cpu.cc")
_TARGETS = {np.dtype(np.float32): ("mfjax_fused_f32", "MfjaxFusedF32"),
            np.dtype(np.float64): ("mfjax_fused_f64", "MfjaxFusedF64")}
#: Default limit (seconds) of one kernel build; ``$MFJAX_BUILD_TIMEOUT`` overrides it.
BUILD_TIMEOUT = 600.0
#: Most threads the kernel uses (each holds a private copy of the other side's table).
MAX_THREADS = 8


def threads() -> int:
    """Threads per call: ``$MFJAX_FUSED_THREADS``, else the CPUs this process may run on,
    at most :data:`MAX_THREADS`."""
    env = os.environ.get("MFJAX_FUSED_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"MFJAX_FUSED_THREADS must be a positive integer, got {env!r}")
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def find_compiler() -> str | None:
    for c in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if c and shutil.which(c):
            return c
    return None


def _cpu_tag() -> str:
    """The CPU model and feature flags (a ``-march=native`` build is only valid on the same kind)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [l for l in f if l.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor()


def _cache_dir() -> str:
    """The kernel folder, created private (0700, ours, not a symlink): it holds code we load."""
    return private_dir(cache_dir("kernels"))


def _build_timeout() -> float:
    env = os.environ.get("MFJAX_BUILD_TIMEOUT", "").strip()
    try:
        return float(env) if env else BUILD_TIMEOUT
    except ValueError:
        raise ValueError(f"MFJAX_BUILD_TIMEOUT must be a number of seconds, got {env!r}") from None


def _key(cxx: str) -> str:
    import jaxlib

    with open(SOURCE, "rb") as f:
        src = f.read()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    return hashlib.sha256(b"\0".join(x.encode() if isinstance(x, str) else x for x in (
        src, jaxlib.__version__, version, platform.machine(), _cpu_tag()))).hexdigest()[:16]


def _owned_regular(st) -> bool:
    uid = getattr(os, "getuid", lambda: None)()
    return stat.S_ISREG(st.st_mode) and (uid is None or st.st_uid == uid) and not st.st_mode & 0o022


def _read_verified(path: str) -> tuple[int, str | None]:
    """Open the library ``path`` and check it against the SHA-256 its build recorded.

    Returns ``(fd, None)`` with ``fd`` open on exactly the bytes that were hashed,
    or ``(-1, reason)``. Symlinks are not followed; the file and its record must be
    regular files owned by this user and writable by no one else.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return -1, "not built yet"
    except OSError as e:
        return -1, f"cannot open it ({e.strerror or e}; a symlink or a folder?)"
    try:
        if not _owned_regular(os.fstat(fd)):
            raise ValueError("it is not a regular file of ours, writable only by us")
        with open(path + ".sha256", "rb", opener=lambda p, f: os.open(
                p, f | getattr(os, "O_NOFOLLOW", 0))) as rec:
            if not _owned_regular(os.fstat(rec.fileno())):
                raise ValueError("its hash record is not a regular file of ours")
            want = rec.read(200).decode("ascii", "replace").split()
        h = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if not want or want[0] != h.hexdigest():
            raise ValueError("its SHA-256 does not match the one its build recorded "
                             "(truncated, corrupted or replaced)")
    except (OSError, ValueError) as e:
        os.close(fd)
        reason = str(e) if isinstance(e, ValueError) else f"it has no readable hash record ({e.strerror})"
        return -1, reason
    return fd, None


def _remove(path: str) -> None:
    """Remove whatever is at ``path`` (a file, a symlink itself, or a folder), if anything."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def build_kernel() -> str:
    """Path of the compiled kernel, building it if no verified copy is cached.

    The kernel lives in :func:`~mfjax.plumbing.private_dir` ``cache_dir("kernels")``
    beside ``<name>.so.sha256``, the SHA-256 its build recorded. A cached library
    that fails verification (truncated, replaced, a symlink, a folder, no record)
    is removed and rebuilt, with a warning saying why. Builds take a lock, compile
    into a private temporary folder (removed on any failure) and publish with an
    atomic rename, record first.

    The compiler runs in its own process group, killed (the whole group) on a
    timeout (``$MFJAX_BUILD_TIMEOUT`` seconds, default 600) or any exception, incl.
    KeyboardInterrupt. When coreutils ``timeout`` exists it wraps the compiler, so
    even if this process is SIGKILLed the compiler dies within the same limit;
    otherwise it may run on until it finishes. A build folder left by a killed
    process is removed by the next build.
    """
    cxx = find_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set $CXX, or install g++)")
    out_dir = _cache_dir()
    path = os.path.join(out_dir, f"mfjax_fused_{_key(cxx)}.so")
    with _locked(out_dir):
        fd, reason = _read_verified(path)
        if fd >= 0:
            os.close(fd)
            return path
        if reason != "not built yet":
            warnings.warn(f"mfjax: rebuilding the fused kernel {path}: {reason}", stacklevel=2)
        _remove(path)
        _remove(path + ".sha256")
        clean_stale_temporaries(out_dir, dirs=True)
        _compile(cxx, path, out_dir)
    return path


@contextlib.contextmanager
def _locked(folder: str):
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock; concurrent builds still publish atomically
        yield
        return
    fd = os.open(os.path.join(folder, ".lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _compile(cxx: str, path: str, out_dir: str) -> None:
    tmp_dir = tempfile.mkdtemp(prefix=temp_prefix() + "build-", dir=out_dir)
    try:
        tmp = os.path.join(tmp_dir, "kernel.so")
        limit = _build_timeout()
        cmd = [cxx, "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w",
               "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp, "-lpthread"]
        wrapper = shutil.which("timeout")
        full = ([wrapper, "-s", "KILL", f"{max(1, math.ceil(limit)) + 5}"] if wrapper else []) + cmd
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=limit)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise RuntimeError(f"compiling {SOURCE} took over {limit:g} s "
                                   "($MFJAX_BUILD_TIMEOUT); killed") from None
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE} failed ({' '.join(cmd)}):\n{err[-2000:]}")
        with open(tmp, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        os.chmod(tmp, 0o700)
        atomic_write_text(path + ".sha256", f"{digest}  {os.path.basename(path)}\n")
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _dlopen_verified(path: str):
    """Load the library at ``path`` only if it matches its recorded hash (re-checked here)."""
    fd, reason = _read_verified(path)
    if fd < 0:
        raise RuntimeError(f"refusing to load {path}: {reason}")
    try:
        proc_path = f"/proc/self/fd/{fd}"
        # Load the very file that was hashed, not whatever the name points to by now.
        return ctypes.CDLL(proc_path if os.path.exists(proc_path) else path)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def _register() -> str | None:
    """Build, load and register the kernel (once per process); the reason it failed, or None.

    A failure is also reported once as a warning, since ``gradient="auto"`` then
    silently takes the slower XLA route.
    """
    try:
        lib = _dlopen_verified(build_kernel())
        for target, symbol in _TARGETS.values():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                        platform="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure means: use the XLA route
        reason = f"{type(exc).__name__}: {exc}"
        first = reason.splitlines()[0] if reason.strip() else type(exc).__name__
        warnings.warn(f"mfjax: the fused CPU kernel is unavailable, using the XLA routes: {first}",
                      stacklevel=2)
        return reason
    return None


def _load() -> str | None:
    """None when the kernel is usable, else why not (``MFJAX_FUSED=0``, or the build)."""
    if os.environ.get("MFJAX_FUSED", "1").strip().lower() in ("0", "false", "no", "off"):
        return "turned off by MFJAX_FUSED=0"
    return _register()


def available() -> bool:
    """Whether the fused kernel can run here (builds it on the first call)."""
    return _load() is None


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    return _load()


def value_and_grad(
    params: Params,
    keys: jax.Array,
    others: jax.Array,
    ratings: jax.Array,
    weights: jax.Array,
    *,
    reg: float = 0.0,
    bias_reg: float | None = None,
    sort_by: str = "users",
) -> tuple[jax.Array, Params]:
    """``(loss, grads)`` of a key-sorted minibatch, from the fused CPU kernel.

    Args:
        params: model parameters (float32 or float64; with or without a member axis).
        keys: the key of each row [n], sorted (non-decreasing): users when
            ``sort_by="users"``, else items. Unsorted keys give wrong results.
        others: the other index of each row [n].
        ratings: observed ratings [n].
        weights: per-rating weights [n] (0 on padding rows).
        reg, bias_reg: λ and λ_b, as in :func:`mfjax.loss`.
        sort_by: ``"users"`` or ``"items"``.

    Returns:
        ``(loss, grads)``, grads a :class:`Params` shaped like ``params``.

    Raises:
        RuntimeError: the kernel is not available (see :func:`unavailable_reason`).
    """
    if sort_by not in ("users", "items"):
        raise ValueError(f"sort_by must be 'users' or 'items', got {sort_by!r}")
    reason = _load()
    if reason is not None:
        raise RuntimeError(f"the fused CPU kernel is not available: {reason}")
    dtype = np.dtype(params.global_bias.dtype)
    if dtype not in _TARGETS:
        raise ValueError(f"the fused kernel takes float32 or float64 parameters, got {dtype}")
    bias_reg = resolve_bias_reg(reg, bias_reg)
    K, O, kb, ob = params.user_factors, params.item_factors, params.user_bias, params.item_bias
    if sort_by == "items":
        K, O, kb, ob = O, K, ob, kb
    outs = [jax.ShapeDtypeStruct((), dtype)] + [jax.ShapeDtypeStruct(x.shape, dtype)
                                                for x in (K, O, kb, ob, params.global_bias)]
    loss, dK, dO, dkb, dob, dmu = jax.ffi.ffi_call(_TARGETS[dtype][0], outs)(
        K, O, kb, ob, jnp.reshape(params.global_bias, (-1,)),
        keys.astype(jnp.int32), others.astype(jnp.int32), ratings.astype(dtype), weights.astype(dtype),
        reg=np.float64(reg), bias_reg=np.float64(bias_reg), threads=np.int64(threads()))
    if sort_by == "items":
        dK, dO, dkb, dob = dO, dK, dob, dkb
    return loss, Params(dK, dO, dkb, dob, dmu)
