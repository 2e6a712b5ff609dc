"""``mfjax check-grads`` (and ``scripts/check_grads.py``): verify mfjax's gradients on this
machine's JAX backend.

Runs :func:`mfjax.evaluation.gradcheck.check_gradient_terms` (hand-written vs autodiff vs
finite differences, plus ``jax.test_util.check_grads``) on random problems of several
shapes for the objective of every registered model (:mod:`mfjax.models`), and on a sample of real ratings when
``--data`` or ``--movielens`` is given. Prints one table per problem, the backend and
devices, and exits 1 if any check fails. This is how to vet a new accelerator.
"""

from __future__ import annotations

import argparse
import sys

from . import HelpFormatter, OneLineParser, UsageError, positive_int, run_main, seed
from .constants import OBJECTIVES

__all__ = ["DESCRIPTION", "EPILOG", "SHAPES", "configure", "build_parser", "execute", "main",
           "random_problem"]

DESCRIPTION = "Verify the gradients of every registered model's objective on this machine's JAX backend."
EPILOG = """examples:
  mfjax check-grads                  # float64, 4 shapes x every objective: all OK
  mfjax check-grads --objective ials # one objective
  mfjax check-grads --dtype float32  # looser float32 tolerances: all OK
  mfjax check-grads --movielens      # adds 300 ML-100K ratings (cached or fetched)
  mfjax check-grads --data ratings.csv --sample 500
"""

SHAPES = [  # (n_users, n_items, rank, n_ratings)
    (3, 3, 4, 9),
    (7, 11, 5, 40),
    (20, 15, 1, 60),
    (50, 40, 8, 300),
]


def configure(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``check-grads``' flags to ``ap``."""
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="default: %(default)s")
    ap.add_argument("--reg", type=float, default=0.05, help="default: %(default)s")
    ap.add_argument("--order", type=int, choices=[1, 2], default=2,
                    help="highest derivative order checked (default: %(default)s)")
    ap.add_argument("--data", help="a ratings file (any format mfjax.load_ratings reads)")
    ap.add_argument("--movielens", action="store_true", help="also check on ML-100K ratings")
    ap.add_argument("--sample", type=positive_int, default=300,
                    help="ratings sampled from real data (default: %(default)s)")
    ap.add_argument("--seed", type=seed, default=0)
    ap.add_argument("--objective", choices=["all", *OBJECTIVES], default="all")
    ap.add_argument("--shapes", type=positive_int, default=len(SHAPES),
                    help=f"use the first N of the {len(SHAPES)} random shapes")
    return ap


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """A standalone ``check-grads`` parser (``scripts/check_grads.py``)."""
    return configure(OneLineParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=HelpFormatter))


def random_problem(n_users, n_items, rank, n, seed, dtype):
    import jax
    import numpy as np

    import mfjax

    rng = np.random.default_rng(seed)
    p = mfjax.init_params(jax.random.PRNGKey(seed), n_users, n_items, rank, init_scale=0.5,
                          global_bias=3.0, dtype=dtype)
    p = p._replace(user_bias=jax.numpy.asarray(rng.normal(size=n_users), dtype),
                   item_bias=jax.numpy.asarray(rng.normal(size=n_items), dtype))
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    return p, users, items, rng.uniform(1, 5, n)


def run(args) -> int:
    import dataclasses

    import jax
    import numpy as np

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import mfjax  # after the x64 switch

    dtype = np.dtype(args.dtype)
    gradcheck = mfjax.evaluation.gradcheck
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    from mfjax import models

    names = models.objective_names() if args.objective == "all" else (args.objective,)
    records = {o: models.records_for(o)[0] for o in names}
    problems = [(f"random {s}", random_problem(*s, args.seed + j, dtype))
                for j, s in enumerate(SHAPES[:args.shapes])]
    try:
        if args.data:
            r = mfjax.load_ratings(args.data)
            problems.append((f"{args.data} sample",
                             gradcheck.sample_problem(r, args.sample, seed=args.seed, dtype=dtype)))
        if args.movielens:
            r = mfjax.datasets.movielens("100k")
            problems.append(("ML-100K sample",
                             gradcheck.sample_problem(r, args.sample, seed=args.seed, dtype=dtype)))
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise UsageError(f"could not load real ratings: {str(e).splitlines()[0]}") from None

    failed, n = [], 0
    for name, (p, u, i, r) in problems:
        for objective, record in records.items():
            # implicit: the ratings act as interaction values; triples: a random negative each.
            neg = np.random.default_rng(args.seed).integers(0, p.n_items, len(u))
            spec = record.spec()
            obj = record.objective_record
            hyper = {k: getattr(spec, k) for k in obj.hyper}
            hyper.update({k: args.reg for k in ("reg",) if k in hyper})
            point = getattr(record.parts, "gradient_point", None)
            q = p if point is None else point(jax.random.PRNGKey(args.seed), p.n_users,
                                              p.n_items, dataclasses.replace(spec, rank=p.rank),
                                              dtype)
            report = gradcheck.check_gradient_terms(obj, q, u, i, r, neg, hyper, order=args.order)
            print(f"\n== {name}, {objective}\n{report}")
            n += 1
            if not report.ok:
                failed.append(f"{name}, {objective}")
    print(f"\n{n - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def execute(args, prog: str = "mfjax check-grads") -> int:
    """Run parsed ``args``: 0 all passed, 1 a check failed, 2 bad input."""
    return run_main(prog, lambda: run(args))


def main(argv=None, prog: str = "check_grads.py") -> int:
    """``scripts/check_grads.py``: parse ``argv`` and check."""
    return execute(build_parser(prog).parse_args(argv), prog=prog)


if __name__ == "__main__":
    sys.exit(main(prog="mfjax check-grads"))
