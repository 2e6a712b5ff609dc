"""Top-N recommendations or similar items from a trained model (the same as
``mfjax recommend``; see ``--help``). A thin wrapper over :mod:`mfjax.cli.recommend`."""

import os
import sys

try:
    from mfjax.cli.recommend import main
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from mfjax.cli.recommend import main

if __name__ == "__main__":
    sys.exit(main())
