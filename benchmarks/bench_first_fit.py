"""The first fit on a machine whose kernel cache is empty, with the kernels on and off.

Each case runs in a fresh process with a fresh kernel cache (``MFJAX_CACHE`` a new
temporary folder; the data from the existing cache via ``MFJAX_DATA``):

- ``off``: ``MFJAX_KERNELS=0`` (the XLA routes only);
- ``auto``: kernels on, ``kernel="auto"`` on the empty cache: nothing is compiled, the
  fit takes the XLA route and one line says so (and names ``mfjax build-kernels``);
- ``foreground``: kernels on, the kernel compiled before the fit (``available()`` first:
  what every first fit did before this change, silently; now with one line);
- ``build-kernels``: ``mfjax build-kernels als``/``ials`` into a fresh cache (the README's
  install step), then ``warm``: a fit in a new process on that cache.

Prints the fit's seconds (from data loaded to model returned) and the process's wall
seconds (Python start to exit, incl. imports, data loading and any wait at exit).

    python benchmarks/bench_first_fit.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
import mfjax
from mfjax.kernels import als, ials
case, job = sys.argv[1], sys.argv[2]
if job == "ials-1m":
    r = mfjax.datasets.movielens("1m")
    r = r.subset(r.ratings >= 4)
    kernel, fit = ials, lambda: mfjax.fit(r, objective="ials", progress=False)
else:
    r = mfjax.datasets.movielens("100k")
    kernel, fit = als, lambda: mfjax.fit(r, solver="als", progress=False)
t0 = time.perf_counter()
if case == "foreground":
    kernel.available()
m = fit()
print(json.dumps({"fit_s": time.perf_counter() - t0, "kernel": m.config.get("als_kernel")}))
"""


def run(case: str, job: str, cache: str) -> dict:
    env = {**os.environ, "MFJAX_CACHE": cache, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
           "MFJAX_DATA": os.environ.get("MFJAX_DATA", os.path.expanduser("~/.cache/mfjax")),
           "MFJAX_KERNELS": "0" if case == "off" else "1"}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", CHILD, case, job], env=env, capture_output=True,
                       text=True, timeout=900)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return {"case": case, "job": job, "fit_s": round(out["fit_s"], 2), "process_s": round(wall, 2),
            "kernel_used": out["kernel"], "stderr": [l for l in p.stderr.splitlines()
                                                     if l.startswith("mfjax:")]}


def build_kernels(name: str, cache: str) -> dict:
    env = {**os.environ, "MFJAX_CACHE": cache, "PYTHONPATH": ROOT}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "mfjax", "build-kernels", name], env=env,
                       capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    return {"case": "build-kernels", "job": name, "process_s": round(time.perf_counter() - t0, 2),
            "stderr": p.stderr.splitlines()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    for _ in range(args.repeats):
        for job in ("als-100k", "ials-1m"):
            rows = [run("off", job, tempfile.mkdtemp()), run("auto", job, tempfile.mkdtemp()),
                    run("foreground", job, tempfile.mkdtemp())]
            cache = tempfile.mkdtemp()
            rows += [build_kernels(job.split("-")[0], cache), run("warm", job, cache)]
            for row in rows:
                print(json.dumps(row))


if __name__ == "__main__":
    main()
