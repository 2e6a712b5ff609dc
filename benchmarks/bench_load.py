"""Benchmark: load a 20M-line MovieLens-style ratings.csv with ``mfjax.load_ratings``.

The target (issue #3) is <= 20 s and <= 3 GB peak RSS on a 2-core machine.

The CSV (``userId,movieId,rating,timestamp``, ML-20M-like ID ranges and
half-star ratings) is generated into a temporary directory first, then each
load runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own and
not the generator's. Prints a table and appends a section to
``benchmarks/RESULTS.md`` (command, versions, machine).

    python benchmarks/bench_load.py [--lines 20000000] [--repeats 1] [--no-results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import _common as C  # noqa: E402  (machine and version lines shared by the benchmarks)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Runs in the child: load, then report seconds and peak RSS.
CHILD = r"""
import json, resource, sys, time, warnings
sys.path.insert(0, sys.argv[2])
from mfjax.data import load_ratings
t = time.perf_counter()
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    r = load_ratings(sys.argv[1])
seconds = time.perf_counter() - t
print(json.dumps({
    "seconds": seconds,
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
    "n": len(r), "n_users": r.n_users, "n_items": r.n_items,
    "warnings": [str(x.message) for x in w],
}))
"""


def write_csv(path: str, n: int, seed: int = 0) -> None:
    """An ML-20M-shaped ratings.csv with n lines of data, written in chunks."""
    rng = np.random.default_rng(seed)
    chunk = 2_000_000
    stars = np.array([f"{x / 2:.1f}" for x in range(11)], dtype=object)  # "0.0".."5.0"
    with open(path, "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            # Users sorted as in the real file; items and times random.
            u = np.sort(rng.integers(1, 138_494, m))
            i = rng.integers(1, 131_263, m)
            r = stars[rng.integers(1, 11, m)]
            t = rng.integers(789_652_009, 1_427_784_002, m)
            _write_chunk(f, u, i, r, t)


def _write_chunk(f, u, i, r, t) -> None:
    try:
        import pyarrow as pa
        import pyarrow.csv as pc
    except ImportError:  # pandas is slower (about a minute for 20M lines) but always there
        import pandas as pd

        text = pd.DataFrame({"u": u, "i": i, "r": r, "t": t}).to_csv(header=False, index=False)
        f.write(text.encode())
        return
    table = pa.table({"u": u, "i": i, "r": pa.array(r, pa.string()), "t": t})
    pc.write_csv(table, f, pc.WriteOptions(include_header=False, quoting_style="none"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=20_000_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="mfjax-bench-") as tmp:
        path = os.path.join(tmp, "ratings.csv")
        t = time.perf_counter()
        write_csv(path, args.lines)
        gen_s = time.perf_counter() - t
        size_mb = os.path.getsize(path) / 1e6
        print(f"generated {args.lines:,} lines ({size_mb:,.0f} MB) in {gen_s:.1f} s")
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", CHILD, path, ROOT],
                                 check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))

    best = min(runs, key=lambda x: x["seconds"])
    rows = [
        ("lines", f"{args.lines:,}"),
        ("file size", f"{size_mb:,.0f} MB"),
        ("ratings kept", f"{best['n']:,}"),
        ("users / items", f"{best['n_users']:,} / {best['n_items']:,}"),
        ("load time (best of %d)" % len(runs), f"{best['seconds']:.2f} s (target <= 20 s)"),
        ("all load times", ", ".join(f"{x['seconds']:.2f} s" for x in runs)),
        ("peak RSS", f"{max(x['peak_rss_gb'] for x in runs):.2f} GB (target <= 3 GB)"),
    ]
    if best["warnings"]:
        rows.append(("warnings", "; ".join(best["warnings"])))
    width = max(len(k) for k, _ in rows)
    table = "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
    header = f"| {'metric'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|"
    print(header + "\n" + table)

    if not args.no_results:
        command = "python benchmarks/bench_load.py" + "".join(
            f" {a}" for a in sys.argv[1:]
        )
        section = (
            f"\n## load_ratings: {args.lines:,}-line ratings.csv "
            f"({datetime.date.today().isoformat()})\n\n"
            f"- command: `{command}`\n- versions: {C.versions(extra=('pandas', 'pyarrow'))}\n- machine: {C.machine()}\n\n"
            f"{header}\n{table}\n"
        )
        results = os.path.join(HERE, "RESULTS.md")
        new = not os.path.exists(results)
        with open(results, "a") as f:
            if new:
                f.write("# Benchmark results\n")
            f.write(section)
        print(f"appended to {os.path.relpath(results, ROOT)}")


if __name__ == "__main__":
    main()
