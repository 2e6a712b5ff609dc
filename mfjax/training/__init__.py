"""Training: ``fit``, the model-agnostic epoch loop, and what it is made of.

=================== =========================================================
module              owns
=================== =========================================================
``loop``            :func:`fit`: validation, early stopping, checkpoints, progress
``config``          the spec from ``fit``'s arguments, every ``"auto"`` (asked of
                    the model's record), the memory check
``checkpoint``      atomic checkpoints of any solver's state
=================== =========================================================

The models (spec, solver, resolution of ``"auto"``) are the packages of
:mod:`mfjax.models`; this layer asks their records and names none of them.
"""
from .checkpoint import Best, load_checkpoint, save_checkpoint
from .config import Hardware, Run, detect_hardware, resolve, scatter_add_is_slow, spec_for
from .loop import fit

__all__ = ["fit", "Hardware", "Run", "detect_hardware", "resolve", "spec_for",
           "scatter_add_is_slow", "Best", "save_checkpoint", "load_checkpoint"]
