"""The spec base: what every model spec is, and the field checks they share.

A spec says *what* to train; :func:`mfjax.fit` trains it. Each model's spec class lives
in its package (:mod:`mfjax.models`: ``mfjax.models.als.spec.ALS``, ...) and subclasses
:class:`Spec`, a frozen dataclass whose every field has a documented default, is checked
when the spec is built (``MF(rank=-3)`` raises there, naming the field, not inside jit),
and applies to its model (no spec carries a field its solver ignores). Specs compare,
hash, print and ``dataclasses.replace`` like any frozen dataclass, and round-trip
through JSON (:meth:`Spec.to_dict`, :func:`mfjax.models.spec_from_dict`), which is how
models and checkpoints store them.

A field documented as ``"auto"`` or ``None`` is resolved by ``fit`` from the data and
the hardware (by the model package's ``resolve``); ``model.spec`` holds the resolved spec.
"""
from __future__ import annotations

from .base import MAX_EPOCHS, MAX_RANK, MAX_SEED, Recorded, Spec

__all__ = ["Spec", "Recorded", "MAX_RANK", "MAX_SEED", "MAX_EPOCHS"]
