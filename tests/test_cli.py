"""The mfjax command (mfjax/cli/) and scripts/*.py end to end, mostly in subprocesses."""

import json
import os
import subprocess
import sys

import pytest

import mfjax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args, cwd=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_train_end_to_end_on_tiny_synthetic_data(tmp_path):
    out = tmp_path / "run"
    p = run("train.py", "--dataset", "synthetic", "--synthetic-size", "200", "100", "5000",
            "--solver", "optax", "--epochs", "3", "--rank", "4", "--out", str(out), "--quiet")
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
            "--solver", "optax", "--epochs", "4", "--rank", "4", "--out", str(out), "--quiet",
            "--resume")
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
        # --min-rating binarizes ratings to 1: an explicit fit would learn a constant (RMSE 0)
        (["--dataset", "synthetic", "--synthetic-size", "50", "40", "600", "--epochs", "1",
          "--objective", "explicit", "--min-rating", "4"], "--min-rating"),
        # the default model (BayesianMF at this size) has no optimizer: name the way to one
        (["--dataset", "synthetic", "--synthetic-size", "50", "40", "600", "--optimizer", "sgd"],
         "--optimizer does not apply to the default model (BayesianMF, what mfjax.fit picks for "
         "480 ratings; --solver optax or als trains another)"),
        (["--seed", str(2**63)], "--seed"),  # used to be an OverflowError traceback
        (["--seed", "-1"], "--seed"),
        (["--dataset", "synthetic", "--synthetic-size", "50", "40", "600", "--mesh", "3x1"],
         "--mesh 3x1"),
    ],
)
def test_train_bad_input_exits_2_with_one_line(tmp_path, args, match):
    p = run("train.py", *args, "--quiet", cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "error" in lines[0] and match in lines[0], p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow  # a CLI run or sampler compile per case (~10 s each on 2 cores)
@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_run_removes_only_the_empty_folder_it_created(tmp_path, existed):
    out = tmp_path / "run"
    if existed:
        out.mkdir()
    # nu > 1 is refused by fit, after --out exists; --cg-steps is refused for bpr.
    for bad in (["--objective", "ials", "--nu", "2"], ["--objective", "bpr", "--cg-steps", "2"]):
        p = run("train.py", "--dataset", "synthetic", "--synthetic-size", "50", "40", "600",
                "--min-rating", "3", "--out", str(out), "--quiet", *bad)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert out.exists() == existed
    if existed:
        assert list(out.iterdir()) == []


def _train_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_script", os.path.join(ROOT, "scripts", "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_remove_empty_tree_keeps_every_folder_when_any_file_is_below():
    import tempfile

    remove_empty_tree = _train_module().remove_empty_tree
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "run")
        for d in range(8):
            os.makedirs(os.path.join(root, f"d{d}", "sub"))
        open(os.path.join(root, "d3", "sub", "keep.txt"), "w").close()
        remove_empty_tree(root)
        assert sorted(os.listdir(root)) == [f"d{d}" for d in range(8)]  # nothing removed
        os.remove(os.path.join(root, "d3", "sub", "keep.txt"))
        remove_empty_tree(root)
        assert not os.path.exists(root)


@pytest.mark.slow
def test_a_failed_check_grads_run_removes_its_empty_folder(tmp_path, monkeypatch):
    import mfjax

    train = _train_module()
    real = mfjax.verify_gradients

    def failing(*a, **k):
        import dataclasses

        return dataclasses.replace(real(*a, **k), ok=False)

    monkeypatch.setattr(mfjax, "verify_gradients", failing)
    out = tmp_path / "run"
    rc = train.main(["--dataset", "synthetic", "--synthetic-size", "30", "20", "200",
                     "--check-grads", "--out", str(out), "--quiet"])
    assert rc != 0 and not out.exists()


@pytest.mark.slow  # a CLI run or sampler compile per case (~10 s each on 2 cores)
@pytest.mark.parametrize("flags, spec", [([], "BayesianMF"), (["--min-rating", "4"], "ImplicitALS"),
                                         (["--solver", "optax"], "MF")])
