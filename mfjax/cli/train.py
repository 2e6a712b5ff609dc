"""``mfjax train`` (and ``scripts/train.py``): train a matrix-factorization model, the main job.

With no arguments it trains the Optax MF model (rank 128, Adam, 25 epochs) on
MovieLens-100K (20% holdout, seed 0), shows a progress bar, prints the JAX backend, the
test RMSE/MAE and the test precision/recall/NDCG@10 (relevant: rating >= 4; training
items excluded), and writes ``runs/<timestamp>/{model.npz, metrics.json,
learning_curve.png}``. ``--solver gibbs`` trains what ``mfjax.fit(train)`` picks by
default on data of this size (Bayesian MF by Gibbs sampling: RMSE ~0.892 vs ~0.903).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from . import (HelpFormatter, OneLineParser, UsageError, fraction, interrupt_exits, non_negative,
               on_interrupt, positive, run_main, seed)
from .constants import (
    ALS_DEFAULTS,
    DATASETS,
    DEFAULTS,
    GIBBS_DEFAULTS,
    GRADIENTS,
    OBJECTIVES,
    OPTIMIZERS,
    SOLVERS)
from .runfiles import RUN_FILES, add_feature_arguments, remove_empty_tree, train_and_report

__all__ = ["DESCRIPTION", "EPILOG", "configure", "build_parser", "execute", "main", "run",
           "remove_empty_tree", "FLAGS"]

DESCRIPTION = """Train a matrix-factorization recommender with mfjax.

With no flags: Optax MF (rank 128, Adam, 25 epochs) on MovieLens-100K, 20% holdout:
test RMSE ~0.903 in about 15 s on 2 CPU cores. mfjax.fit(train) without a model picks
Bayesian MF by Gibbs at this size (--solver gibbs: RMSE ~0.892, ~9 s)."""
EPILOG = """examples (2-core CPU; results from runs recorded in benchmarks/RESULTS.md):
  mfjax train
      # ML-100K, defaults: test RMSE ~0.903, MAE ~0.710; precision@10 ~0.055, NDCG@10 ~0.060
  mfjax train --solver gibbs
      # Bayesian MF by Gibbs (fit()'s default at this size): RMSE ~0.892, ~9 s
  mfjax train --solver als --rank 10 --reg 0.05 --epochs 10
  mfjax train --patience 3 --epochs 100
      # early stopping on a validation split carved from the training data
  mfjax train --dataset synthetic --synthetic-size 2000 1000 200000
  mfjax train --data ratings.csv --user-col uid --item-col iid --rating-col stars
  mfjax train --objective ials --dataset movielens-1m --min-rating 4
      # implicit feedback (ratings >= 4 as interactions): NDCG@10 ~0.319, recall@20 ~0.343 (hits / min(20, |relevant|))
  mfjax train --objective bpr --dataset movielens-1m --min-rating 4   # NDCG@10 ~0.245
  mfjax train --user-features users.csv --item-features items.csv --multi-valued genres='|'
      # side information, for a model that takes features (others refuse the flags)
  mfjax train --check-grads --platform gpu
  mfjax train --mesh auto        # data-parallel over every local device
  # two hosts (one line on each; process 0 writes the outputs):
  mfjax train --coordinator host0:1234 --num-processes 2 --process-id 0
  mfjax train --coordinator host0:1234 --num-processes 2 --process-id 1
