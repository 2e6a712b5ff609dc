"""``mfjax build-kernels``: compile mfjax's C++ CPU kernels now, not on first use.

Each kernel (the fused gradient of the Optax solver on large data, the explicit ALS
half-step, the iALS half-step) is compiled once per machine, compiler and jaxlib into
the kernel cache (``$MFJAX_CACHE``, else ``$XDG_CACHE_HOME/mfjax`` or
``~/.cache/mfjax``, then ``/kernels``). ``pip install`` builds them too; this command
builds them again where the install could not (no compiler then) or after a jaxlib
upgrade, a compiler change or a move to another CPU. A fit never compiles: until they are
built it runs its XLA route and says so once. Exit status 0 when every kernel is usable,
1 when one failed to build.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import HelpFormatter, OneLineParser, UsageError, run_main

__all__ = ["DESCRIPTION", "KERNELS", "configure", "build_parser", "execute", "main"]

DESCRIPTION = ("Compile mfjax's C++ CPU kernels (once per machine, compiler and jaxlib; "
               "about 15 s each). pip install builds them; run this where it could not, or "
               "after a jaxlib upgrade. Fits never compile: without them they run the XLA "
               "routes and say so.")
#: name -> the wrapper module under mfjax.kernels.
KERNELS = {"fused": "fused", "als": "als", "ials": "ials"}


def configure(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``build-kernels``' flags to ``ap``."""
    ap.add_argument("kernels", nargs="*", metavar="KERNEL",
                    help=f"which to build: {', '.join(KERNELS)} (default: all)")
    return ap


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    return configure(OneLineParser(prog=prog, description=DESCRIPTION,
                                   formatter_class=HelpFormatter))


def run(args) -> int:
    import importlib

    from .. import kernels

    unknown = [k for k in args.kernels if k not in KERNELS]
    if unknown:
        raise UsageError(f"unknown kernel {unknown[0]!r}; choose from {', '.join(KERNELS)}")
    off = kernels.switched_off()
    if off:
        print(f"nothing built: kernels are {off}")
        return 0
    print(f"kernel cache: {kernels.cache_folder()}")
    failed = 0
    for name in args.kernels or KERNELS:
        module = importlib.import_module(f"..kernels.{KERNELS[name]}", __package__)
        t0 = time.perf_counter()
        reason = module.unavailable_reason()
        if reason is None:
            print(f"{name}: ready ({time.perf_counter() - t0:.1f} s)")
        else:
            failed += 1
            print(f"{name}: unavailable: {reason.splitlines()[0]}", file=sys.stderr)
    return 1 if failed else 0


def execute(args, prog: str = "mfjax build-kernels") -> int:
    return run_main(prog, lambda: run(args))


def main(argv=None, prog: str = "mfjax build-kernels") -> int:
    return execute(build_parser(prog).parse_args(argv), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
