"""``mfjax.split``: kept as an import path; the code lives in :mod:`mfjax.data.split`."""

from .data.split import *  # noqa: F401,F403
from .data.split import __all__  # noqa: F401
