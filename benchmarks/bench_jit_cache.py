"""What JAX's persistent compilation cache (mfjax.jit_cache) saves in new processes.

Each job runs in a fresh process three times: ``off`` (``MFJAX_JIT_CACHE=0``), ``cold``
(the cache on, its folder empty: the process compiles and writes) and ``warm`` (a second
process on the folder ``cold`` filled). The kernel libraries are copied into each
temporary ``$MFJAX_CACHE`` so every run takes the same (kernel) route.

Jobs: ``train`` (``mfjax train --quiet``, ML-100K, the default model), ``fit-100k``
(``mfjax.fit(train)``), ``ials-1m`` (the first ML-1M iALS fit), ``serve`` (load a saved
ML-100K model, ``partial_fit_users`` of 50 users, ``recommend`` for 200 users).

    python benchmarks/bench_jit_cache.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(os.path.expanduser("~/.cache/mfjax"), "kernels")

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import mfjax
job, model_path = sys.argv[1], sys.argv[2]
if job == "fit-100k":
    r = mfjax.datasets.movielens("100k"); t1 = time.perf_counter()
    mfjax.fit(r, progress=False).save(model_path)
elif job == "ials-1m":
    r = mfjax.datasets.movielens("1m").binarize(4); t1 = time.perf_counter()
    mfjax.fit(r, progress=False)
else:  # serve
    r = mfjax.datasets.movielens("100k"); t1 = time.perf_counter()
    m = mfjax.load_model(model_path)
    users = r.user_ids[:50]
    m2 = m.partial_fit_users(r.subset(r.users < 50))
    t2 = time.perf_counter()
    m2.recommend(r.user_ids[:200], 10)
    print(json.dumps({"op_s": time.perf_counter() - t1, "partial_fit_s": t2 - t1,
                      "recommend_s": time.perf_counter() - t2}))
    sys.exit(0)
print(json.dumps({"op_s": time.perf_counter() - t1}))
"""


def run(job: str, mode: str, cache: str, model_path: str) -> dict:
    env = {**os.environ, "MFJAX_CACHE": cache, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
           "MFJAX_JIT_CACHE": "0" if mode == "off" else "1"}
    cmd = ([sys.executable, "-m", "mfjax", "train", "--quiet", "--out",
            os.path.join(cache, f"run-{mode}")] if job == "train"
           else [sys.executable, "-c", CHILD, job, model_path])
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(p.stderr[-2000:])
    out = {} if job == "train" else json.loads(p.stdout.strip().splitlines()[-1])
    return {"job": job, "mode": mode, "process_s": round(wall, 2),
            **{k: round(v, 2) for k, v in out.items()}}


def main() -> None:
    import jax

    print(f"jax {jax.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    work = tempfile.mkdtemp(prefix="mfjax-jit-bench-")
    model_path = os.path.join(work, "model.npz")
    rows = []
    try:
        for job in ("train", "fit-100k", "serve", "ials-1m"):
            caches = {}
            for mode in ("off", "cold", "warm"):
                if mode != "warm":
                    caches[mode] = os.path.join(work, f"{job}-{mode}")
                    os.makedirs(caches[mode])
                    shutil.copytree(KERNELS, os.path.join(caches[mode], "kernels"))
                row = run(job, mode, caches[mode] if mode in caches else caches["cold"], model_path)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
