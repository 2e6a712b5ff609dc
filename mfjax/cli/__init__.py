"""The ``mfjax`` command (``python -m mfjax``) and its shared plumbing: parsing and errors.

Subcommands, one module each (``scripts/*.py`` are thin wrappers over the same functions):

- ``train`` (:mod:`.train`): fit a model, print test metrics, write ``model.npz``,
  ``metrics.json`` and ``learning_curve.png`` (the README's main job);
- ``recommend`` (:mod:`.recommend`): top-N for a user or similar items;
- ``evaluate`` (:mod:`.evaluate`): a saved model's metrics on a ratings file;
- ``check-grads`` (:mod:`.check_grads`): verify the gradients on this backend;
- ``build-kernels`` (:mod:`.build_kernels`): compile the C++ CPU kernels now.

Every command reports a bad argument or file as one line on stderr and exits with
status 2 (``OneLineParser``, :func:`run_main`), in the words of its flags
(:func:`flag_words`); a training run that diverges exits 1. Building the parsers
imports neither JAX nor mfjax's numerical modules, so ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import re
import signal
import sys
import threading
from typing import Callable

__all__ = ["OneLineParser", "UsageError", "positive", "positive_int", "non_negative", "fraction",
           "seed", "flag_words", "HelpFormatter", "run_main", "build_parser", "main", "COMMANDS",
           "INTERRUPTED", "interrupt_exits", "on_interrupt"]

#: Subcommand -> (module under mfjax.cli, one-line help).
COMMANDS = {
    "train": ("train", "train a model (default: the README's main job, ML-100K)"),
    "recommend": ("recommend", "top-N items for a user, or items similar to an item"),
    "evaluate": ("evaluate", "a saved model's accuracy or ranking metrics on a ratings file"),
    "check-grads": ("check_grads", "verify mfjax's gradients on this JAX backend"),
    "build-kernels": ("build_kernels", "compile the C++ CPU kernels (the install does; again after a jaxlib upgrade)"),
    "cv": ("cv", "k-fold cross-validation of one spec"),
    "search": ("search", "grid or random hyperparameter search over spec fields"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Help that keeps the examples' line breaks and shows each flag's default, once: not
    where the help text already names it, nor when it is None (no default)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


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


#: The largest --seed (NumPy and JAX take seeds below 2**63 as one 64-bit integer).
MAX_SEED = 2**63 - 1


def seed(text):
    """An argparse type: an integer seed in [0, 2**63 - 1]."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= v <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63 - 1], got {text}")
    return v


def flag_words(message: str, flags: dict[str, str]) -> str:
    """``message`` with the library's keyword words (``pass user_col=``, ``gradient='fused'``)
    replaced by the command-line flags that set them (``--user-col``, ``--gradient fused``).

    Args:
        message: an error message of the library.
        flags: keyword -> flag, e.g. ``{"user_col": "--user-col"}``.
    """
    if not flags:
        return message
    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    # "pass keyword=None" -> "drop --flag"; keyword='value' -> --flag value; a bare
    # "pass keyword=" -> "pass --flag VALUE".
    message = re.sub(rf"\b(?:pass )?({names})=None\b", lambda m: f"drop {flags[m.group(1)]}",
                     message)
    message = re.sub(rf"\b({names})=('?)([\w\-][\w.\-]*)\2",
                     lambda m: f"{flags[m.group(1)]} {m.group(3)}", message)
    message = re.sub(rf"\b({names})=", lambda m: f"{flags[m.group(1)]} VALUE", message)
    return re.sub(rf"\b({names})\b(?=/)|(?<=/)({names})\b",
                  lambda m: flags[m.group(1) or m.group(2)], message)


