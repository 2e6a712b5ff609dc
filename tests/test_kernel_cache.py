"""The fused kernel's cache: verified before loading, rebuilt when damaged, private, and
builds that fail, time out or are killed leave nothing running or lying around.

A fake compiler ($CXX) copies one real kernel built once per module, so rebuilds are fast.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mfjax import plumbing
from mfjax.kernels import fused

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    fused.find_compiler() is None or not (shutil.which("cc") or shutil.which("gcc"))
    or not sys.platform.startswith("linux"), reason="needs C and C++ compilers on Linux")

FAKE_CXX = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "fakecxx 1.0"; exit 0; fi
[ -n "$FAKECXX_PIDFILE" ] && echo $$ > "$FAKECXX_PIDFILE"
[ -n "$FAKECXX_SLEEP" ] && sleep "$FAKECXX_SLEEP"
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
cp "$FAKECXX_GOOD" "$out"
"""


@pytest.fixture(scope="module")
def real_kernel(tmp_path_factory):
    home = tmp_path_factory.mktemp("real")
    env = {**os.environ, "MFJAX_CACHE": str(home), "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", "from mfjax.solvers.minibatch.gradients import fused; "
                          "print(fused.build_kernel())"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    good = home / "good.so"
    shutil.copy(out.stdout.strip().splitlines()[-1], good)
    cxx = home / "fakecxx"
    cxx.write_text(FAKE_CXX)
    cxx.chmod(0o755)
    return good, cxx


@pytest.fixture
def cache(real_kernel, tmp_path, monkeypatch):
    """A fresh $MFJAX_CACHE with the fake compiler; returns (data dir, kernel path)."""
    good, cxx = real_kernel
    data = tmp_path / "data"
    for k, v in {"MFJAX_CACHE": str(data), "CXX": str(cxx), "FAKECXX_GOOD": str(good)}.items():
        monkeypatch.setenv(k, v)
    path = fused.build_kernel()
    return data, path


def run_available():
    """fused.available() in a fresh process: (returncode, stdout, stderr)."""
    code = "from mfjax.solvers.minibatch.gradients import fused; print('available', fused.available())"
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                         capture_output=True, text=True, timeout=240)
    return out.returncode, out.stdout, out.stderr


def damage(path, how):
    if how == "truncated":
        data = open(path, "rb").read()
        os.unlink(path)
        open(path, "wb").write(data[:100_000])
    elif how == "garbage":
        open(path, "wb").write(b"\x7fELF garbage" * 100)
    elif how == "empty":
        open(path, "wb").close()
    elif how == "directory":
        os.unlink(path)
        os.mkdir(path)
        open(os.path.join(path, "x"), "w").close()
    elif how == "no hash record":
        os.unlink(path + ".sha256")


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "directory", "no hash record"])
def test_a_damaged_cached_kernel_is_rebuilt_with_a_warning(cache, real_kernel, how):
    _, path = cache
    damage(path, how)
    rc, out, err = run_available()
    assert rc == 0, f"exit {rc}: {err[-500:]}"  # a truncated .so used to kill it with SIGBUS
    assert "available True" in out and "rebuilding the fused gradient CPU kernel" in err
    assert open(path, "rb").read() == open(real_kernel[0], "rb").read()


