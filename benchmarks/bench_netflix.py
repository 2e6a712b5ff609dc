"""Benchmark (c): training at the Netflix-prize shape: does it fit in memory, how long per epoch.

480,189 users x 17,770 items, 100,000,000 training ratings from a planted rank-8
model with noise 0.5 (generated in 4M-rating chunks, no timestamps, so the data
itself is 1.2 GB), 500,000 held-out ratings, rank 64, the fit settings of
scenario b (``bench_ml20m.FIT``; the rest are ``fit``'s defaults, whose
``auto_batch_size`` takes 2^21-rating steps here). Reports seconds per epoch,
ratings per second, peak RSS of the process (generation included), the held-out
RMSE per epoch and the multiple of the memory-traffic bound.

Targets (issue #6, 2-core CPU, 24 GB): <= 20 GB peak, <= 12 s per epoch.

    python benchmarks/bench_netflix.py                  # ~6 min
    python benchmarks/bench_netflix.py --ratings 10000000 --epochs 2 --no-results
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ml20m import cli  # noqa: E402


def main() -> None:
    cli("bench_netflix.py", "training, Netflix shape (synthetic, planted rank 8, noise 0.5)",
        dict(users=480_189, items=17_770, ratings=100_000_000, test=500_000, epochs=3, plain_epochs=0,
             xla_epochs=2),
        {"epoch": " (target <= 12 s)", "rss": " (target <= 20 GB)"}, surprise_default=False)


if __name__ == "__main__":
    main()