"""

#: Library keywords -> the flags that set them (error messages are re-worded with these).
FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "user_col", "item_col", "rating_col", "time_col", "format", "rank", "reg", "bias_reg",
    "alpha", "unobserved_weight", "nu", "cg_steps", "epochs", "batch_size", "learning_rate",
    "optimizer", "schedule", "gradient", "patience", "seed", "init_scale", "burn_in", "samples",
    "solver", "objective", "mesh", "table_sharding", "checkpoint_every", "resume")}
FLAGS["checkpoint_dir"] = "--out"
FLAGS["validation"] = "--patience"


def configure(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``train``'s flags to ``ap``."""
    data = ap.add_argument_group("data")
    src = data.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="PATH", help="a ratings file (any format load_ratings reads)")
    src.add_argument("--dataset", choices=DATASETS, default="movielens-100k",
                     help="a named data set (default: %(default)s)")
    data.add_argument("--format", default="auto", help="format of --data (default: auto)")
    for col in ("user", "item", "rating", "time"):
        data.add_argument(f"--{col}-col", help=f"name of the {col} column in --data")
    data.add_argument("--synthetic-size", type=positive(int), nargs=3, default=[2000, 1000, 200_000],
                      metavar=("USERS", "ITEMS", "RATINGS"), help="shape of --dataset synthetic")
    data.add_argument("--synthetic-noise", type=non_negative, default=0.5,
                      help="--dataset synthetic: standard deviation of the rating noise")
    data.add_argument("--split", choices=["holdout", "per-user", "temporal"], default="holdout",
                      help="test split: random ratings, a share of each user's, or the latest")
    data.add_argument("--test-fraction", type=fraction, default=0.2,
                      help="share of the ratings (per user for per-user) held out for testing")
    data.add_argument("--val-fraction", type=fraction, default=0.1,
                      help="share of the training data held out for --patience")

    add_feature_arguments(ap)

    fit = ap.add_argument_group("model and optimizer (mfjax.fit)")
    fit.add_argument("--objective", choices=OBJECTIVES, default=None,
                     help="ials/bpr: implicit feedback (rank/reg/epochs default per objective); "
                          "default: as mfjax.fit, ials when every value is 1, else explicit")
    fit.add_argument("--alpha", type=non_negative, default=None, help="iALS confidence 1 + alpha*v")
    fit.add_argument("--unobserved-weight", type=non_negative, default=None, help="iALS alpha0")
    fit.add_argument("--nu", type=non_negative, default=None, help="iALS regularization exponent")
    fit.add_argument("--cg-steps", type=positive(int, minimum=0), default=None,
                     help="iALS: conjugate-gradient steps per row; 0: exact solves; none "
                          "given: 3 on a CPU, exact on accelerators")
    fit.add_argument("--min-rating", type=float, default=None,
                     help="implicit objectives: keep ratings >= this as interactions of value 1")
    fit.add_argument("--solver", choices=SOLVERS, default=None,
                     help="explicit ratings; default: what mfjax.fit picks, gibbs up to 2M "
                          "ratings, optax above. gibbs: Bayesian MF by Gibbs sampling (learns "
                          "its regularization; --burn-in + --samples sweeps); optax: minibatches "
                          "with --optimizer; als: exact alternating least squares")
    fit.add_argument("--rank", type=positive(int), default=None,
                     help=f"default: optax {DEFAULTS['rank']}, als {ALS_DEFAULTS['rank']}, "
                          f"gibbs {GIBBS_DEFAULTS['rank']}, per objective for ials/bpr")
    fit.add_argument("--reg", type=non_negative, default=None,
                     help=f"default: optax {DEFAULTS['reg']}, als {ALS_DEFAULTS['reg']} (gibbs: "
                          "unused), per objective for ials/bpr")
    fit.add_argument("--bias-reg", type=non_negative, default=None,
                     help="L2 penalty on the biases (optax, als; BPR item biases); "
                          f"default: {DEFAULTS['bias_reg']}")
    fit.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                     help=f"optax and bpr; default: {DEFAULTS['optimizer']}")
    fit.add_argument("--learning-rate", type=positive(float), default=None,
                     help="default: the optimizer's (adam 0.01)")
    fit.add_argument("--schedule", choices=["constant", "cosine", "exponential"], default="constant",
                     help="learning-rate schedule over all steps")
    fit.add_argument("--epochs", type=positive(int), default=None,
                     help=f"default: optax {DEFAULTS['epochs']}, als {ALS_DEFAULTS['epochs']} "
                          "(gibbs: --burn-in + --samples), per objective for ials/bpr")
    fit.add_argument("--burn-in", type=int, default=None,
                     help=f"gibbs: sweeps discarded first (default {GIBBS_DEFAULTS['burn_in']})")
    fit.add_argument("--samples", type=positive(int), default=None,
                     help="gibbs: sweeps averaged after burn-in (default "
                          f"{GIBBS_DEFAULTS['samples']})")
    fit.add_argument("--batch-size", type=positive(int), default=None,
                     help="default: about 1/20 of the ratings, within [1024, 2^22]")
    fit.add_argument("--init-scale", type=positive(float), default=None,
                     help=f"default: {DEFAULTS['init_scale']} (explicit), per objective otherwise")
    fit.add_argument("--gradient", choices=GRADIENTS, default=None,
                     help="optax; auto (default): jax.grad below 2^20 ratings; above, the fused "
                          "C++ kernel on one CPU device, else the blocked XLA route")
    fit.add_argument("--patience", type=positive(int), default=None,
                     help="early stopping on a validation split of the training data "
                          "(without it the curve is scored on the test set)")
    fit.add_argument("--seed", type=seed, default=0,
                     help="seeds the initial factors, the shuffles and the splits (default 0)")

    dist = ap.add_argument_group("devices and hosts")
    dist.add_argument("--mesh", default=None, metavar="auto|DxM",
                      help="train on a data x model device mesh, e.g. 'auto' or '4x1'; "
                           "default: one device (all devices with --coordinator)")
    dist.add_argument("--table-sharding", choices=["auto", "replicated", "sharded"], default="auto",
                      help="replicate the tables or row-shard them over the model axis")
    dist.add_argument("--coordinator", metavar="HOST:PORT",
                      help="multi-host: address of process 0 (jax.distributed.initialize)")
    dist.add_argument("--num-processes", type=positive(int), default=1)
    dist.add_argument("--process-id", type=int, default=0)
    dist.add_argument("--local-devices", type=positive(int), default=None,
                      help="CPU only: devices each process exposes (for testing on one machine)")

    run_group = ap.add_argument_group("run")
    run_group.add_argument("--platform", choices=["cpu", "gpu", "tpu"], default=None,
                           help="fail unless this JAX platform is present; default: JAX's choice")
    run_group.add_argument("--check-grads", action="store_true",
                           help="verify the gradients of the objective being trained on a sample "
                                "of the data before training")
    run_group.add_argument("--out", metavar="DIR", help="output folder (default runs/<timestamp>)")
    run_group.add_argument("--resume", action="store_true",
                           help="continue the run in --out from its checkpoint")
    run_group.add_argument("--overwrite", action="store_true",
                           help="replace the model, metrics and checkpoints of a previous run "
                                "in --out")
    run_group.add_argument("--checkpoint-every", type=positive(int), default=1,
                           help="epochs between checkpoints in OUT/checkpoints (--resume "
                                "continues)")
    run_group.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """A standalone ``train`` parser (``scripts/train.py``)."""
    return configure(OneLineParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=HelpFormatter))


