"""The install's kernel build (setup.py -> mfjax.kernels.install.build_all): it fills the
verified kernel cache the fits load from, never fails the install, and a cache built
for another jaxlib, compiler or CPU is named as such by the first fit's notice.

A fake compiler ($CXX) writes a stub library and logs each compile, so nothing here
runs a real compile or loads what it built.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from mfjax import kernels
from mfjax.kernels import als, cache, fused, ials, install

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a /bin/sh compiler")

FAKE_CXX = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "fakecxx ${FAKECXX_VERSION:-1.0}"; exit 0; fi
[ -n "$FAKECXX_FAIL" ] && { echo "fake failure" >&2; exit 1; }
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done
echo compiled >> "$FAKECXX_LOG"
echo "stub library" > "$out"
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fresh $MFJAX_CACHE and the fake compiler; returns the compile log's path."""
    cxx = tmp_path / "fakecxx"
    cxx.write_text(FAKE_CXX)
    cxx.chmod(0o755)
    log = tmp_path / "compiles.log"
    for name, value in {"MFJAX_CACHE": str(tmp_path / "cache"), "CXX": str(cxx),
                        "FAKECXX_LOG": str(log)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MFJAX_KERNELS", raising=False)
    return log


def compiles(log) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_build_all_fills_the_verified_cache_the_wrappers_read(fake, capsys):
    assert install.build_all() == len(install.LIBRARIES) == 3
    assert compiles(fake) == 3
    assert "3 of 3 C++ kernel libraries ready" in capsys.readouterr().err
    # the wrappers find exactly these libraries, verified, without compiling again
    for module in (fused, als, ials):
        path = module.build_kernel()
        fd, reason = cache.read_verified(path)
        assert reason is None, (module.__name__, reason)
        os.close(fd)
    assert compiles(fake) == 3
    assert install.build_all() == 3 and compiles(fake) == 3  # a second install: no compile


def test_build_all_without_a_compiler_says_so_in_one_line(fake, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CXX")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert install.build_all() == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no C++ compiler found" in err[0] and "XLA routes" in err[0], err


@pytest.mark.parametrize("env, words", [({"MFJAX_KERNELS": "0"}, "turned off by MFJAX_KERNELS=0"),
                                        ({"FAKECXX_FAIL": "1"}, "was not built (compiling")])
def test_build_all_never_fails_the_install(fake, monkeypatch, capsys, env, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert install.build_all() == 0
    assert words in capsys.readouterr().err
    assert not any(name.endswith(".so") for name in os.listdir(kernels.cache_folder()))


def test_a_cache_built_for_another_compiler_is_named_stale(fake, monkeypatch, capfd):
    """After the install, a jaxlib upgrade (or another compiler or CPU) changes the key: the
    fit runs the XLA route and its notice says the cached build is for another one."""
    assert install.build_all() == 3
    monkeypatch.setenv("FAKECXX_VERSION", "2.0")
    k = kernels.Kernel(fused.SOURCE, "mfjax_fused", [], what="test kernel")
    assert k.usable_for([np.dtype(np.float32)], np.float32) is False
    err = capfd.readouterr().err
    assert "the test kernel is not compiled for this jaxlib, compiler and CPU yet (the cached " \
           "build is for another" in err, err
    assert compiles(fake) == 3  # nothing compiled by the fit


@pytest.mark.slow
def test_setup_py_build_runs_the_kernel_build(fake, tmp_path):
    """`pip install .` / `-e .` run build_py, which setup.py extends with build_all."""
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib",
                          str(tmp_path / "lib")], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ""}, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert compiles(fake) == 3, out.stderr[-2000:]
    assert "3 of 3 C++ kernel libraries ready" in out.stderr


@pytest.mark.slow
def test_build_all_compiles_side_by_side_on_two_cores(fake, monkeypatch, tmp_path):
    # Each fake compile marks itself running and waits (up to 5 s) to see another one
    # running; with one compiler at a time none ever does.
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    wait = tmp_path / "fakecxx"
    wait.write_text(FAKE_CXX.replace("echo compiled", f"""touch {tmp_path}/running.$$
i=0; while [ $(ls {tmp_path} | grep -c '^running') -lt 2 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
[ $i -lt 50 ] && echo overlapped >> "$FAKECXX_LOG"
sleep 0.3; rm -f {tmp_path}/running.$$
echo compiled"""))
    assert install.build_all() == 3
    assert "overlapped" in fake.read_text()
