"""scripts/train.py and scripts/check_grads.py end to end, in subprocesses."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, cwd=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_train_end_to_end_on_tiny_synthetic_data(tmp_path):
    out = tmp_path / "run"
    p = run("train.py", "--dataset", "synthetic", "--synthetic-size", "200", "100", "5000",
            "--epochs", "3", "--rank", "4", "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    assert "test RMSE" in p.stdout and "cpu" in p.stdout.lower()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"config", "devices", "history", "test", "seconds"}
    assert len(metrics["history"]) == 3 and metrics["test"]["rmse"] > 0
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "model.npz").stat().st_size > 0
    # --resume continues the same run to more epochs from its checkpoint
    p = run("train.py", "--dataset", "synthetic", "--synthetic-size", "200", "100", "5000",
            "--epochs", "4", "--rank", "4", "--out", str(out), "--quiet", "--resume")
    assert p.returncode == 0, p.stderr  # a resumed run may extend the epoch count
    metrics2 = json.loads((out / "metrics.json").read_text())
    assert len(metrics2["history"]) == 4


@pytest.mark.parametrize(
    "args,match",
    [
        (["--data", "/nonexistent/ratings.csv"], "/nonexistent/ratings.csv"),
        (["--epochs", "0"], "--epochs"),
        (["--learning-rate", "abc"], "--learning-rate"),
        (["--platform", "tpu"], "tpu"),
        (["--resume"], "--out"),
    ],
)
def test_train_bad_input_exits_2_with_one_line(tmp_path, args, match):
    p = run("train.py", *args, "--quiet", cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "error" in lines[0] and match in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_train_unreadable_data_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,2,3\n1,2\n")
    p = run("train.py", "--data", str(bad), "--quiet", cwd=tmp_path)
    assert p.returncode == 2 and "bad.csv" in p.stderr and "Traceback" not in p.stderr


def test_check_grads_script_passes():
    p = run("check_grads.py", "--order", "1")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "4 passed, 0 failed" in p.stdout and "backend cpu" in p.stdout
