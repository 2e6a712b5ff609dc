"""The learning curve of a training run (``learning_curve.png``).

Two panels sharing the epoch axis: the training objective per epoch (top) and the
held-out metric (bottom: RMSE for explicit ratings, NDCG@10 and recall@20 for
iALS/BPR), each with a legend; the title names the data set, the model and the split.
The held-out set is called what it is: ``test`` unless ``--patience`` carved a
validation split out of the training data.
"""

from __future__ import annotations

import math
import sys

from ..plumbing import atomic_write

__all__ = ["plot_curve", "model_summary", "HELDOUT_METRICS"]

#: history key -> legend label, per objective kind.
HELDOUT_METRICS = {
    "explicit": {"val_rmse": "RMSE", "val_mae": "MAE"},
    "implicit": {"val_ndcg@10": "NDCG@10", "val_recall@20": "recall@20"},
}


def model_summary(model) -> dict:
    """``{"objective", "model", "rank"}`` of a trained model, from its spec and objective."""
    spec = model.spec
    return {"objective": model.objective.name, "ranking": model.objective.ranking,
            "model": type(spec).__name__, "rank": spec.rank}


def describe(summary: dict) -> str:
    """'MF, rank 128' / 'ImplicitALS, rank 64' / 'BayesianMF, rank 10'."""
    return f"{summary['model']}, rank {summary['rank']}"


def plot_curve(history, path, *, data: str, summary: dict, split: str,
               heldout: str = "test") -> bool:
    """Write the learning curve of ``history`` (``fit``'s per-epoch records) to ``path``.

    Args:
        history: ``model.history``: dicts with ``epoch``, ``loss`` and ``val_*`` keys.
        path: the PNG to write (atomically).
        data: the data set's name for the title.
        summary: :func:`model_summary` of the model.
        split: the test split's words (e.g. "holdout 20%").
        heldout: ``"test"`` or ``"validation"``: what the ``val_*`` keys were scored on.

    Returns:
        False (with a note on stderr) when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        print("note: matplotlib is not installed; skipping learning_curve.png "
              "(pip install 'mfjax[plot]')", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    kind = "implicit" if summary["ranking"] else "explicit"
    metrics = {k: v for k, v in HELDOUT_METRICS[kind].items()
               if any(k in h for h in history)}
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(2 if metrics else 1, 1, figsize=(6.4, 5.6 if metrics else 3.4),
                             sharex=True, squeeze=False)
    top = axes[0][0]
    top.plot(epochs, [h["loss"] for h in history], "C0-o", ms=3, label="training objective")
    top.set_ylabel("objective per " + ("rating" if kind == "explicit" else "interaction"))
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    if metrics:
        bottom = axes[1][0]
        for n, (key, label) in enumerate(metrics.items()):
            bottom.plot(epochs, [h.get(key, math.nan) for h in history], f"C{n + 1}-s", ms=3,
                        label=f"{heldout} {label}")
        bottom.set_ylabel(f"{heldout} metric")
        bottom.legend(loc="best")
        bottom.grid(alpha=0.3)
    axes[-1][0].set_xlabel("epoch")
    axes[-1][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    heldout_words = ("test set" if heldout == "test"
                     else "validation split of the training data")
    top.set_title(f"{data}: {describe(summary)}\n{split} split; held-out curve on the "
                  f"{heldout_words}", fontsize=10)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return True