def run_main(prog: str, run: Callable[[], int], errors=(UsageError, OSError, ValueError, KeyError,
                                                        RuntimeError, OverflowError, TypeError),
             translate: Callable[[str], str] | None = None) -> int:
    """Call ``run()``; print ``errors`` as one line ``prog: error: ...`` and return 2.

    A ``FloatingPointError`` (training diverged) prints its whole message and returns 1.
    ``translate`` re-words a message for the command line (see :func:`flag_words`).
    """
    translate = translate or (lambda text: text)
    try:
        return run()
    except FloatingPointError as e:
        print(f"{prog}: error: {translate(str(e))}", file=sys.stderr)
        return 1
    except errors as e:
        text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        text = str(text).strip()
        msg = text.splitlines()[0] if text else type(e).__name__
        print(f"{prog}: error: {translate(msg)}", file=sys.stderr)
        return 2


#: Exit status after Ctrl-C (128 + SIGINT), as a shell reports a command killed by it.
INTERRUPTED = 130

_CLEANUPS: list = []  # callbacks of the innermost interrupt_exits scope


def on_interrupt(callback: Callable[[], None]) -> None:
    """Have ``callback()`` run if Ctrl-C ends the process inside :func:`interrupt_exits`
    (e.g. removing the empty folder a run created); a no-op outside one."""
    _CLEANUPS.append(callback)


@contextlib.contextmanager
def interrupt_exits(prog: str):
    """Within this block, Ctrl-C (SIGINT) ends the process at once: one line
    ``<prog>: interrupted`` on stderr and exit status :data:`INTERRUPTED`.

    Python's default raises KeyboardInterrupt wherever the main thread is. In a JAX
    program that is often inside JAX's garbage-collection callback, where it is
    printed as "Exception ignored" and training runs on; raised just after an XLA
    compile, the interpreter's teardown can then crash (SIGSEGV). This handler raises
    nothing: it runs the :func:`on_interrupt` callbacks and leaves with ``os._exit``.
    mfjax writes its files atomically, so none is half-written (a temporary left
    behind is removed by the next write into its folder). Only in the main thread;
    the previous handler comes back after the block.

    Yields:
        A dict whose ``"prog"`` the block may change (once the command is known).
    """
    scope = {"prog": prog}
    if threading.current_thread() is not threading.main_thread():
        yield scope
        return

    def handler(signum, frame):
        try:
            for callback in reversed(_CLEANUPS):
                with contextlib.suppress(Exception):
                    callback()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            os.write(2, f"{scope['prog']}: interrupted\n".encode())
        finally:
            os._exit(INTERRUPTED)

    previous = signal.signal(signal.SIGINT, handler)
    depth = len(_CLEANUPS)
    try:
        yield scope
    finally:
        signal.signal(signal.SIGINT, previous)
        del _CLEANUPS[depth:]


def command_module(name: str):
    """The module of subcommand ``name`` (light: it imports JAX only when run)."""
    return importlib.import_module(f".{COMMANDS[name][0]}", __name__)


def build_parser() -> argparse.ArgumentParser:
    """The ``mfjax`` parser: one subparser per :data:`COMMANDS` entry."""
    ap = OneLineParser(prog="mfjax", description="Matrix-factorization recommenders in JAX. "
                       "Run 'mfjax COMMAND --help' for a command's flags.")
    ap.add_argument("--version", action="version", version=f"mfjax {_version()}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        module = command_module(name)
        p = sub.add_parser(name, help=help_text, description=module.DESCRIPTION,
                           epilog=getattr(module, "EPILOG", None),
                           formatter_class=HelpFormatter)
        module.configure(p)
    return ap


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mfjax")
    except PackageNotFoundError:
        return "0.1.0 (not installed)"


def main(argv=None) -> int:
    """``mfjax COMMAND ...`` (the console script and ``python -m mfjax``); Ctrl-C exits
    with status 130 and one line (:func:`interrupt_exits`)."""
    with interrupt_exits("mfjax") as scope:
        args = build_parser().parse_args(argv)
        scope["prog"] = f"mfjax {args.command}"
        return command_module(args.command).execute(args, prog=f"mfjax {args.command}")
