"""Train an mfjax matrix-factorization model: the main job.

With no arguments it trains on MovieLens-100K (20% holdout, seed 0), shows a
progress bar, prints the JAX backend, the test RMSE/MAE and the test
precision/recall/NDCG@10 (relevant: rating >= 4; training items excluded), and writes
``runs/<timestamp>/{model.npz, metrics.json, learning_curve.png}``.

Examples (2-core CPU; results from runs recorded in benchmarks/RESULTS.md):
    python scripts/train.py
        # ML-100K, defaults: test RMSE ~0.903, MAE ~0.710, ~5 s;
        # precision@10 ~0.055, recall@10 ~0.067 (hits / min(10, |relevant|)), NDCG@10 ~0.060
    python scripts/train.py --solver gibbs --dataset movielens-1m
        # Bayesian MF (rank 10, 20 burn-in + 80 samples): see README's accuracy table
    python scripts/train.py --solver als --rank 10 --reg 0.05 --epochs 10
    python scripts/train.py --gradient manual
        # same trajectory through the hand-written gradient: RMSE ~0.903
    python scripts/train.py --rank 64 --reg 0.05 --epochs 40 --optimizer adamw
    python scripts/train.py --patience 3 --epochs 100
        # early stopping on a validation split carved from the training data
    python scripts/train.py --dataset synthetic --synthetic-size 2000 1000 200000
        # planted rank-8 model, noise 0.5: RMSE ~0.61 (reg 0.1 is ML-100K's; --reg 0.02: ~0.55)
    python scripts/train.py --data ratings.csv --user-col uid --item-col iid --rating-col stars
    python scripts/train.py --objective ials --dataset movielens-1m --min-rating 4
        # implicit feedback (ratings >= 4 as interactions), ALS by 3 CG steps per row
        # (CPU): NDCG@10 ~0.319, recall@20 ~0.343, ~5 s in all (data loading included)
    python scripts/train.py --objective ials --dataset movielens-1m --min-rating 4 --cg-steps 0
        # exact (Cholesky) row solves instead: NDCG@10 ~0.320
    python scripts/train.py --objective bpr --dataset movielens-1m --min-rating 4
        # BPR: NDCG@10 ~0.245, ~9 s
    python scripts/train.py --check-grads --platform gpu
    python scripts/train.py --mesh auto
        # data-parallel over every local device (tables sharded when they are large)
    python scripts/train.py --mesh 2x2 --table-sharding sharded
    # two hosts (run one line on each; process 0 writes the outputs):
    python scripts/train.py --coordinator host0:1234 --num-processes 2 --process-id 0
    python scripts/train.py --coordinator host0:1234 --num-processes 2 --process-id 1
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time

from mfjax.cli import OneLineParser, UsageError, fraction, non_negative, positive, run_main
from mfjax.plumbing import atomic_write, atomic_write_text

#: What a run writes into --out; their presence means --out holds a previous run.
RUN_FILES = ("model.npz", "metrics.json", "learning_curve.png", "checkpoints")

DATASETS = ["movielens-100k", "movielens-1m", "movielens-10m", "movielens-20m",
            "movielens-25m", "movielens-32m", "movielens-latest-small", "synthetic"]


def build_parser() -> argparse.ArgumentParser:
    from mfjax.training import DEFAULTS, GRADIENTS, OPTIMIZERS

    ap = OneLineParser(description="Train a matrix-factorization recommender with mfjax.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = ap.add_argument_group("data")
    src = data.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="PATH", help="a ratings file (any format load_ratings reads)")
    src.add_argument("--dataset", choices=DATASETS, default="movielens-100k")
    data.add_argument("--format", default="auto", help="format of --data")
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

    fit = ap.add_argument_group("model and optimizer (mfjax.fit)")
    fit.add_argument("--objective", choices=["explicit", "ials", "bpr"], default="explicit",
                     help="ials/bpr: implicit feedback (rank/reg/epochs default per objective)")
    fit.add_argument("--alpha", type=non_negative, default=None, help="iALS confidence 1 + alpha*v")
    fit.add_argument("--unobserved-weight", type=non_negative, default=None, help="iALS alpha0")
    fit.add_argument("--nu", type=non_negative, default=None, help="iALS regularization exponent")
    fit.add_argument("--cg-steps", type=positive(int, minimum=0), default=None,
                     help="iALS: conjugate-gradient steps per row; 0: exact solves; none "
                          "given: 3 on a CPU, exact on accelerators")
    fit.add_argument("--min-rating", type=float, default=None,
                     help="implicit objectives: keep ratings >= this as interactions of value 1")
    fit.add_argument("--solver", choices=["optax", "als", "gibbs"], default="optax",
                     help="explicit ratings: optax: minibatches with --optimizer; als: exact "
                          "alternating least squares; gibbs: Bayesian MF by Gibbs sampling "
                          "(learns its regularization; --burn-in + --samples sweeps)")
    fit.add_argument("--rank", type=positive(int), default=None,
                     help=f"default: optax {DEFAULTS['rank']}, als and gibbs 10, per objective "
                          "for ials/bpr")
    fit.add_argument("--reg", type=non_negative, default=None,
                     help=f"default: optax {DEFAULTS['reg']}, als 0.08 (gibbs: unused), per "
                          "objective for ials/bpr")
    fit.add_argument("--bias-reg", type=non_negative, default=DEFAULTS["bias_reg"],
                     help="L2 penalty on the biases (explicit models; BPR item biases)")
    fit.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=DEFAULTS["optimizer"])
    fit.add_argument("--learning-rate", type=positive(float), default=None,
                     help="default: the optimizer's (adam 0.01)")
    fit.add_argument("--schedule", choices=["constant", "cosine", "exponential"], default="constant",
                     help="learning-rate schedule over all steps")
    fit.add_argument("--epochs", type=positive(int), default=None,
                     help=f"default: optax {DEFAULTS['epochs']}, als 6 (gibbs: --burn-in + "
                          "--samples), per objective for ials/bpr")
    fit.add_argument("--burn-in", type=int, default=None,
                     help="gibbs: sweeps discarded first (default 20)")
    fit.add_argument("--samples", type=positive(int), default=None,
                     help="gibbs: sweeps averaged after burn-in (default 80)")
    fit.add_argument("--batch-size", type=positive(int), default=None,
                     help="default: about 1/20 of the ratings, within [1024, 2^22]")
    fit.add_argument("--init-scale", type=positive(float), default=None,
                     help=f"default: {DEFAULTS['init_scale']} (explicit), per objective otherwise")
    fit.add_argument("--gradient", choices=GRADIENTS, default="auto",
                     help="auto: jax.grad below 2^20 ratings; above, the fused C++ kernel on one "
                          "CPU device, else the blocked XLA route")
    fit.add_argument("--patience", type=positive(int), default=None,
                     help="early stopping on a validation split of the training data")
    fit.add_argument("--seed", type=int, default=0,
                     help="seeds the initial factors, the shuffles and the splits")

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

    run = ap.add_argument_group("run")
    run.add_argument("--platform", choices=["cpu", "gpu", "tpu"], default=None,
                     help="fail unless this JAX platform is present; default: JAX's choice")
    run.add_argument("--check-grads", action="store_true",
                     help="verify gradients on a sample of the data before training")
    run.add_argument("--out", metavar="DIR", help="output folder (default runs/<timestamp>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the model, metrics and checkpoints of a previous run in --out")
    run.add_argument("--checkpoint-every", type=positive(int), default=1,
                     help="epochs between checkpoints in OUT/checkpoints (--resume continues)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def load_data(args):
    import mfjax

    if args.data:
        cols = {k: getattr(args, f"{k}_col") for k in ("user", "item", "rating", "time")}
        return mfjax.load_ratings(args.data, format=args.format,
                                  **{f"{k}_col": v for k, v in cols.items() if v})
    if args.dataset == "synthetic":
        n_users, n_items, n = args.synthetic_size
        return mfjax.datasets.synthetic(n_users, n_items, n, noise=args.synthetic_noise,
                                        seed=args.seed)[0]
    return mfjax.datasets.movielens(args.dataset.removeprefix("movielens-"))


def split_data(args, ratings):
    from mfjax import split

    if args.split == "holdout":
        return split.holdout(ratings, args.test_fraction, seed=args.seed)
    if args.split == "per-user":
        return split.per_user(ratings, args.test_fraction, seed=args.seed)
    return split.temporal(ratings, args.test_fraction)


def make_schedule(args, n_steps):
    import optax
    from mfjax.training import OPTIMIZERS

    if args.schedule == "constant":
        return None
    lr = args.learning_rate or OPTIMIZERS[args.optimizer][1]
    if args.schedule == "cosine":
        return optax.cosine_decay_schedule(lr, n_steps, alpha=0.05)
    return optax.exponential_decay(lr, n_steps, 0.05)


def select_platform(platform):
    import jax

    if platform is None:
        return
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        present = sorted({d.platform for d in jax.devices()})
        raise UsageError(f"--platform {platform}: no such JAX backend here (present: "
                         f"{', '.join(present)}); install the matching jaxlib or drop the flag")
    jax.config.update("jax_default_device", devices[0])


def parse_mesh(text, multihost: bool):
    """'auto', 'DxM' or None -> what fit(mesh=) takes."""
    from mfjax import distributed

    if text is None:
        return distributed.make_mesh() if multihost else None
    if text == "auto":
        return "auto"
    try:
        data, model = (int(x) for x in text.lower().split("x"))
        return distributed.make_mesh(data, model)
    except ValueError as e:
        raise UsageError(f"--mesh {text}: {e if 'mesh needs' in str(e) else 'expected auto or DxM, e.g. 4x1'}")


def plot_curve(history, path) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("note: matplotlib is not installed; skipping learning_curve.png "
              "(pip install 'mfjax[plot]')", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["loss"] for h in history], "C0-o", ms=3, label="training loss / rating")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training objective per rating", color="C0")
    if any("val_rmse" in h for h in history):
        ax2 = ax.twinx()
        ax2.plot(epochs, [h.get("val_rmse", math.nan) for h in history], "C1-s", ms=3)
        ax2.set_ylabel("validation RMSE", color="C1")
    ax.set_title("mfjax learning curve")
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return True


def _finite(obj):
    """NaN/inf -> None, so metrics.json stays strict JSON (e.g. NaN ranking metrics)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(obj, path):
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, allow_nan=False))


