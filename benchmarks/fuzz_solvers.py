"""Fuzz the solvers: a long run of the solver fuzz pass in tests/test_robustness.py (issue #22).

Random small data (1-24 users, 1-19 items, values from 1e-30 to 1e30: star ratings,
constants, uniform, Zipf counts, zeros) and random extreme hyperparameters (rank 1-64,
reg 0 to 1e9, learning rates 1e-4 to 1e3, iALS alpha up to 1e4, unobserved_weight 0-10,
nu 0/1) for every model: ``mfjax.fit(train, solver=..., objective=..., **kwargs)`` with
explicit optax / als / gibbs, iALS with exact solves (cg_steps=0) and 3-step CG, and BPR.
Each outcome is counted as

- finite: a model whose every table is finite;
- ValueError / TypeError / FloatingPointError: a clear refusal (with a message);
- timeout: the case ran past ``--timeout`` seconds (run in a worker process, killed);
- other: anything else (non-finite tables, another exception): a bug.

Prints the counts per route and the first "other" cases, and appends a section to
``benchmarks/RESULTS.md`` (command, versions, machine). Exits 1 if any case is "other"
or "timeout".

    python benchmarks/fuzz_solvers.py [--cases 300] [--seed 2022] [--timeout 120] [--no-results]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time

import numpy as np

import _common as C  # noqa: E402  (puts the repository root on sys.path)

sys.path.insert(0, os.path.join(C.ROOT, "tests"))
from test_robustness import SOLVER_ROUTES, run_solver_case, solver_fuzz_case  # noqa: E402

OUTCOMES = ("finite", "ValueError", "TypeError", "FloatingPointError", "timeout", "other")


def _worker(conn, seed):
    while True:
        j = conn.recv()
        if j is None:
            return
        rng = np.random.default_rng([seed, j])
        route = SOLVER_ROUTES[j % len(SOLVER_ROUTES)]
        try:
            outcome, detail = run_solver_case(*solver_fuzz_case(rng, route))
        except BaseException as e:  # noqa: BLE001 - the generator itself failed: report it
            outcome, detail = "other", f"case {j}: {type(e).__name__}: {e}"
        conn.send((outcome, detail))


class Worker:
    """One process that runs cases in turn; killed and replaced when a case times out."""

    def __init__(self, seed):
        self.seed, self.proc = seed, None

    def run(self, j, timeout):
        if self.proc is None:
            self.conn, child = mp.Pipe()
            self.proc = mp.get_context("spawn").Process(target=_worker, args=(child, self.seed),
                                                        daemon=True)
            self.proc.start()
        self.conn.send(j)
        if self.conn.poll(timeout):
            return self.conn.recv()
        self.proc.kill()
        self.proc.join()
        self.proc = None
        return "timeout", f"case {j}: no answer in {timeout} s"

    def close(self):
        if self.proc is not None:
            self.conn.send(None)
            self.proc.join(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2022)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    routes = ["/".join(r) for r in SOLVER_ROUTES]
    counts = {r: dict.fromkeys(OUTCOMES, 0) for r in routes}
    bad, errors = [], {}
    worker = Worker(args.seed)
    t0 = time.perf_counter()
    try:
        for j in range(args.cases):
            outcome, detail = worker.run(j, args.timeout)
            counts[routes[j % len(routes)]][outcome] += 1
            if outcome in ("other", "timeout"):
                bad.append(detail)
            elif outcome != "finite":
                key = detail.split(": ", 1)[-1][:90]
                errors[key] = errors.get(key, 0) + 1
    finally:
        worker.close()
    seconds = time.perf_counter() - t0

    rows = [[r, sum(c.values()), *(c[o] for o in OUTCOMES)] for r, c in counts.items()]
    rows.append(["all", args.cases, *(sum(c[o] for c in counts.values()) for o in OUTCOMES)])
    table = C.markdown_table(["route (solver/objective)", "cases", *OUTCOMES], rows)
    common = sorted(errors.items(), key=lambda kv: -kv[1])[:8]
    print(table)
    print(f"{args.cases} cases in {seconds:.1f} s")
    for msg, n in common:
        print(f"{n:4d} x {msg}")
    for b in bad[:10]:
        print("BAD", b)
    if not args.no_results:
        body = (f"{args.cases:,} cases (seed {args.seed}, {args.timeout:g} s per case) in "
                f"{seconds:.1f} s; cases as in `tests/test_robustness.py::solver_fuzz_case`.\n\n"
                f"{table}\n\nMost frequent refusals (message start):\n\n"
                + "\n".join(f"- {n} x `{m}`" for m, n in common) + "\n")
        if bad:
            body += "\nFirst bad cases:\n\n" + "\n".join(f"- `{b[:300]}`" for b in bad[:5]) + "\n"
        C.append_results("solver fuzz pass (issue #22)", C.command_line("fuzz_solvers.py"), body)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
