"""Shared plumbing of the command-line scripts (``scripts/*.py``): parsing and errors.

Every script reports a bad argument or file as one line on stderr and exits with
status 2 (``OneLineParser``, :func:`run_main`); a training run that diverges exits 1.
The scripts stay thin ``argparse`` wrappers over library functions.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable

__all__ = ["OneLineParser", "UsageError", "positive", "positive_int", "non_negative", "fraction",
           "run_main"]


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A problem with the command line or the files: printed as one line, exit 2."""


def positive(cast, minimum=None):
    """An argparse type: ``cast(text)``, finite and > 0 (or >= ``minimum``)."""
    def check(text):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {cast.__name__}") from None
        ok = v >= minimum if minimum is not None else v > 0
        if not (ok and math.isfinite(v)):
            raise argparse.ArgumentTypeError(
                f"must be {'>= ' + str(minimum) if minimum is not None else '> 0'}, got {text}")
        return v
    return check


#: An argparse type: an integer >= 1.
positive_int = positive(int, 1)


def non_negative(text):
    """An argparse type: a finite number >= 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def fraction(text):
    """An argparse type: a number in (0, 1)."""
    v = non_negative(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return v


def run_main(prog: str, run: Callable[[], int], errors=(UsageError, OSError, ValueError, KeyError,
                                                        RuntimeError)) -> int:
    """Call ``run()``; print ``errors`` as one line ``prog: error: ...`` and return 2.

    A ``FloatingPointError`` (training diverged) prints its whole message and returns 1.
    """
    try:
        return run()
    except FloatingPointError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except errors as e:
        text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        text = str(text).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
