"""Where an epoch's time goes: one steady-state ``fit`` epoch under the JAX profiler.

Trains on the planted synthetic data of bench_ml20m (ML-20M shape by default)
with ``fit``'s defaults, traces the second epoch (the first compiles) with
``jax.profiler``, and sums the XLA operations' run times from the trace, per
operation and per kind of operation (by HLO name: materialised gathers,
scatters, dots, other fusions such as the optimizer's dense passes). Two
threads run operations side by side on a 2-core CPU, so the op times add up to
more than the epoch's wall time.

    python benchmarks/profile_epoch.py                       # ML-20M shape, ~2 min
    python benchmarks/profile_epoch.py --ensemble 1          # plain MF
    python benchmarks/profile_epoch.py --ratings 2000000 --no-results
    python benchmarks/profile_epoch.py --gradient blocked   # the XLA route

On the 2-core CPU (2026-11-28, RESULTS.md), the XLA route's ML-20M-shape epoch
took 3.9 s (ensemble of 8, the default) and 3.0 s (plain MF). Of the summed op time,
materialised gathers of item rows and of the batch's indices were 24% / 30%,
the member-axis transposes ahead of the batched dots 23% / 9%, dots and
library fusions 21% / 23%, scatter-adds 16% / 20%, and everything else (the
dense Adam passes included) 17% / 17%. That profile is why the fused route
(``mfjax.kernels.fused``, now the default there) exists. Under it, the kernel shows up as one
``ffi_call`` operation.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

#: Trace events that are not XLA operations (executor bookkeeping, the loop itself).
NOT_OPS = re.compile(r"ThunkExecutor|SlinkyThreadPool|^while|block_until_ready|Await")


def kind(name: str) -> str:
    """A coarse kind of XLA operation, from its HLO name."""
    if "scatter" in name:
        return "scatter-add (incl. its fused updates)"
    if "gather" in name:
        return "gather (materialised rows or indices)"
    if name.startswith(("dot", "ynn_fusion", "xnn_fusion")):
        return "dot / library fusion"
    if name.startswith(("copy", "transpose", "bitcast_copy")):
        return "copy / transpose"
    return "other fusions (elementwise, reductions, optimizer)"


def op_times(trace_dir: str) -> collections.Counter:
    """Summed duration (ns) per XLA operation name in a ``jax.profiler`` trace."""
    import jax

    files = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        raise RuntimeError(f"no .xplane.pb trace under {trace_dir}")
    data = jax.profiler.ProfileData.from_file(files[0])
    out = collections.Counter()
    for plane in data.planes:
        if not plane.name.startswith("/host:CPU") and not plane.name.startswith("/device:"):
            continue
        for line in plane.lines:
            if line.name == "python" or "PjRt" in line.name:
                continue
            for ev in line.events:
                if not NOT_OPS.search(ev.name):
                    out[ev.name] += ev.duration_ns
    return out


class TraceEpoch:
    """A ``fit`` callback tracing exactly epoch ``which`` (1-based)."""

    def __init__(self, trace_dir: str, which: int = 2):
        self.dir, self.which, self.done = trace_dir, which, False

    def __call__(self, epoch, metrics, params):
        import jax

        if epoch == self.which - 1:  # fit passes 1-based epochs
            jax.profiler.start_trace(self.dir)
        elif epoch == self.which:
            jax.profiler.stop_trace()
            self.done = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=138_493)
    ap.add_argument("--items", type=int, default=26_744)
    ap.add_argument("--ratings", type=int, default=20_000_000)
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--ensemble", default="auto", help="fit's ensemble= ('auto' or a member count)")
    ap.add_argument("--gradient", default="auto", help="fit's gradient= route")
    ap.add_argument("--top", type=int, default=12, help="operations listed one by one")
    ap.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args()

    import mfjax

    model = C.planted(args.users, args.items, rank=8, seed=0)
    train = C.sample(model, args.ratings, noise=0.5, seed=1)
    del model
    ensemble = args.ensemble if args.ensemble == "auto" else int(args.ensemble)
    with tempfile.TemporaryDirectory(prefix="mfjax-trace-") as tmp:
        tracer = TraceEpoch(tmp, which=2)
        t = time.perf_counter()
        m = mfjax.fit(train, solver="optax", rank=args.rank, epochs=2, reg=0.01, learning_rate=0.03,
                      ensemble=ensemble, gradient=args.gradient, progress=False, callbacks=[tracer])
        total = time.perf_counter() - t
        if not tracer.done:
            raise RuntimeError("the traced epoch did not run")
        ops = op_times(tmp)
    epoch_s = m.history[1]["seconds"]
    op_s = sum(ops.values()) / 1e9
    kinds = collections.Counter()
    for name, ns in ops.items():
        kinds[kind(name)] += ns
    cfg = m.config
    n_batches = -(-len(train) // cfg["batch_size"])
    head = (f"{args.users:,} users x {args.items:,} items, {len(train):,} ratings, rank {args.rank}, "
            f"ensemble={cfg.get('ensemble')}, gradient={cfg.get('gradient')}, batch "
            f"{cfg['batch_size']:,} ({n_batches} steps). Traced epoch (the second): {epoch_s:.2f} s wall; "
            f"XLA operations {op_s:.2f} s summed over threads ({op_s / epoch_s:.1f} threads busy "
            f"on average); fit total {total:.1f} s.")
    rows = [(k, f"{ns / 1e9:.2f}", f"{ns / 1e9 / op_s:.0%}", f"{ns / 1e6 / n_batches:.1f}")
            for k, ns in kinds.most_common()]
    table = C.markdown_table(["kind of operation", "s per epoch (summed)", "share", "ms per step"], rows)
    top = C.markdown_table(["operation (HLO name)", "s per epoch", "share"],
                           [(n, f"{ns / 1e9:.3f}", f"{ns / 1e9 / op_s:.1%}")
                            for n, ns in ops.most_common(args.top)])
    body = f"{head}\n\n{table}\n\n{top}\n"
    print(body)
    if not args.no_results:
        C.append_results("profile of one training epoch", C.command_line("profile_epoch.py"), body)


if __name__ == "__main__":
    main()
