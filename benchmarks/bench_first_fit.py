"""A user's first hour, measured: fresh clone, virtual environment and HOME (issue #29).

For each commit (default: ``HEAD``, and ``--before`` the commit before the install built
the kernels), in a new temporary folder:

1. ``git clone`` the repository at that commit, ``python -m venv``, an empty ``HOME``;
2. the README's main command exactly as written, ``python -m pip install -e ".[plot]" &&
   mfjax train``, its two halves timed (pip's wheel cache is the machine's, as a user's
   second install would have it; the ML-100K download is ``mfjax train``'s);
3. (``HEAD`` only) ``implicit`` installed into that environment (a benchmark dependency),
   ML-1M copied into the fresh cache, then in new processes:

   - ``ials``: the first ML-1M (ratings >= 4) ``ImplicitALS()`` fit (defaults), then
     ``implicit``'s ``AlternatingLeastSquares`` defaults (64 factors, 15 iterations, as in
     ``bench_implicit.py``; its quality is compared there), same process (goal: mfjax <=
     1.5x implicit; moonshot <= 1x);
   - ``bayes-1``, ``bayes-2``: ``mfjax.fit(train)`` (BayesianMF) on ML-1M, in a first and a
     second process (goal: first <= 1.2x second; the JIT cache is what differs).

Every figure is one run on this machine (noisy: quote it beside its same-run partner).

    python benchmarks/bench_first_fit.py [--before COMMIT] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_INSTALL = 'python -m pip install -e ".[plot]"'
README_RUN = "mfjax train"

IALS = r"""
import json, sys, time
t0 = time.perf_counter()
import mfjax
r = mfjax.datasets.movielens("1m").binarize(4)
t1 = time.perf_counter()
m = mfjax.fit(r, mfjax.ImplicitALS(), progress=False)
t2 = time.perf_counter()
import implicit, threadpoolctl
threadpoolctl.threadpool_limits(1)
X = r.to_csr().tocsr().astype("float32")
als = implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=15, random_state=0)
t3 = time.perf_counter()
als.fit(X, show_progress=False)
t4 = time.perf_counter()
print(json.dumps({"import_and_load_s": t1 - t0, "mfjax_first_fit_s": t2 - t1,
                  "implicit_fit_s": t4 - t3, "kernel": m.config.get("kernel")}))
"""

BAYES = r"""
import json, time
t0 = time.perf_counter()
import mfjax
r = mfjax.datasets.movielens("1m")
t1 = time.perf_counter()
m = mfjax.fit(r, progress=False)
t2 = time.perf_counter()
print(json.dumps({"import_and_load_s": t1 - t0, "fit_s": t2 - t1, "model": m.config["model"]}))
"""


def sh(cmd: str, cwd: str, env: dict, timeout: int = 1800) -> tuple[float, str]:
    """Seconds ``cmd`` took in a shell; raises with its output's tail when it fails."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"{cmd!r} failed ({p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}")
    return time.perf_counter() - t0, p.stdout + p.stderr


def fresh(commit: str, where: str) -> tuple[str, dict]:
    """A clone at ``commit`` with its own venv and empty HOME: (clone, env)."""
    clone, home, venv = (os.path.join(where, n) for n in ("clone", "home", "venv"))
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
    subprocess.run(["git", "-C", clone, "checkout", "-q", commit], check=True)
    os.makedirs(home)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
                                       "PIP_FIND_LINKS", "PIP_CACHE_DIR") if k in os.environ}
    if "PIP_CACHE_DIR" not in keep:  # the machine's wheel cache, as a second install has it
        keep["PIP_CACHE_DIR"] = os.path.expanduser("~/.cache/pip")
    env = {**keep, "HOME": home, "VIRTUAL_ENV": venv, "JAX_PLATFORMS": "cpu",
           "PATH": os.path.join(venv, "bin") + os.pathsep + keep.get("PATH", "")}
    return clone, env


def copy_ml1m(env: dict) -> None:
    """ML-1M's cached wheel (and parsed arrays) into the fresh HOME's data cache."""
    src = os.path.expanduser("~/.cache/mfjax")
    dst = os.path.join(env["HOME"], ".cache", "mfjax")
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.startswith("recbole") and name.endswith((".whl", ".npz")):
            shutil.copy(os.path.join(src, name), dst)


def child(code: str, clone: str, env: dict) -> dict:
    script = os.path.join(env["HOME"], "child.py")
    with open(script, "w") as f:
        f.write(code)
    seconds, out = sh(f"python {script}", clone, env)
    row = json.loads(out.strip().splitlines()[-1])
    row["process_s"] = round(seconds, 2)
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}


def measure(commit: str, first_fits: bool) -> dict:
    where = tempfile.mkdtemp(prefix="mfjax-fresh-")
    clone, env = fresh(commit, where)
    install_s, out = sh(README_INSTALL, clone, env)
    train_s, train_out = sh(README_RUN, clone, env)
    row = {"commit": commit, "install_s": round(install_s, 1), "mfjax_train_s": round(train_s, 1),
           "train_tail": train_out.strip().splitlines()[-3:], "where": where}
    if first_fits:
        sh("python -m pip install -q implicit threadpoolctl scipy", clone, env)
        copy_ml1m(env)
        row["ials"] = child(IALS, clone, env)
        row["ials"]["ratio"] = round(row["ials"]["mfjax_first_fit_s"]
                                     / row["ials"]["implicit_fit_s"], 2)
        b1, b2 = (child(BAYES, clone, env) for _ in range(2))
        row["bayes"] = {"first": b1, "second": b2, "ratio": round(b1["fit_s"] / b2["fit_s"], 2)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--before", default=None, help="also time the install at this commit")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", args.commit], check=True,
                            capture_output=True, text=True).stdout.strip()
    rows = [measure(commit, True)]
    if args.before:
        rows.append(measure(args.before, False))
    for row in rows:
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(row["where"], ignore_errors=True)


if __name__ == "__main__":
    main()
