"""MFJAX_KERNELS=0 (the one switch) gives the same fits as the C++ kernels: the fused
gradient, the explicit ALS half-step and the iALS half-steps (exact and CG), each run
in a fresh process with the kernels on and off."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mfjax.kernels import fused

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two fresh processes fitting every kernel route (~20-30 s): the slow run.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(fused.available() is False,
                                 reason="the kernels do not build here")]

FITS = r"""
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import mfjax
from mfjax.models.mf import resolve as mf_resolve
from mfjax.kernels import als, fused, ials

mf_resolve.AUTO_BLOCKED_MIN_RATINGS = 1000  # gradient="auto" leaves jax.grad on this small data
on = [fused.available(), als.available(), ials.available()]  # built in the foreground
rng = np.random.default_rng(3)
pairs = rng.choice(300 * 200, 6000, replace=False)
r = mfjax.Ratings.from_arrays(pairs // 200, pairs % 200, rng.integers(1, 6, 6000).astype(float))
fits = {
    "fused": mfjax.fit(r, solver="optax", rank=4, epochs=2, seed=1, progress=False),
    "als": mfjax.fit(r, solver="als", rank=4, epochs=3, seed=1, progress=False),
    "ials_cg": mfjax.fit(r, objective="ials", rank=4, epochs=3, seed=1, progress=False),
    "ials_exact": mfjax.fit(r, objective="ials", rank=4, epochs=3, cg_steps=0, seed=1,
                            progress=False),
}
out = {"available": on, "routes": {k: [m.config.get("gradient"), m.config.get("kernel")]
                                   for k, m in fits.items()}}
out["params"] = {k: [np.asarray(x).tolist() for x in m.params] for k, m in fits.items()}
out["loss"] = {k: [h["loss"] for h in m.history] for k, m in fits.items()}
print(json.dumps(out))
"""


def _run(switch):
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", "MFJAX_KERNELS": switch}
    p = subprocess.run([sys.executable, "-c", FITS], capture_output=True, text=True, env=env,
                       timeout=280)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def both():
    return _run("1"), _run("0")


def test_the_switch_turns_every_kernel_off(both):
    on, off = both
    assert on["available"] == [True, True, True] and off["available"] == [False, False, False]
    assert on["routes"]["fused"][0] == "fused" and off["routes"]["fused"][0] == "blocked"
    for name in ("als", "ials_cg", "ials_exact"):
        assert on["routes"][name][1] is True and off["routes"][name][1] is False


# The routes add in different orders: float32 rounding (the fits' tables are float32).
@pytest.mark.parametrize("name", ["fused", "als", "ials_cg", "ials_exact"])
def test_kernels_off_gives_the_kernel_results(both, name):
    on, off = both
    for a, b in zip(on["params"][name], off["params"][name]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(on["loss"][name], off["loss"][name], rtol=1e-5)
