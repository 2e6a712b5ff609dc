"""What validation costs a Bayesian MF fit (#19: at most ~20% on top of the sweeps).

ML-100K, ``split.holdout(0.1, seed=0)``: ``mfjax.fit(train)`` (the default spec, Bayesian
MF at this size) with and without ``validation=``, alternating in one process after one
warm-up fit of each, so both pay no compile. Reports the median seconds of each and
their ratio, and the last validation RMSE.

    python benchmarks/bench_gibbs_validation.py [--repeats 5] [--no-record]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    import mfjax

    r = mfjax.datasets.movielens("100k", download=False)
    train, val = mfjax.split.holdout(r, 0.1, seed=0)
    runs = {"without validation": None, "with validation": val}
    for v in runs.values():  # warm-up: compile both programs
        mfjax.fit(train, validation=v, progress=False)
    seconds = {k: [] for k in runs}
    for _ in range(a.repeats):
        for name, v in runs.items():
            t0 = time.perf_counter()
            model = mfjax.fit(train, validation=v, progress=False)
            seconds[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(s)) for k, s in seconds.items()}
    rows = [[k, f"{med[k]:.3f}", " / ".join(f"{x:.3f}" for x in seconds[k])] for k in runs]
    ratio = med["with validation"] / med["without validation"]
    body = (f"ML-100K, 10% holdout (seed 0), `fit(train)` = {model.spec!r}; medians of "
            f"{a.repeats} alternating warm fits.\n\n"
            + C.markdown_table(["fit", "median s", "each s"], rows)
            + f"\n\nWith / without validation: {ratio:.2f}x (goal <= 1.2x). Last val_rmse "
              f"{model.history[-1]['val_rmse']:.5f}.\n")
    print(body)
    if not a.no_record:
        C.append_results("Gibbs validation cost (bench_gibbs_validation.py)",
                         C.command_line("bench_gibbs_validation.py"), body)


if __name__ == "__main__":
    main()
