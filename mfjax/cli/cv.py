"""``mfjax cv``: k-fold cross-validation of one spec (:mod:`mfjax.cli.selection`)."""
from __future__ import annotations

import sys

from . import run_main
from .selection import add_cv_arguments, library_words, run_cv

__all__ = ["DESCRIPTION", "configure", "execute", "main"]

DESCRIPTION = "K-fold cross-validation of one spec (mfjax.cross_validate): a per-fold table of the metrics with Surprise-style mean and std."


def configure(p):
    """Add the ``cv`` arguments to ``p``."""
    add_cv_arguments(p)


def execute(args, prog: str = "mfjax cv") -> int:
    return run_main(prog, lambda: run_cv(args), translate=library_words)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="mfjax cv", description=DESCRIPTION)
    configure(p)
    return execute(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
