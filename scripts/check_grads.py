"""Verify mfjax's gradients on this machine's JAX backend (the same as ``mfjax check-grads``;
see ``--help``). A thin wrapper over :mod:`mfjax.cli.check_grads`."""

import os
import sys

try:
    from mfjax.cli.check_grads import main
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from mfjax.cli.check_grads import main

if __name__ == "__main__":
    sys.exit(main())
