"""Train an mfjax model: the main job (the same as ``mfjax train``; see ``--help``).

A thin wrapper over :mod:`mfjax.cli.train`, kept so ``python scripts/train.py`` works
from a checkout. The flags, defaults and examples are in ``mfjax train --help``.
"""

import os
import sys

try:
    from mfjax.cli.train import main, remove_empty_tree  # noqa: F401 (tests use it)
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from mfjax.cli.train import main, remove_empty_tree  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
