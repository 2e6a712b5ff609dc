"""``mfjax.datasets``: kept as an import path; the code lives in :mod:`mfjax.data.datasets`.

Patch seams where they are defined (e.g. ``mfjax.data.download.urlopen``),
not here: this module only re-exports.
"""

from .data.datasets import *  # noqa: F401,F403
from .data.datasets import __all__  # noqa: F401
