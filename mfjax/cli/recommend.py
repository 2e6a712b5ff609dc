"""``mfjax recommend`` (and ``scripts/recommend.py``): top-N items or similar items from a trained model.

Reads a ``model.npz`` written by ``mfjax train`` (or ``Model.save``) and
prints a ranked list. Titles come from the MovieLens item file when the model
was trained on MovieLens: ``--titles auto`` reads ``metrics.json`` beside the
model (its ``config.data``, e.g. ``movielens-100k``) and uses the cached copy
of the dataset (never downloads); ``--titles 100k`` etc. name the variant.

Examples (model from ``mfjax train --out runs/ml100k``, defaults):
    mfjax recommend --model runs/ml100k/model.npz --user 196 -n 5
        top 5 for user 196 (items rated in training excluded):
         rank  item  score  title
            1    64  4.725  Shawshank Redemption, The (1994)
            2   313  4.632  Titanic (1997)
            3   197  4.620  Graduate, The (1967)
            4   178  4.567  12 Angry Men (1957)
            5   478  4.566  Philadelphia Story, The (1940)
    mfjax recommend --model runs/ml100k/model.npz --similar-to 50 -n 3
        3 items most similar to item 50, Star Wars (1977) (cosine on item factors):
         rank  item  cosine  title
            1   172   0.856  Empire Strikes Back, The (1980)
            2   181   0.785  Return of the Jedi (1983)
            3   174   0.569  Raiders of the Lost Ark (1981)
    mfjax recommend --model runs/ml100k/model.npz --user 99999
        mfjax recommend: error: unknown user 99999: the model has 943 users (IDs 1 ... 943)
        (exit code 2)

Scores are the model's predicted ratings μ + b_u + b_i + <p_u, q_i>, not
clipped to the rating range (so the order at the top is kept). A user or item
the model does not know is an error here (exit 2); in Python,
``model.recommend`` gives an unknown user the items with the best item bias.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import HelpFormatter, OneLineParser, UsageError, positive_int, run_main

TITLE_CHOICES = ["auto", "none", "100k", "1m", "10m", "20m", "25m", "32m", "latest-small"]


DESCRIPTION = "Recommend items, or list similar items, with a trained mfjax model."


def configure(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``recommend``'s flags to ``ap``."""
    ap.add_argument("--model", required=True, metavar="PATH", help="a model.npz")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--user", metavar="ID", help="recommend for this raw user ID")
    what.add_argument("--similar-to", metavar="ITEM", help="list items similar to this raw item ID")
    ap.add_argument("-n", type=positive_int, default=10, help="list length")
    ap.add_argument("--include-seen", action="store_true",
                    help="also rank the items the user rated in training")
    ap.add_argument("--titles", choices=TITLE_CHOICES, default="auto",
                    help="MovieLens variant whose titles to show; auto: from metrics.json "
                         "beside the model (cached data only)")
    return ap


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """A standalone ``recommend`` parser (``scripts/recommend.py``)."""
    return configure(OneLineParser(prog=prog, description=DESCRIPTION,
                                   formatter_class=HelpFormatter))


def parse_id(text: str, ids, what: str):
    """A raw ID typed on the command line, as the model stores it (int or str)."""
    import numpy as np

    if np.issubdtype(np.asarray(ids).dtype, np.integer):
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{what} {text!r} is not an ID of this model (its {what} IDs are "
                             "integers)") from None
    return text


def check_known(raw, ids, what: str):
    import pandas as pd

    if pd.Index(ids).get_indexer([raw])[0] < 0:
        shown = f"IDs {ids[0]} ... {ids[-1]}" if len(ids) else "no IDs"
        raise UsageError(f"unknown {what} {raw!r}: the model has {len(ids):,} {what}s ({shown})")


def titles_for(model_path: str, choice: str) -> dict:
    """{raw item ID: title}, or {} where there are none."""
    if choice == "none":
        return {}
    from .. import datasets

    download = choice != "auto"
    variant = choice
    if choice == "auto":
        meta = os.path.join(os.path.dirname(os.path.abspath(model_path)), "metrics.json")
        try:
            with open(meta) as f:
                data = json.load(f).get("config", {}).get("data")
        except (OSError, ValueError, AttributeError):
            return {}
        if not isinstance(data, str) or not data.startswith("movielens-"):
            return {}
        variant = data.removeprefix("movielens-")
        if variant not in datasets.VARIANTS:
            return {}
    try:
        items = datasets.movielens_items(variant, download=download)
    except OSError as e:
        if choice == "auto":
            print(f"note: no titles ({type(e).__name__}: {str(e).splitlines()[0]})",
                  file=sys.stderr)
            return {}
        raise UsageError(f"--titles {choice}: {str(e).splitlines()[0]}") from None
    return dict(zip(items["item_id"].tolist(), items["title"].tolist()))


def print_table(ids, values, titles: dict, value_name: str):
    ids = [x.item() if hasattr(x, "item") else x for x in ids]
    wi = max([4] + [len(str(x)) for x in ids])
    wv = max(5, len(value_name))
    head = f" rank  {'item':>{wi}}  {value_name:>{wv}}"
    print(f"{head}  title" if titles else head)
    for rank, (item, v) in enumerate(zip(ids, values), 1):
        line = f" {rank:4d}  {item!s:>{wi}}  {v:{wv}.3f}"
        print(f"{line}  {titles.get(item, '')}".rstrip() if titles else line)


def run(args) -> int:
    from ..serving.model import load_model

    model = load_model(args.model)
    titles = titles_for(args.model, args.titles)
    if args.user is not None:
        user = parse_id(args.user, model.user_ids, "user")
        check_known(user, model.user_ids, "user")
        ids, scores = model.recommend(user, args.n, exclude_seen=not args.include_seen)
        seen = "included" if args.include_seen else "excluded"
        print(f"top {len(ids)} for user {user} (items rated in training {seen}):")
        print_table(ids, scores, titles, "score")
    else:
        item = parse_id(args.similar_to, model.item_ids, "item")
        check_known(item, model.item_ids, "item")
        ids, sims = model.similar_items(item, args.n)
        name = f", {titles[item]}" if item in titles else ""
        print(f"{len(ids)} items most similar to item {item}{name} (cosine on item factors):")
        print_table(ids, sims, titles, "cosine")
    return 0


def execute(args, prog: str = "mfjax recommend") -> int:
    """Run parsed ``args``; errors as one line (:func:`run_main`)."""
    return run_main(prog, lambda: run(args), (UsageError, OSError, ValueError, KeyError))


def main(argv=None, prog: str = "recommend.py") -> int:
    """``scripts/recommend.py``: parse ``argv`` and print the list."""
    return execute(build_parser(prog).parse_args(argv), prog=prog)
