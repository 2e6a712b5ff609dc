"""Fuzz the rating-file readers: a long run of the pass in tests/test_robustness.py (issue #14).

Small valid files of each format (csv with header, tsv, ``::`` dat, u.data,
RecBole .inter, zip) are mutated (byte flips, truncation, quote insertion) and
read with ``mfjax.load_ratings``. Each outcome is counted as

- exact: the original ratings;
- valid: what the mutated text says, by an independent line-by-line reading;
- ValueError: an error whose message names the file;
- other: anything else (a bug).

Prints the counts (and the first few "other" cases) and appends a section to
``benchmarks/RESULTS.md`` (command, versions, machine). Exits 1 if any case
is "other".

    python benchmarks/bench_fuzz_readers.py [--cases 5000] [--seed 2026] [--no-results]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import _common as C  # noqa: E402  (puts the repository root on sys.path)

sys.path.insert(0, os.path.join(C.ROOT, "tests"))
from test_robustness import FUZZ_FORMATS, fuzz_case  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    fmts = list(FUZZ_FORMATS)
    counts = {f: {"exact": 0, "valid": 0, "error": 0, "other": 0} for f in fmts}
    others = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for j in range(args.cases):
            fmt = fmts[j % len(fmts)]
            outcome, detail = fuzz_case(rng, fmt, tmp)
            counts[fmt][outcome] += 1
            if outcome == "other":
                others.append(f"{fmt}: {detail}")
    seconds = time.perf_counter() - t0

    total = {k: sum(c[k] for c in counts.values()) for k in ("exact", "valid", "error", "other")}
    rows = [[f, sum(c.values()), c["exact"], c["valid"], c["error"], c["other"]]
            for f, c in counts.items()]
    rows.append(["all", args.cases, total["exact"], total["valid"], total["error"], total["other"]])
    table = C.markdown_table(
        ["format", "cases", "exact (original)", "valid (as the mutated text says)",
         "ValueError naming the file", "other"], rows)
    print(table)
    print(f"{args.cases} cases in {seconds:.1f} s")
    for o in others[:10]:
        print("OTHER", o)
    if not args.no_results:
        body = (f"{args.cases:,} cases (seed {args.seed}) in {seconds:.1f} s; mutations: one or two "
                f"random bytes replaced, the file cut short, or a '\"' inserted (header lines of "
                f"csv/tsv/inter are not mutated; zip archives anywhere).\n\n{table}\n")
        if others:
            body += "\nFirst 'other' cases:\n\n" + "\n".join(f"- `{o[:300]}`" for o in others[:5]) + "\n"
        C.append_results("reader fuzz pass (issue #14)", C.command_line("bench_fuzz_readers.py"),
                         body, extra_versions=("pandas",))
    return 1 if others else 0


if __name__ == "__main__":
    sys.exit(main())