def test_train_without_model_flags_trains_what_fit_picks(tmp_path, flags, spec):
    """One default: `mfjax train` trains what mfjax.fit(train) picks for the data (Bayesian
    MF for ratings up to 2M, iALS for interactions); --solver still picks another."""
    out = tmp_path / "run"
    size = ["--synthetic-size", "60", "40", "1200", "--rank", "2"]
    model_flags = {"BayesianMF": ["--burn-in", "1", "--samples", "2"], "ImplicitALS": ["--epochs", "1"],
                   "MF": ["--epochs", "1"]}[spec]
    p = run("train.py", "--dataset", "synthetic", *size, *flags, *model_flags, "--out", str(out),
            "--quiet")
    assert p.returncode == 0, p.stderr
    import mfjax

    assert type(mfjax.load_model(str(out / "model.npz")).spec).__name__ == spec


@pytest.mark.slow
def test_train_refuses_to_overwrite_a_previous_run_without_overwrite(tmp_path):
    out = tmp_path / "run"
    args = ("--dataset", "synthetic", "--synthetic-size", "50", "40", "800", "--solver", "optax",
            "--epochs", "1", "--rank", "2", "--out", str(out), "--quiet")
    assert run("train.py", *args).returncode == 0
    before = {n: (out / n).read_bytes() for n in ("model.npz", "metrics.json")}
    p = run("train.py", *args, "--seed", "1")
    assert p.returncode == 2, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "--overwrite" in lines[0] and "Traceback" not in p.stderr
    assert {n: (out / n).read_bytes() for n in before} == before  # nothing touched
    p = run("train.py", *args, "--seed", "1", "--overwrite")
    assert p.returncode == 0, p.stderr
    assert (out / "model.npz").read_bytes() != before["model.npz"]


