"""One table from the pieces scripts/gpu_bench.sh ran (its output folder), optionally appended
to benchmarks/RESULTS.md.

    python benchmarks/gpu_summary.py OUT_DIR [--append]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def tail(path, lines=12):
    try:
        with open(path) as f:
            return [line.rstrip() for line in f.readlines()[-lines:]]
    except OSError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--append", action="store_true", help="append the table to RESULTS.md")
    ap.add_argument("--command", default="bash scripts/gpu_bench.sh")
    args = ap.parse_args()

    steps = []
    try:
        with open(os.path.join(args.out, "steps.tsv")) as f:
            steps = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except OSError:
        pass
    status = {s[0]: (s[1], float(s[2])) for s in steps}
    rows = [(name, st, f"{sec:.0f} s") for name, (st, sec) in status.items()]
    step_table = C.markdown_table(("step", "status", "wall"), rows)

    probe = load(os.path.join(args.out, "probe.json")) or {}
    env, sc = probe.get("env", {}), probe.get("scatter", {})
    b = (load(os.path.join(args.out, "b.json")) or {})
    c = (load(os.path.join(args.out, "c.json")) or {})
    res = []
    if env:
        res += [("device", f"{env['device_kind']} ({env['backend']}), {len(env['devices'])} device(s)"),
                ("versions", env["versions"]),
                ("jaxlib in 0.10.2-0.11.0 (jax issue 38806, f32 scatter-add CAS loop)",
                 ("yes" if env["affected_38806"] else "no")
                 + (f"; fit compiles its epoch with {env['fit_compiler_options']}"
                    if env["fit_compiler_options"] else
                    ("; not a GPU backend, nothing to avoid" if env["backend"] != "gpu" else "")))]
    if sc:
        res.append((f"scatter probe: [{sc['n']:,}, 64] f32 segment_sum into {sc['rows']:,} skewed rows",
                    f"plain {sc['plain_ms']:.2f} ms, xla_gpu_ftz {sc['ftz_ms']:.2f} ms, sorted "
                    f"{sc['sorted_ms']:.2f} ms; into 16 rows: plain {sc['hot_plain_ms']:.2f} ms, "
                    f"ftz {sc['hot_ftz_ms']:.2f} ms"))
    grads = [line for line in tail(os.path.join(args.out, "check_grads.txt"), 3) if line.strip()]
    if grads:
        res.append(("scripts/check_grads.py", grads[-1].strip()))
    for label, d, target in (("b: ML-20M shape", b, "target on an H200: <= 50 ms"),
                             ("c: Netflix shape", c, "")):
        m = d.get("mfjax")
        if not m:
            continue
        nu, ni, n = m["shape"]
        cfg = m.get("config") or {}
        res.append((f"{label} ({n:,} ratings, rank {m['rank']}, {cfg.get('gradient')}, "
                    f"sort_by {cfg.get('sort_by')}, ensemble {cfg.get('ensemble')})",
                    f"{m['epoch_s'] * 1e3:.0f} ms/epoch ({m['ratings_per_s'] / 1e6:.0f} M ratings/s)"
                    + (f", {target}" if target else "") + f"; first epoch {m['first_epoch_s']:.1f} s; "
                    f"set-up {m['setup_s']:.1f} s; held-out RMSE {m['val_rmse'][-1]:.4f}"
                    + (f" (1.05x floor after {m['epochs_to_target']} epochs, {m['seconds_to_target']:.1f} s)"
                       if m.get("epochs_to_target") else "")
                    + f"; host peak RSS {m['peak_rss_gb']:.1f} GB"))
        p = d.get("plain")
        if p:
            res.append((f"{label}, plain MF (ensemble=1)", f"{p['epoch_s'] * 1e3:.0f} ms/epoch"))
    ials = load(os.path.join(args.out, "ials.json")) or {}
    for r in ials.get("mfjax", []):
        nu, ni, n = ials["shape"]
        res.append((f"iALS ({nu:,} x {ni:,}, {n:,} interactions: ML-20M binarized at full "
                    f"size; rank {ials['rank']}), {r['method']}",
                    f"{r['median_s']:.3f} s/iteration (first {r['first_s']:.1f} s; "
                    f"implicit's published A6000 figure: 0.33 s)"))
    rec = [line for line in tail(os.path.join(args.out, "recommend.txt"), 30) if line.startswith("|")]
    if rec:
        res.append(("recommend benchmark (bench_recommend.py)", "table below"))
    table = C.markdown_table(("metric", "value"), res) if res else "(no results)"
    text = f"{step_table}\n\n{table}\n" + ("\n" + "\n".join(rec) + "\n" if rec else "")
    print(text)
    if args.append:
        C.append_results("GPU benchmark (scripts/gpu_bench.sh)", args.command, text)


if __name__ == "__main__":
    main()
