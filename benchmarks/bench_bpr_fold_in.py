"""BPR fold-in of one user with a very long history: time and peak memory.

Issue #20: the per-user Newton fold-in drew M = 32 negatives per positive and built
dense per-triple arrays, so one user with 150k interactions (4.8M triples) took 62 s
and 7 GB. Now M is cut to max(1, ceil(2^16 / |I|)) per user and the triples are
streamed through the Newton steps in chunks (mfjax.models.bpr.fold_in.bpr_rows).

Each size runs in a fresh process (peak RSS is per process):
    python benchmarks/bench_bpr_fold_in.py [--record]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import _common  # noqa: F401  (puts the repository root on sys.path)


def one(n_items: int, n_pos: int, rank: int) -> dict:
    import jax
    import numpy as np

    from mfjax.models.bpr.fold_in import bpr_fold_in

    rng = np.random.default_rng(0)
    Q = jax.numpy.asarray(rng.standard_normal((n_items, rank)).astype(np.float32) * 0.1)
    b = jax.numpy.asarray(rng.standard_normal(n_items).astype(np.float32) * 0.1)
    items = rng.choice(n_items, n_pos, replace=False)
    t = time.perf_counter()
    p = np.asarray(bpr_fold_in(Q, b, items, reg=0.01))
    first = time.perf_counter() - t
    t = time.perf_counter()
    p = np.asarray(bpr_fold_in(Q, b, items, reg=0.01))
    second = time.perf_counter() - t
    return {"n_items": n_items, "n_pos": n_pos, "rank": rank, "first_s": first,
            "second_s": second, "peak_rss_gb": _common.peak_rss_gb(),
            "finite": bool(np.isfinite(p).all())}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=3, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return 0
    rows = []
    for n_items, n_pos, rank in ((160_000, 150_000, 64), (160_000, 200, 64)):
        out = subprocess.run([sys.executable, __file__, "--one", str(n_items), str(n_pos),
                              str(rank)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(r)
        rows.append([f"{r['n_items']:,}", f"{r['n_pos']:,}", r["rank"], f"{r['first_s']:.2f}",
                     f"{r['second_s']:.2f}", f"{r['peak_rss_gb']:.2f}"])
    table = _common.markdown_table(["items", "user's positives", "rank", "first call s",
                                    "second call s", "peak RSS GB"], rows)
    print(table)
    if args.record:
        _common.append_results("BPR fold-in of one long-history user (issue #20)",
                               _common.command_line("bench_bpr_fold_in.py"),
                               table + "\n\nBefore (issue #20): 62 s and 7 GB for 150k "
                               "interactions (M = 32 negatives each, dense triples).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