def select_platform(platform):
    import jax

    if platform is None:
        return
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        present = sorted({d.platform for d in jax.devices()})
        raise UsageError(f"--platform {platform}: no such JAX backend here (present: "
                         f"{', '.join(present)}); install the matching jaxlib (GPUs: pip install "
                         "'jax[cuda12]') or drop the flag")
    jax.config.update("jax_default_device", devices[0])


def parse_mesh(text, multihost: bool):
    """'auto', 'DxM' or None -> what fit(mesh=) takes."""
    import jax

    from .. import distributed

    if text is None:
        return distributed.make_mesh() if multihost else None
    if text == "auto":
        return "auto"
    try:
        data, model = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--mesh {text}: expected auto or DxM, e.g. 4x1") from None
    n = len(jax.devices())
    if data < 1 or model < 1 or data * model != n:
        hint = (" (on a CPU, --local-devices N exposes N devices)"
                if jax.default_backend() == "cpu" else "")
        raise UsageError(f"--mesh {text}: a {data} x {model} mesh needs {data * model} devices "
                         f"and {n} are here; give DxM with D*M = {n}, or --mesh auto{hint}")
    return distributed.make_mesh(data, model)


def run(args) -> int:
    """Train as ``args`` say; returns the exit status."""
    import jax

    from .. import distributed

    multihost = args.coordinator is not None
    if multihost:
        distributed.initialize(args.coordinator, args.num_processes, args.process_id,
                               args.local_devices)
    elif args.num_processes > 1:
        raise UsageError("--num-processes > 1 needs --coordinator HOST:PORT")
    elif args.local_devices:
        jax.config.update("jax_num_cpu_devices", args.local_devices)
    lead = jax.process_index() == 0  # only process 0 prints progress and writes files
    select_platform(args.platform)
    mesh = parse_mesh(args.mesh, multihost)
    print(f"JAX {jax.__version__} on {jax.default_backend()}: {jax.devices()}"
          f"{'' if not multihost else f' (process {jax.process_index()} of {jax.process_count()})'}")
    from mfjax import models

    if (args.min_rating is not None and args.objective is not None
            and not models.objective_named(args.objective).ranking):
        # It turns every kept rating into 1: explicit training would fit a constant.
        raise UsageError("--min-rating binarizes the ratings for --objective ials or bpr; "
                         "it does not apply to --objective explicit")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out DIR, the folder of the run to continue")
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it; pick one")
    out = args.out or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    previous = [n for n in RUN_FILES if os.path.lexists(os.path.join(out, n))]
    if previous and not (args.resume or args.overwrite):
        raise UsageError(f"--out {out} already holds a run ({', '.join(previous)}); pass --resume "
                         "to continue it or --overwrite to replace it")
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    if created and lead:  # Ctrl-C, too, leaves no empty folder of its own
        on_interrupt(lambda: remove_empty_tree(out))
    rc = 1
    try:
        rc = train_and_report(args, out, lead, mesh)
        return rc
    finally:
        if rc != 0 and created and lead:  # a failed run leaves no empty folder of its own
            remove_empty_tree(out)


def execute(args, prog: str = "mfjax train") -> int:
    """Run parsed ``args``; errors as one line naming the flag (:func:`run_main`)."""
    from . import flag_words

    return run_main(prog, lambda: run(args), translate=lambda text: flag_words(text, FLAGS))


def main(argv=None, prog: str = "train.py") -> int:
    """``scripts/train.py``: parse ``argv`` and train (Ctrl-C: exit 130, one line)."""
    with interrupt_exits(prog):
        return execute(build_parser(prog).parse_args(argv), prog=prog)


if __name__ == "__main__":
    sys.exit(main(prog="mfjax train"))