def test_train_with_a_schedule_writes_its_model_and_metrics(tmp_path):
    """--schedule cosine used to train, print its metrics and exit 2 writing nothing."""
    import mfjax

    out = tmp_path / "run"
    assert _train_module().main(["--dataset", "synthetic", "--synthetic-size", "50", "40", "600",
                                 "--solver", "optax", "--epochs", "2", "--rank", "2", "--schedule", "cosine",
                                 "--out", str(out), "--quiet"]) == 0
    model = mfjax.load_model(out / "model.npz")
    assert model.config["optimizer_name"] == "adam-cosine"
    assert model.config["schedule"] == {"recorded": "adam-cosine (schedule)"}
    assert json.loads((out / "metrics.json").read_text())["config"]["optimizer_name"] == "adam-cosine"


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["0", "1"])
def test_ctrl_c_during_trains_first_compile_exits_130_with_one_line(tmp_path, kernels):
    """SIGINT at several points of startup and the first compiles: it used to be
    swallowed by JAX's gc callback (the run went on, exit 0) or end in a SIGSEGV."""
    import signal
    import time

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "MFJAX_KERNELS": kernels,
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for delay in (1.0, 2.0, 3.5):
        out = tmp_path / f"run-{delay}"
        p = subprocess.Popen([sys.executable, "-m", "mfjax", "train", "--dataset", "synthetic",
                              "--synthetic-size", "300", "200", "20000", "--solver", "optax", "--epochs", "50",
                              "--rank", "4", "--out", str(out), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        assert p.returncode == 130, (delay, p.returncode, err[-2000:])
        assert "Traceback" not in err and "Exception ignored" not in err, (delay, err)
        # one line; "mfjax:" when the signal lands before the subcommand is parsed (a loaded machine)
        lines = [l for l in err.splitlines() if "interrupted" in l]
        assert lines in (["mfjax train: interrupted"], ["mfjax: interrupted"]), (delay, err)
        assert not out.exists() or any(f for _, _, f in os.walk(out))  # no empty folder left


def test_train_unreadable_data_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,2,3\n1,2\n")
    p = run("train.py", "--data", str(bad), "--quiet", cwd=tmp_path)
    assert p.returncode == 2 and "bad.csv" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_check_grads_script_passes():
    p = run("check_grads.py", "--order", "1", "--shapes", "2")
    assert p.returncode == 0, p.stdout + p.stderr
    objectives = mfjax.models.objective_names()
    assert {"explicit", "ials", "bpr", "logistic"} <= set(objectives), objectives
    assert f"{2 * len(objectives)} passed, 0 failed" in p.stdout and "backend cpu" in p.stdout
    assert all(f", {o}\n" in p.stdout for o in objectives)


# --------------------------------------------------------------- scripts/recommend.py

def _recommend_main():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "recommend_script", os.path.join(ROOT, "scripts", "recommend.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import mfjax

    out = tmp_path_factory.mktemp("rec")
    ratings, _ = mfjax.datasets.synthetic(50, 60, 1500, rank=3, seed=0)
    model = mfjax.fit(ratings, solver="optax", rank=3, epochs=3, progress=False)
    model.save(out / "model.npz")
    (out / "metrics.json").write_text(json.dumps({"config": {"data": "synthetic"}}))
    return out / "model.npz", model


def test_recommend_script_lists_unseen_items_for_a_user(saved_model, capsys):
    path, model = saved_model
    assert _recommend_main()(["--model", str(path), "--user", "3", "-n", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("top 4 for user 3") and "title" not in lines[1]
    rows = [l.split() for l in lines[2:]]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    want_ids, want_scores = model.recommend(3, n=4)
    assert [int(r[1]) for r in rows] == want_ids.tolist()
    assert [float(r[2]) for r in rows] == pytest.approx(want_scores.tolist(), abs=1e-3)


def test_recommend_script_similar_items(saved_model, capsys):
    path, model = saved_model
    assert _recommend_main()(["--model", str(path), "--similar-to", "7", "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "similar to item 7" in lines[0] and len(lines) == 5
    assert [int(l.split()[1]) for l in lines[2:]] == model.similar_items(7, n=3)[0].tolist()


def test_recommend_script_shows_movielens_titles(tmp_path, capsys):
    import jax.numpy as jnp
    import numpy as np

    import mfjax

    try:
        titles = mfjax.datasets.movielens_items("100k", download=False)
    except OSError:
        pytest.skip("ML-100K is not cached here")
    # Item bias alone ranks the items: raw ID 1 first (Toy Story in ML-100K).
    params = mfjax.Params(jnp.zeros((2, 2)), jnp.zeros((5, 2)), jnp.zeros(2),
                          jnp.array([0.5, 0.4, 0.3, 0.2, 0.1]), jnp.asarray(3.0))
    model = mfjax.Model(params, np.array([10, 11]), np.arange(1, 6), (1.0, 5.0), {}, [],
                        np.array([0, 0, 0]), np.zeros(0, np.int32))
    model.save(tmp_path / "model.npz")
    (tmp_path / "metrics.json").write_text(json.dumps({"config": {"data": "movielens-100k"}}))
    assert _recommend_main()(["--model", str(tmp_path / "model.npz"), "--user", "10",
                              "-n", "2"]) == 0
    out = capsys.readouterr().out
    first = titles.loc[titles["item_id"] == 1, "title"].item()
    assert first in out.splitlines()[2] and "title" in out.splitlines()[1]
    assert _recommend_main()(["--model", str(tmp_path / "model.npz"), "--user", "10",
                              "--titles", "none"]) == 0
    assert first not in capsys.readouterr().out


@pytest.mark.parametrize("args,match", [
    (["--user", "99999"], "unknown user 99999"),
    (["--user", "abc"], "'abc'"),
    (["--similar-to", "4242"], "unknown item 4242"),
    (["--model", "/nonexistent/model.npz", "--user", "1"], "/nonexistent/model.npz"),
])
def test_recommend_script_bad_input_is_one_line_exit_2(saved_model, capsys, args, match):
    path, _ = saved_model
    argv = args if "--model" in args else ["--model", str(path), *args]
    assert _recommend_main()(argv) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and err[0].startswith("recommend.py: error:") and match in err[0], err


def test_recommend_script_subprocess_unknown_user_has_no_traceback(saved_model):
    path, _ = saved_model
    p = run("recommend.py", "--model", str(path), "--user", "99999")
    assert p.returncode == 2 and "unknown user 99999" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_train_reports_ranking_metrics(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script",
                                                  os.path.join(ROOT, "scripts", "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "run"
    assert module.main(["--dataset", "synthetic", "--synthetic-size", "100", "60", "3000",
                        "--solver", "optax", "--epochs", "2", "--rank", "3", "--out", str(out),
                        "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "precision@10" in printed and "recall@10" in printed and "ndcg@10" in printed
    test = json.loads((out / "metrics.json").read_text())["test"]
    assert {"rmse", "precision@10", "recall@10", "ndcg@10", "n_users"} <= set(test)
    assert 0 <= test["ndcg@10"] <= 1 and test["n_users"] > 0


def test_errors_name_the_flag_not_the_keyword(tmp_path):
    """A file without a recognised user column: the fix is --user-col, not user_col=."""
    data = tmp_path / "odd.csv"
    data.write_text("a,b,c\n1,2,3\n2,3,4\n")
    p = run("train.py", "--data", str(data), "--quiet", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "--user-col" in p.stderr and "user_col=" not in p.stderr, p.stderr


def test_flag_words_rewords_keywords():
    from mfjax.cli import flag_words

    flags = {"user_col": "--user-col", "item_col": "--item-col", "gradient": "--gradient",
             "mesh": "--mesh"}
    assert flag_words("no user column; pass user_col=. Found: a", flags) == \
        "no user column; pass --user-col VALUE. Found: a"
    assert flag_words("so user_col/item_col must name", flags) == "so --user-col/--item-col must name"
    assert flag_words("fit: gradient='fused' is not available", flags) == \
        "fit: --gradient fused is not available"
    assert flag_words("runs on one device; pass mesh=None", flags) == "runs on one device; drop --mesh"
    assert flag_words("reg=0.1 stays", flags) == "reg=0.1 stays"  # not a flag of this command


@pytest.mark.parametrize("objective", [pytest.param("ials", marks=pytest.mark.slow), "bpr"])
@pytest.mark.slow
def test_check_grads_verifies_the_objective_being_trained(tmp_path, monkeypatch, objective):
    """train --check-grads --objective ials/bpr used to check the explicit loss."""
    import dataclasses

    import mfjax

    seen = {}
    real = mfjax.verify_gradients

    def spy(spec, *a, **k):
        seen["spec"] = spec
        return dataclasses.replace(real(spec, *a, **k), ok=False)  # stop before training

    monkeypatch.setattr(mfjax, "verify_gradients", spy)
    rc = _train_module().main(["--dataset", "synthetic", "--synthetic-size", "30", "20", "300",
                               "--objective", objective, "--min-rating", "3", "--check-grads",
                               "--out", str(tmp_path / "run"), "--quiet"])
    spec = seen["spec"]
    assert rc == 1 and mfjax.models.record_of(spec).objective == objective


# --------------------------------------------------------------- the mfjax command

def run_module(*args, env=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mfjax", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_python_dash_m_mfjax_lists_the_commands():
    p = run_module("--help")
    assert p.returncode == 0, p.stderr
    for command in ("train", "recommend", "evaluate", "check-grads", "build-kernels"):
        assert command in p.stdout
    p = run_module("train", "--help")
    assert p.returncode == 0 and "--solver" in p.stdout and "mfjax train" in p.stdout
    p = run_module("frobnicate")
    assert p.returncode == 2 and "invalid choice" in p.stderr and len(p.stderr.splitlines()) == 1


def test_building_the_parsers_does_not_import_jax():
    code = ("import sys; import mfjax.cli as c; c.build_parser().parse_args(['train']); "
            "print(sorted(m for m in sys.modules if m in ('jax', 'jaxlib', 'optax') "
            "or m.startswith(('jax.', 'mfjax.training', 'mfjax.solvers'))))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


def test_the_parsers_constants_match_the_library():
    import mfjax
    from mfjax.cli import constants

    assert constants.OPTIMIZERS == tuple(sorted(mfjax.OPTIMIZERS))
    assert constants.GRADIENTS == tuple(mfjax.models.mf.resolve.GRADIENTS)
    assert constants.MOVIELENS == tuple(mfjax.datasets.VARIANTS)
    assert {k: mfjax.DEFAULTS[k] for k in constants.DEFAULTS} == constants.DEFAULTS
    for spec, shown in ((mfjax.ALS(), constants.ALS_DEFAULTS),
                        (mfjax.BayesianMF(), constants.GIBBS_DEFAULTS)):
        assert {k: getattr(spec, k) for k in shown} == shown


def test_pyproject_declares_the_console_command():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert '[project.scripts]\nmfjax = "mfjax.cli:main"' in text


def test_build_kernels_respects_the_switch_and_names():
    p = run_module("build-kernels", env={"MFJAX_KERNELS": "0"})
    assert p.returncode == 0 and "nothing built" in p.stdout, p.stderr
    p = run_module("build-kernels", "nope")
    assert p.returncode == 2 and "unknown kernel 'nope'" in p.stderr


def test_evaluate_prints_the_models_metrics(saved_model, tmp_path, capsys):
    import mfjax
    from mfjax.cli import main

    path, model = saved_model
    ratings, _ = mfjax.datasets.synthetic(50, 60, 1500, rank=3, seed=0)
    test = tmp_path / "test.csv"
    test.write_text("user,item,rating\n" + "\n".join(
        f"{u},{i},{r}" for u, i, r in zip(ratings.user_ids[ratings.users[:200]],
                                          ratings.item_ids[ratings.items[:200]],
                                          ratings.ratings[:200])))
    assert main(["evaluate", "--model", str(path), "--data", str(test), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = mfjax.evaluate(model, mfjax.load_ratings(str(test)))
    assert got["rmse"] == pytest.approx(want["rmse"], rel=1e-6) and got["n"] == 200
    assert main(["evaluate", "--model", str(path), "--data", str(tmp_path / "none.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err


@pytest.mark.slow  # a CLI run or sampler compile per case (~10 s each on 2 cores)
@pytest.mark.parametrize("extra, heldout", [(["--solver", "optax"], "test"),
                                            (["--solver", "optax", "--patience", "2"], "validation"),
                                            (["--objective", "ials", "--min-rating", "3"], "test")])
def test_every_run_writes_an_honestly_labelled_learning_curve(tmp_path, extra, heldout):
    out = tmp_path / "run"
    p = run("train.py", "--dataset", "synthetic", "--synthetic-size", "80", "60", "2000",
            "--epochs", "3", "--rank", "3", "--out", str(out), "--quiet", *extra)
    assert p.returncode == 0, p.stderr
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((out / "metrics.json").read_text())
    assert record["history_scored_on"] == heldout
    key = "val_ndcg@10" if "ials" in extra else "val_rmse"
    assert all(key in h for h in record["history"])


@pytest.mark.parametrize("command", ["train", "cv", "search", "recommend", "build-kernels"])
def test_help_says_each_default_once(command):
    p = run_module(command, "--help", env={"COLUMNS": "1000"})
    assert p.returncode == 0, p.stderr
    for line in p.stdout.splitlines():
        assert line.lower().count("default") <= 1 or "(default: " not in line, line
        assert "(default: None)" not in line, line
    assert "in the background" not in p.stdout and "else on first use" not in p.stdout


def test_build_kernels_is_described_as_what_the_install_does():
    p = run_module("--help", env={"COLUMNS": "1000"})
    line = next(l for l in p.stdout.splitlines() if "compile the C++" in l)
    assert "on first use" not in line and "install" in line, line


def test_train_implicit_on_stars_names_its_own_flag(tmp_path):
    """The library's UserWarning (source line, `train.binarize(4)`) becomes one line naming
    --min-rating."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = {(int(u), int(i)): int(r) for u, i, r in zip(rng.integers(0, 60, 1500),
                                                       rng.integers(0, 40, 1500),
                                                       rng.integers(1, 6, 1500))}
    data = tmp_path / "stars.csv"
    data.write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for (u, i), r in rows.items()))
    p = run("train.py", "--data", str(data), "--objective", "ials", "--epochs", "1", "--rank", "2",
            "--out", str(tmp_path / "run"), "--quiet")
    assert p.returncode == 0, p.stderr
    assert "pass --min-rating 4" in p.stderr and "binarize(4)" not in p.stderr, p.stderr
    assert "UserWarning" not in p.stderr and "warnings.warn" not in p.stderr, p.stderr
