"""``mfjax search``: hyperparameter search over spec fields (:mod:`mfjax.cli.selection`)."""
from __future__ import annotations

import sys

from . import run_main
from .selection import add_search_arguments, library_words, run_search

__all__ = ["DESCRIPTION", "configure", "execute", "main"]

DESCRIPTION = "Hyperparameter search over spec fields (mfjax.search), on a per-user validation split of the ratings file; prints the trials best first."


def configure(p):
    """Add the ``search`` arguments to ``p``."""
    add_search_arguments(p)


def execute(args, prog: str = "mfjax search") -> int:
    return run_main(prog, lambda: run_search(args), translate=library_words)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="mfjax search", description=DESCRIPTION)
    configure(p)
    return execute(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
