"""The result of :func:`mfjax.search`: :class:`SearchResult` (its table, the best spec
and model, the trials' routes) and its plot."""
from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

__all__ = ["SearchResult"]


@dataclasses.dataclass
class SearchResult:
    """What :func:`mfjax.search` found.

    Attributes:
        table: one row per trial, best first: the varied fields, the metric,
            ``fit_s`` (the trial's share of its vectorized group's time, or its fit's
            time), ``route`` (``vectorized``, ``sequential`` or ``cross-validated``),
            ``trial`` (the order trials were drawn in) and ``error`` (None, or why the
            trial has no model: its training became non-finite; its metric is then NaN
            and it ranks last); with ``folds``, also ``<metric>_std`` over the folds.
        best: the best trial's spec (unresolved: as given, with the varied values).
        metric: the metric name; ``lower_is_better`` its direction.
        model: with ``refit=True``, the best spec fit on ``train`` alone (the
            validation set is not merged in); else None.
        routes: each ``route`` label -> what it ran, in words (said once, not per row).
    """

    table: pd.DataFrame
    best: Any
    metric: str
    lower_is_better: bool
    fields: tuple
    model: Any = None
    routes: dict = dataclasses.field(default_factory=dict)

    def plot(self, path=None):
        """The metric against each varied field (one panel per field; matplotlib).

        Args:
            path: a file to save the figure to (PNG, SVG...), or None.

        Returns:
            The matplotlib Figure.
        """
        try:
            import matplotlib

            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("SearchResult.plot needs matplotlib: "
                              "pip install 'mfjax[plot]'") from e
        n = len(self.fields)
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
        t = self.table
        for ax, f in zip(axes[0], self.fields):
            x = t[f]
            numeric = pd.api.types.is_numeric_dtype(x)
            xs = x if numeric else x.astype(str)
            others = [g for g in self.fields if g != f]
            n_lines = t.groupby(others).ngroups if others else 1
            if numeric and n_lines <= 8 and len(t) > n_lines:  # a line per other setting
                for key, sub in (t.groupby(others, sort=True) if others else [((), t)]):
                    sub = sub.sort_values(f)
                    key = key if isinstance(key, tuple) else (key,)
                    label = ", ".join(f"{g}={v:g}" if isinstance(v, (int, float)) else f"{g}={v}"
                                      for g, v in zip(others, key))
                    ax.plot(sub[f], sub[self.metric], marker="o", label=label)
                if others:
                    ax.legend(fontsize=7)
            else:
                ax.scatter(xs, t[self.metric])
            if numeric and x.min() > 0 and x.max() / x.min() >= 20:
                ax.set_xscale("log")
            b = t.iloc[0]
            ax.scatter([b[f]], [b[self.metric]], s=140, facecolors="none", edgecolors="red",
                       zorder=5, label=None)
            ax.set_xlabel(f)
            ax.set_ylabel(self.metric)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{type(self.best).__name__}: {self.metric} "
                     f"({'lower' if self.lower_is_better else 'higher'} is better; best circled)")
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig
