"""``mfjax evaluate``: a saved model's metrics on a ratings file.

Explicit models: RMSE and MAE of the clipped predictions on ``--data`` (raw user and
item IDs matched to the model's; unknown ones use the model's fallbacks and are
counted), plus top-k precision/recall/NDCG when ``--train`` names the training ratings
(their items are excluded from each user's list; relevant: rating >= ``--threshold``).
Implicit models (iALS, BPR): the ranking metrics, which need ``--train``.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import HelpFormatter, OneLineParser, UsageError, flag_words, positive_int, run_main

__all__ = ["DESCRIPTION", "EPILOG", "configure", "build_parser", "execute", "main"]

DESCRIPTION = "Print a saved model's RMSE/MAE or ranking metrics on a ratings file."
EPILOG = """examples:
  mfjax evaluate --model runs/ml100k/model.npz --data test.csv
  mfjax evaluate --model runs/ml100k/model.npz --data test.csv --train train.csv -k 10
  mfjax evaluate --model runs/ials/model.npz --data test.csv --train train.csv --threshold none
"""

FLAGS = {"user_col": "--user-col", "item_col": "--item-col", "rating_col": "--rating-col",
         "time_col": "--time-col", "format": "--format", "k": "-k", "threshold": "--threshold"}


def threshold(text):
    """An argparse type: a number, or ``none`` (every test rating relevant)."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'none'") from None


def configure(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``evaluate``'s flags to ``ap``."""
    ap.add_argument("--model", required=True, metavar="PATH", help="a model.npz")
    ap.add_argument("--data", required=True, metavar="PATH",
                    help="held-out ratings (any format mfjax.load_ratings reads)")
    ap.add_argument("--train", metavar="PATH",
                    help="the training ratings: their items are excluded from the top-k lists "
                         "(needed for ranking metrics)")
    ap.add_argument("--format", default="auto", help="format of --data and --train")
    for col in ("user", "item", "rating", "time"):
        ap.add_argument(f"--{col}-col", help=f"name of the {col} column in the files")
    ap.add_argument("-k", type=positive_int, default=10, help="list length (default: 10)")
    ap.add_argument("--threshold", type=threshold, default=None,
                    help="a test rating >= this is relevant; 'none': every one (default: 4 "
                         "for explicit models, none for implicit ones)")
    ap.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    return ap


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    return configure(OneLineParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=HelpFormatter))


def run(args) -> int:
    import mfjax

    model = mfjax.load_model(args.model)
    cols = {f"{k}_col": getattr(args, f"{k}_col") for k in ("user", "item", "rating", "time")}
    cols = {k: v for k, v in cols.items() if v}
    test = mfjax.load_ratings(args.data, format=args.format, **cols)
    train = mfjax.load_ratings(args.train, format=args.format, **cols) if args.train else None
    implicit = model.objective.ranking
    metrics = {}
    if not implicit:
        metrics.update(mfjax.evaluate(model, test))
    elif train is None:
        raise UsageError("an implicit model is scored by ranking metrics, which need --train "
                         "(the training interactions, excluded from each user's list)")
    if train is not None:
        cut = args.threshold if args.threshold is not None or implicit else 4.0
        metrics.update(mfjax.evaluate_ranking(model, train, test, k=args.k, threshold=cut))
        metrics["threshold"] = cut
    if args.json:
        print(json.dumps(metrics))
        return 0
    if "rmse" in metrics:
        print(f"RMSE {metrics['rmse']:.4f}  MAE {metrics['mae']:.4f}  ({metrics['n']:,} ratings; "
              f"unknown users {metrics['n_unknown_users']:,}, items "
              f"{metrics['n_unknown_items']:,})")
    k = args.k
    if f"ndcg@{k}" in metrics:
        print(f"precision@{k} {metrics[f'precision@{k}']:.4f}  recall@{k} "
              f"{metrics[f'recall@{k}']:.4f}  ndcg@{k} {metrics[f'ndcg@{k}']:.4f}  "
              f"({metrics['n_users']:,} users)")
    elif not implicit:
        print("(ranking metrics: pass --train, the ratings the model was trained on)")
    return 0


def execute(args, prog: str = "mfjax evaluate") -> int:
    return run_main(prog, lambda: run(args), translate=lambda text: flag_words(text, FLAGS))


def main(argv=None, prog: str = "mfjax evaluate") -> int:
    return execute(build_parser(prog).parse_args(argv), prog=prog)


if __name__ == "__main__":
    sys.exit(main())