EVIL_C = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "w"); if (f) { fputs("ran", f); fclose(f); }
}
"""


@pytest.mark.parametrize("how", ["planted", "symlink"])
def test_a_library_not_built_by_mfjax_is_never_loaded(cache, tmp_path, how):
    _, path = cache
    marker = tmp_path / "constructor-ran"
    src = tmp_path / "evil.c"
    src.write_text(EVIL_C % marker)
    evil = tmp_path / "outside" / "evil.so"
    evil.parent.mkdir()
    subprocess.run([shutil.which("cc") or shutil.which("gcc"), "-shared", "-fPIC", "-x", "c", str(src), "-o", str(evil)],
                   check=True)
    os.unlink(path)
    if how == "planted":
        shutil.copy(evil, path)
    else:
        os.symlink(evil, path)
    rc, out, err = run_available()
    assert not marker.exists(), "the planted library's constructor ran"
    assert rc == 0 and "available True" in out, err[-500:]
    assert evil.exists() and not os.path.islink(path)  # the link was removed, not followed


def test_the_kernel_folder_and_the_parents_mfjax_creates_are_private(real_kernel, tmp_path,
                                                                      monkeypatch):
    good, cxx = real_kernel
    data = tmp_path / "a" / "b"
    monkeypatch.setenv("MFJAX_CACHE", str(data))
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setenv("FAKECXX_GOOD", str(good))
    fused.build_kernel()
    for d in (tmp_path / "a", data, data / "kernels"):
        assert d.stat().st_mode & 0o777 == 0o700, d
    (data / "kernels").chmod(0o777)
    fused.build_kernel()
    assert (data / "kernels").stat().st_mode & 0o777 == 0o700
    shutil.rmtree(data / "kernels")
    os.symlink(tmp_path, data / "kernels")
    with pytest.raises(PermissionError, match="symlink"):
        fused.build_kernel()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_kernel_folder_owned_by_someone_else_is_refused(cache):
    data, _ = cache
    os.chown(data / "kernels", 12345, 12345)
    with pytest.raises(PermissionError, match="owned by uid 12345"):
        fused.build_kernel()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _leftovers(data):
    return [n for n in os.listdir(data / "kernels") if n.startswith(plumbing.TMP_PREFIX)]


def test_a_build_that_times_out_kills_the_compiler_and_leaves_nothing(cache, tmp_path, monkeypatch):
    data, path = cache
    os.unlink(path)
    pidfile = tmp_path / "pid"
    monkeypatch.setenv("FAKECXX_SLEEP", "60")
    monkeypatch.setenv("FAKECXX_PIDFILE", str(pidfile))
    monkeypatch.setenv("MFJAX_BUILD_TIMEOUT", "1")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="took over 1 s"):
        fused.build_kernel()
    assert time.monotonic() - t0 < 30
    assert not _alive(int(pidfile.read_text()))
    assert not os.path.exists(path) and _leftovers(data) == []


@pytest.mark.slow
def test_a_sigkilled_build_does_not_leave_the_compiler_running(cache, tmp_path):
    data, path = cache
    os.unlink(path)
    pidfile = tmp_path / "pid"
    env = {**os.environ, "FAKECXX_SLEEP": "120", "FAKECXX_PIDFILE": str(pidfile),
           "MFJAX_BUILD_TIMEOUT": "2", "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-c", "from mfjax.solvers.minibatch.gradients import fused; "
                             "fused.build_kernel()"], env=env)
    deadline = time.monotonic() + 60
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    compiler = int(pidfile.read_text())
    deadline = time.monotonic() + 20
    while _alive(compiler) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(compiler), "the compiler outlived the killed build by 20 s"
    assert _leftovers(data)  # the killed build's folder ...
    fused.build_kernel()
    assert _leftovers(data) == [] and os.path.isfile(path)  # ... is cleaned by the next build


def test_a_killed_writer_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal
        from mfjax.plumbing import atomic_write
        with atomic_write({str(tmp_path / 'model.npz')!r}) as f:
            f.write(b"x" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == -signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if n.startswith(plumbing.TMP_PREFIX)]
    assert len(left) == 1 and str(out.args) and not (tmp_path / "model.npz").exists()
    fresh = tmp_path / (plumbing.TMP_PREFIX + "someone-else.npz")  # old naming, recent: kept
    fresh.write_bytes(b"y")
    old = tmp_path / (plumbing.TMP_PREFIX + "old.npz")  # old naming, 2 h old: removed
    old.write_bytes(b"z")
    os.utime(old, (time.time() - 7200,) * 2)
    plumbing.atomic_write_bytes(tmp_path / "other.bin", b"data")
    assert sorted(os.listdir(tmp_path)) == sorted([fresh.name, "other.bin"])


@pytest.mark.slow
def test_both_kernels_load_in_one_process():
    """dlopen knows a library by its path: loading two kernels through the same reused
    /proc/self/fd/N returned the first one (the iALS symbols were then missing)."""
    code = ("from mfjax.solvers.minibatch.gradients import fused; from mfjax.kernels import ials as ik; "
            "assert fused.available(), fused.unavailable_reason(); "
            "assert ik.available(), ik.unavailable_reason(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_the_cache_key_covers_the_shared_headers(tmp_path, monkeypatch):
    from mfjax import kernels

    cxx = kernels.find_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "k.cc"
    src.write_text('#include "shared.h"\n')
    monkeypatch.setattr(kernels.cache, "HEADERS", str(tmp_path))
    (tmp_path / "shared.h").write_text("// one\n")
    before = kernels.key(str(src), cxx)
    assert kernels.key(str(src), cxx) == before
    (tmp_path / "shared.h").write_text("// two\n")  # an edited header rebuilds its kernels
    assert kernels.key(str(src), cxx) != before


def test_a_read_only_cache_with_a_verified_kernel_is_used_without_a_lock(cache, monkeypatch):
    """Using a verified copy needs no .lock file (a read-only folder cannot hold one)."""
    from mfjax import kernels

    _, path = cache

    @contextlib.contextmanager
    def read_only(folder, name):
        raise PermissionError(13, "Read-only file system", os.path.join(folder, f".lock-{name}"))
        yield

    monkeypatch.setattr(kernels.cache, "locked", read_only)
    assert fused.build_kernel() == path
    os.unlink(path)  # a build does need the lock: the error surfaces
    with pytest.raises(PermissionError, match="Read-only"):
        fused.build_kernel()


@pytest.mark.parametrize("cxx", ["/nonexistent/g++", "no-such-compiler-xyz"])
def test_a_cxx_that_does_not_exist_is_an_error_naming_cxx(cxx, monkeypatch):
    from mfjax import kernels

    monkeypatch.setenv("CXX", cxx)
    with pytest.raises(RuntimeError, match=f"CXX={re.escape(cxx)} is not an executable"):
        kernels.find_compiler()
    with pytest.raises(RuntimeError, match="CXX="):
        fused.build_kernel()


@pytest.mark.parametrize("value, off", [("0", True), ("off", True), ("False", True), ("1", False),
                                        ("yes", False), ("", False)])
def test_the_kernels_switch_reads_only_known_words(value, off, monkeypatch):
    from mfjax import kernels

    monkeypatch.setenv("MFJAX_KERNELS", value)
    assert bool(kernels.switched_off()) is off


@pytest.mark.parametrize("value", ["nope", "2", "of"])
def test_an_unknown_kernels_switch_value_is_an_error(value, monkeypatch):
    from mfjax import kernels

    monkeypatch.setenv("MFJAX_KERNELS", value)
    with pytest.raises(ValueError, match=f"MFJAX_KERNELS must be 0 or 1.*{value!r}"):
        kernels.switched_off()
    with pytest.raises(ValueError, match="MFJAX_KERNELS"):
        fused.available()


def test_kernels_live_in_their_own_cache_not_under_the_data_folder(tmp_path, monkeypatch):
    from mfjax import kernels

    monkeypatch.delenv("MFJAX_CACHE", raising=False)
    monkeypatch.setenv("MFJAX_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kernels.cache_root() == str(tmp_path / "xdg" / "mfjax")
    monkeypatch.setenv("MFJAX_CACHE", str(tmp_path / "mine"))
    assert kernels.cache_root() == str(tmp_path / "mine")


def test_auto_never_compiles_and_says_so_once(cache, capfd):
    """usable_for (kernel="auto") never runs the compiler (a compile beside a fit slows
    the fit): an uncached kernel answers False at once, with one line on stderr."""
    from mfjax import kernels

    _, path = cache
    os.unlink(path)
    k = kernels.Kernel(fused.SOURCE, "mfjax_fused", [], what="test kernel")
    assert k.usable_for([np.dtype(np.float32)], np.float32) is False
    assert k.usable_for([np.dtype(np.float32)], np.float32) is False
    assert not os.path.exists(path)  # nothing compiled
    err = capfd.readouterr().err
    assert err.count("mfjax: the test kernel is not compiled on this machine yet") == 1, err
    assert "mfjax build-kernels" in err
    assert k.usable_for([np.dtype(np.float32)], np.float32, build=True) is True
    assert err.count("compiling") == 0 and "mfjax: compiling the test kernel" in capfd.readouterr().err


def test_auto_uses_a_kernel_another_process_built(cache):
    from mfjax import kernels

    _, path = cache
    os.unlink(path)
    k = kernels.Kernel(fused.SOURCE, "mfjax_fused", [], what="test kernel")
    assert k.usable_for([np.dtype(np.float32)], np.float32) is False
    fused.build_kernel()  # e.g. `mfjax build-kernels` in another terminal
    assert k.usable_for([np.dtype(np.float32)], np.float32) is True


def test_a_build_prints_one_line(cache, capfd):
    from mfjax import kernels

    _, path = cache
    os.unlink(path)
    k = kernels.Kernel(fused.SOURCE, "mfjax_fused", [], what="test kernel")
    assert k.available()
    err = capfd.readouterr().err
    assert err.count("mfjax: compiling the test kernel") == 1 and str(os.path.dirname(path)) in err


@pytest.mark.parametrize("how", ["garbage", "no hash record"])
def test_auto_says_a_tampered_cached_kernel_was_refused_not_that_it_was_never_built(cache, capfd,
                                                                                   how):
    from mfjax import kernels

    _, path = cache
    damage(path, how)
    k = kernels.Kernel(fused.SOURCE, "mfjax_fused", [], what="test kernel")
    assert k.usable_for([np.dtype(np.float32)], np.float32) is False
    err = capfd.readouterr().err
    assert "not compiled on this machine yet" not in err, err
    assert err.count(f"the cached test kernel {path} was refused because its verification "
                     "failed") == 1, err
    assert "mfjax build-kernels" in err
    with pytest.warns(UserWarning, match="rebuilding the test kernel"):
        assert k.usable_for([np.dtype(np.float32)], np.float32, build=True) is True


def test_mfjax_cache_pointing_at_a_file_is_an_error_naming_the_variable(tmp_path, monkeypatch):
    from mfjax import kernels

    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MFJAX_CACHE", str(tmp_path / "a-file"))
    with pytest.raises(OSError, match=f"MFJAX_CACHE={tmp_path / 'a-file'} cannot hold"):
        kernels.cache_folder()
    k = kernels.Kernel(fused.SOURCE, "mfjax_fused", [], what="test kernel")
    with pytest.warns(UserWarning, match="MFJAX_CACHE="):
        assert k.reason() is not None