def run(args) -> int:
    import jax

    import mfjax

    multihost = args.coordinator is not None
    if multihost:
        mfjax.distributed.initialize(args.coordinator, args.num_processes, args.process_id,
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
    if args.min_rating is not None and args.objective == "explicit":
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
    rc = 1
    try:
        rc = train_and_report(args, out, lead, mesh)
        return rc
    finally:
        if rc != 0 and created and lead:  # a failed run leaves no empty folder of its own
            remove_empty_tree(out)


def remove_empty_tree(path: str) -> None:
    """Remove ``path`` and its subfolders if nothing but folders is anywhere below it.

    The whole tree is checked first; ``os.rmdir`` then never removes a file (a file
    created in between makes it fail, and the rest is kept)."""
    for root, dirs, files in os.walk(path):
        if files or any(os.path.islink(os.path.join(root, d)) for d in dirs):
            return
    try:
        for root, _, _ in os.walk(path, topdown=False):
            os.rmdir(root)
    except OSError:
        pass


def train_and_report(args, out: str, lead: bool, mesh) -> int:
    """Load, split, fit, evaluate and write the run's files into ``out``."""
    import jax

    import mfjax
    import numpy as np

    t0 = time.perf_counter()
    ratings = load_data(args)
    if args.min_rating is not None:
        kept = ratings.subset(ratings.ratings >= args.min_rating)
        ratings = mfjax.Ratings(kept.users, kept.items, np.ones(len(kept)), kept.timestamps,
                                kept.user_ids, kept.item_ids)
    train, test = split_data(args, ratings)
    print(f"data: {ratings!r}; train {len(train):,}, test {len(test):,} ({args.split})")
    if args.check_grads:
        params, u, i, r = mfjax.evaluation.gradcheck.sample_problem(train, 300, seed=args.seed)
        reg = mfjax.training.DEFAULTS["reg"] if args.reg is None else args.reg
        report = mfjax.verify_gradients(params, u, i, r, reg=reg, bias_reg=args.bias_reg)
        print(report)
        if not report.ok:
            print("error: gradient check failed; not training", file=sys.stderr)
            return 1

    monitor = test  # scored each epoch for the curve; never used to pick parameters
    if args.patience:
        fit_set, monitor = mfjax.split.holdout(train, args.val_fraction, seed=args.seed)
    else:
        fit_set = train
    common = dict(bias_reg=args.bias_reg, seed=args.seed, validation=monitor,
                  patience=args.patience, init_scale=args.init_scale,
                  checkpoint_dir=os.path.join(out, "checkpoints"),
                  checkpoint_every=args.checkpoint_every, resume=args.resume,
                  progress=lead and not args.quiet, mesh=mesh)
    if args.solver != "gibbs" and (args.burn_in is not None or args.samples is not None):
        raise UsageError("--burn-in and --samples are for --solver gibbs")
    implicit = args.objective != "explicit"
    options = {k: getattr(args, k) for k in ("alpha", "unobserved_weight", "nu", "cg_steps")
               if getattr(args, k) is not None}
    if options and args.objective != "ials":
        raise UsageError("--alpha, --unobserved-weight, --nu and --cg-steps are for --objective ials")
    if implicit:
        if args.solver != "optax":
            raise UsageError("--solver is for --objective explicit (ials trains by ALS, bpr by Optax)")
        model = mfjax.fit(fit_set, objective=args.objective, rank=args.rank, reg=args.reg,
                          epochs=args.epochs, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, table_sharding=args.table_sharding,
                          **options, **common)
    elif args.solver == "optax":
        from mfjax.training import DEFAULTS

        epochs = args.epochs or DEFAULTS["epochs"]
        batch_size = args.batch_size or mfjax.auto_batch_size(len(fit_set), fit_set.n_users,
                                                              fit_set.n_items)
        n_steps = epochs * -(-len(fit_set) // batch_size)
        model = mfjax.fit(
            fit_set, rank=args.rank or DEFAULTS["rank"],
            reg=DEFAULTS["reg"] if args.reg is None else args.reg, optimizer=args.optimizer,
            learning_rate=None if args.schedule != "constant" else args.learning_rate,
            schedule=make_schedule(args, n_steps), epochs=epochs, batch_size=batch_size,
            gradient=args.gradient, table_sharding=args.table_sharding, **common)
    elif args.solver == "als":
        model = mfjax.fit(fit_set, solver="als", rank=args.rank, reg=args.reg, epochs=args.epochs,
                          **common)
    else:
        model = mfjax.fit(fit_set, solver="gibbs", rank=args.rank, burn_in=args.burn_in,
                          samples=args.samples, **common)
    if not lead:
        return 0
    if implicit:
        return report_implicit(args, model, train, test, out, t0)
    metrics = mfjax.evaluate(model, test)
    seconds = time.perf_counter() - t0
    print(f"test RMSE {metrics['rmse']:.4f}  MAE {metrics['mae']:.4f}  "
          f"({metrics['n']:,} ratings, {len(model.history)} epochs, {seconds:.1f} s)")
    # Top-10 quality on the same split: relevant = test rating >= 4, train items excluded.
    ranking = mfjax.evaluate_ranking(model, train, test, k=10)
    metrics.update(ranking)
    print(f"test precision@10 {ranking['precision@10']:.4f}  recall@10 {ranking['recall@10']:.4f}  "
          f"ndcg@10 {ranking['ndcg@10']:.4f}  ({ranking['n_users']:,} users)")

    model.save(os.path.join(out, "model.npz"))
    write_json({
        "config": {**model.config, "data": args.data or args.dataset, "split": args.split,
                   "test_fraction": args.test_fraction},
        "devices": [str(d) for d in jax.devices()],
        "mesh": model.config.get("mesh"),
        "backend": jax.default_backend(),
        "history": model.history,
        "test": metrics,
        "seconds": seconds,
    }, os.path.join(out, "metrics.json"))
    plot_curve(model.history, os.path.join(out, "learning_curve.png"))
    print(f"wrote {out}/model.npz, metrics.json, learning_curve.png")
    return 0


def report_implicit(args, model, train, test, out, t0) -> int:
    """Ranking metrics of an implicit model (every test interaction relevant)."""
    import jax
    import mfjax

    metrics = {}
    for k in (10, 20):
        metrics.update(mfjax.evaluate_ranking(model, train, test, k=k, threshold=None))
    seconds = time.perf_counter() - t0
    print(f"test precision@10 {metrics['precision@10']:.4f}  recall@20 {metrics['recall@20']:.4f}  "
          f"ndcg@10 {metrics['ndcg@10']:.4f}  ({metrics['n_users']:,} users, "
          f"{len(model.history)} epochs, {seconds:.1f} s)")
    model.save(os.path.join(out, "model.npz"))
    write_json({"config": model.config, "backend": jax.default_backend(),
                "devices": [str(d) for d in jax.devices()], "mesh": model.config.get("mesh"),
                "history": model.history, "test": metrics, "seconds": seconds},
               os.path.join(out, "metrics.json"))
    print(f"wrote {out}/model.npz, metrics.json")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_main("train.py", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
