"""Reliability of the data layer (issue #14): hostile files, odd IDs, corrupt archives, a fuzz pass.

Every reader outcome must be either exactly the original ratings or a
ValueError naming the file.
"""

import gzip
import io
import os
import zipfile

import numpy as np
import pytest

from mfjax import datasets, split
from mfjax.data import Ratings, load_ratings
MAX_LINE = 1 << 20  # mfjax.data.parsing.MAX_LINE, once it exists

# ------------------------------------------------------------------ #1 quotes


def test_stray_quote_in_tsv_is_a_literal_character(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('user\titem\trating\n"u1\t1\t3\nu2\t2\t4\nu3\t3\t5\nu4"\t4\t5\nu5\t5\t1\n')
    r = load_ratings(path)
    assert len(r) == 5
    assert sorted(r.user_ids.tolist()) == ['"u1', "u2", "u3", 'u4"', "u5"]


@pytest.mark.parametrize("name, text", [
    ("ratings.dat", '"1::2::3::4\n5::6::7::8\n9"::1::2::3\n'),
    ("u.data", '"1\t2\t3\t4\n5\t6\t7\t8\n9"\t1\t2\t3\n'),
    ("x.inter", 'user_id:token\titem_id:token\trating:float\n"a\t1\t3\nb\t2\t4\nc"\t3\t5\n'),
])
def test_quotes_are_literal_in_tab_and_colon_formats(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert len(load_ratings(path)) == 3


def test_quoted_newline_in_csv_id_is_rejected_with_line(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('user,item,rating\n"u1,1,3\nu2,2,4\nu3,3,5\nu4",4,5\nu5,5,1\n')
    with pytest.raises(ValueError, match=r"q\.csv, line 2: .*newline"):
        load_ratings(path)


def test_unterminated_quote_in_csv_names_the_line(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('user,item,rating\nu1,1,3\n"u2,2,4\nu3,3,5\n')
    with pytest.raises(ValueError, match=r"q\.csv, line 3"):
        load_ratings(path)


# ------------------------------------------------------------------ #2 IDs


def test_mixed_type_ids_are_rejected():
    with pytest.raises(ValueError, match=r"raw_users.*mix.*int.*str"):
        Ratings.from_arrays([1, "1", 2.0, "a"], [1, 2, 3, 4], [1, 2, 3, 4])


def test_homogeneous_ids_still_work_and_lookups_agree():
    r = Ratings.from_arrays(["1", "2", "a"], [1, 2, 3], [1, 2, 3])
    assert r.user_ids.tolist() == ["1", "2", "a"]
    assert r.index_users("1") == 0 and r.index_users(3, missing="ignore") == -1
    with pytest.raises(TypeError, match="pass '1'"):  # the int 1 names the ID '1': refused
        r.index_users(1, missing="ignore")
    r = Ratings.from_arrays(np.array([3, 1], dtype=object), [1, 2], [1, 2])
    assert r.index_users(1) == 0


@pytest.mark.parametrize("word", ["NA", "null", "None", "nan", "N/A", "NaN", "#N/A"])
def test_na_words_are_ids(tmp_path, word):
    path = tmp_path / "r.csv"
    path.write_text(f"user,item,rating\n{word},1,3\nbob,{word},4\n")
    r = load_ratings(path)
    assert sorted(r.user_ids.tolist()) == sorted([word, "bob"])
    assert r.index_items(word) >= 0


def test_leading_zeros_keep_ids_as_strings(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n007,1,3\n7,2,4\n")
    r = load_ratings(path)
    assert r.user_ids.tolist() == ["007", "7"]
    assert r.item_ids.tolist() == [1, 2]  # plain integers stay ints


def test_spaced_or_signed_integers_keep_ids_as_strings(tmp_path):
    # pandas reads " 7" and "+7" as the integer 7 (found by the fuzz pass).
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n 7,1,3\n7,2,4\n+7,3,5\n")
    assert sorted(load_ratings(path).user_ids.tolist()) == [" 7", "+7", "7"]
    path = tmp_path / "r.tsv"
    path.write_text("user\titem\trating\n7\t1\t3\n7 \t2\t4\n")
    assert sorted(load_ratings(path).user_ids.tolist()) == ["7", "7 "]


# ------------------------------------------------------------------ #9 timestamps


@pytest.mark.parametrize("stamp", ["1e30", "-1e30", "100000000000000000000"])
def test_out_of_range_timestamp_names_the_line(tmp_path, stamp):
    path = tmp_path / "r.csv"
    path.write_text(f"user,item,rating,timestamp\n1,2,3,5\n1,2,4,{stamp}\n")
    with pytest.raises(ValueError, match=r"r\.csv, line 3: timestamp .* out of range"):
        load_ratings(path)


def test_out_of_range_timestamp_in_from_arrays():
    with pytest.raises(ValueError, match=r"timestamps\[1\].*out of range"):
        Ratings.from_arrays([1, 1], [2, 2], [3, 4], np.array([5.0, 1e30]))


# ------------------------------------------------------------------ #12 corrupt zips


def _zip_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-1m/ratings.dat", text)
    return buf.getvalue()


RATINGS_DAT = "".join(f"{u}::{i}::{(u * i) % 5 + 1}::{1000 + u}\n" for u in range(1, 60) for i in (1, 2))


@pytest.mark.parametrize("where", ["crc", "deflate"])
def test_corrupt_zip_member_is_a_value_error(tmp_path, where):
    data = bytearray(_zip_bytes(RATINGS_DAT))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode())
    if where == "crc":
        data[info.header_offset + 14] ^= 0xFF  # local header CRC (central one kept)
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
            pass
        # zipfile checks the central directory's CRC: change that one too
        cd = data.rfind(b"PK\x01\x02")
        data[cd + 16] ^= 0xFF
    else:
        data[start + info.compress_size // 2] ^= 0xFF
    path = tmp_path / "crc.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"crc\.zip.*ml-1m/ratings\.dat.*corrupt"):
        load_ratings(path)


# ------------------------------------------------------------------ #14 hand-placed archives


def test_hand_placed_archive_with_other_hash_is_kept(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    text = "userId,movieId,rating,timestamp\n1,2,3.5,100\n2,3,4,200\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-latest-small/ratings.csv", text)
    (home / "ml-latest-small.zip").write_bytes(buf.getvalue())
    with pytest.raises(datasets.DatasetUnavailable, match=r"sha256.*differs.*kept.*verify=False"):
        datasets.movielens("latest-small", data_home=home, download=False)
    assert (home / "ml-latest-small.zip").read_bytes() == buf.getvalue()
    r = datasets.movielens("latest-small", data_home=home, download=False, verify=False)
    assert len(r) == 2
    assert (home / "ml-latest-small.zip").exists()


# ------------------------------------------------------------------ #16 messages


def test_gzip_file_is_named_as_gzip(tmp_path):
    path = tmp_path / "ratings.csv.gz"
    path.write_bytes(gzip.compress(b"userId,movieId,rating\n1,2,3\n"))
    with pytest.raises(ValueError, match=r"ratings\.csv\.gz.*gzip"):
        load_ratings(path)


@pytest.mark.parametrize("raw", [_zip_bytes(RATINGS_DAT)[:200], b"PK\x03\x04 not really a zip"],
                         ids=["truncated", "fake"])  # the zip holds a timestamp
def test_truncated_or_fake_zip_is_named(tmp_path, raw):
    path = tmp_path / "data.zip"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=r"data\.zip.*(truncated|not a valid) zip"):
        load_ratings(path)


@pytest.mark.parametrize("rating", ["1e300", "1_0", "-1e39"])
def test_bad_rating_names_the_line(tmp_path, rating):
    path = tmp_path / "r.csv"
    path.write_text(f"user,item,rating\n1,2,3\n1,3,{rating}\n")
    with pytest.raises(ValueError, match=r"r\.csv, line 3: rating"):
        load_ratings(path)


# ------------------------------------------------------------------ #18 endless streams


def test_overlong_line_stops_with_an_error(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"user,item,rating\n1,2,3\n" + b"9" * (MAX_LINE + 10) + b",1,2\n")
    with pytest.raises(ValueError, match=r"r\.csv, line 3: .*longer than"):
        load_ratings(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused():
    with pytest.raises(ValueError, match="/dev/zero"):
        load_ratings("/dev/zero")


# ------------------------------------------------------------------ #8 synthetic


def test_synthetic_pairs_are_distinct():
    r, _ = datasets.synthetic(300, 200, 20_000, seed=0)
    key = r.users.astype(np.int64) * r.n_items + r.items
    assert len(np.unique(key)) == len(r) == 20_000
    r.to_csr()  # no repeated pairs
    with pytest.raises(ValueError, match="n_ratings.*60,000"):
        datasets.synthetic(300, 200, 60_001)
    full, _ = datasets.synthetic(30, 20, 600, seed=1)  # every pair
    assert len(np.unique(full.users.astype(np.int64) * 20 + full.items)) == 600


# ------------------------------------------------------------------ #15 argument checks


@pytest.fixture(scope="module")
def small():
    return Ratings.from_arrays(np.arange(20) % 5, np.arange(20), np.ones(20), np.arange(20))


@pytest.mark.parametrize("call, match", [
    (lambda r: split.holdout([1, 2, 3]), r"holdout: r must be a Ratings"),
    (lambda r: split.holdout(r, test_fraction="x"), r"holdout: test_fraction"),
    (lambda r: split.holdout(r, seed=-1), r"holdout: seed"),
    (lambda r: split.kfold(r, seed="a"), r"kfold: seed"),
    (lambda r: split.per_user(r, min_train=None), r"per_user: min_train"),
    (lambda r: split.per_user(r, test_fraction=True), r"per_user: test_fraction"),
    (lambda r: split.temporal(None), r"temporal: r must be a Ratings"),
    (lambda r: Ratings.from_arrays([1], [2], [3], timestamps="abc"), r"timestamps"),
    (lambda r: Ratings.from_arrays(None, [2], [3]), r"raw_users"),
])
def test_arguments_are_named(small, call, match):
    with pytest.raises(ValueError, match=match):
        call(small)


# ------------------------------------------------------------------ fuzz pass
#
# Small valid files of each format are mutated (a byte replaced, the file cut
# short, a '"' inserted) and read. Every outcome must be one of
#   exact: the original ratings (same IDs, ratings, timestamps; any order);
#   valid: what the mutated text says, by an independent line-by-line reading
#          (a digit flipped to another digit is a different, valid file);
#   error: a ValueError whose message holds the file's path.
# Anything else (another exception, or ratings that neither match) is a bug.
# Header lines are not mutated (column detection has its own tests); zip
# archives are mutated anywhere and must give the original or an error.

FUZZ_ROWS = [(1, 10, 4.0, 881250949), (1, 20, 3.5, 881250950), (2, 10, 5.0, 881250951),
             (3, 30, 1.0, 881250952), (3, 40, 2.5, 881250953), (4, 20, 4.5, 881250954),
             (5, 50, 3.0, 881250955), (12, 10, 2.0, 881250956)]
FUZZ_FORMATS = {
    # name: (file name, header, separator)
    "csv": ("r.csv", "userId,movieId,rating,timestamp", ","),
    "tsv": ("r.tsv", "user_id\titem_id\trating\ttimestamp", "\t"),
    "dat": ("ratings.dat", None, "::"),
    "udata": ("u.data", None, "\t"),
    "inter": ("r.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float", "\t"),
    "zip": ("ml-1m.zip", None, "::"),
}
_NUM = __import__("re").compile(r"[ \t\v\f]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[ \t\v\f]*")


def fuzz_text(fmt: str) -> str:
    _, header, sep = FUZZ_FORMATS[fmt]
    body = "".join(f"{u}{sep}{i}{sep}{r:g}{sep}{t}\n" for u, i, r, t in FUZZ_ROWS)
    return (header + "\n" + body) if header else body


def _reference(raw: bytes, fmt: str):
    """The ratings the bytes hold, read independently of mfjax, or None where invalid."""
    import csv
    import re

    _, header, sep = FUZZ_FORMATS[fmt]
    if b"\x00" in raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if fmt == "csv":
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=","))
    else:
        lines = re.split(r"\r\n|\r|\n", text)
        if fmt == "udata":
            records = [re.split(r"[ \t]+", ln.strip(" \t")) if ln.strip(" \t") else [] for ln in lines]
        else:
            records = [ln.replace("::", "\t").split("\t") if ln else [] for ln in lines]
    records = [r for r in records if r != [] and r != [""]]
    if header:
        if not records or records[0] != header.split(sep):
            return None
        records = records[1:]
    if not records:
        return None
    out = {}
    width = 3 if not header and len(records[0]) == 3 else 4  # u.data/.dat may lack timestamps
    for rec in records:
        if header and len(rec) == 5 and rec[4] == "":
            rec = rec[:4]  # a trailing separator is tolerated
        if len(rec) != width:
            return None
        u, i, r, t = rec if width == 4 else rec + ["0"]
        if not u or not i or any(c in u + i for c in "\r\n"):
            return None
        if not _NUM.fullmatch(r) or not _NUM.fullmatch(t):
            return None
        r, t = float(r), float(t)
        if not (np.isfinite(r) and abs(r) < 3.4e38 and abs(t) < 2.0**63):
            return None
        t = int(np.rint(t))
        if (u, i) not in out or t >= out[(u, i)][1]:
            out.pop((u, i), None)
            out[(u, i)] = (float(np.float32(r)), t)
    ids = {}
    for col in (0, 1):
        vals = {k[col] for k in out}
        plain = all(__import__("re").fullmatch(r"-?(0|[1-9][0-9]{0,17})", v) for v in vals)
        ids[col] = (lambda v: str(int(v))) if plain else (lambda v: v)
    return sorted((ids[0](u), ids[1](i), r, t) for (u, i), (r, t) in out.items())


def _loaded(r: Ratings):
    f = r.to_frame()
    t = f["timestamp"] if "timestamp" in f else [0] * len(f)
    return sorted(zip(map(str, f["user"]), map(str, f["item"]), map(float, f["rating"]), map(int, t)))


def fuzz_case(rng, fmt: str, folder) -> tuple[str, str]:
    """One mutated file read by load_ratings: (outcome, detail); outcome in exact/valid/error/other."""
    import warnings

    name, header, _ = FUZZ_FORMATS[fmt]
    text = fuzz_text(fmt)
    if fmt == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("ml-1m/ratings.dat", text)
            zf.writestr("ml-1m/README", "x")
        raw, lo = bytearray(buf.getvalue()), 0
    else:
        raw = bytearray(text.encode())
        lo = len(header) + 1 if header else 0
    kind = rng.choice(["flip", "cut", "quote", "flip2"])
    if kind == "flip" or kind == "flip2":
        for _ in range(1 if kind == "flip" else 2):
            raw[int(rng.integers(lo, len(raw)))] = int(rng.integers(0, 256))
    elif kind == "cut":
        raw = raw[: int(rng.integers(max(lo, 1), len(raw)))]
    else:
        p = int(rng.integers(lo, len(raw) + 1))
        raw[p:p] = b'"'
    path = os.path.join(str(folder), name)
    with open(path, "wb") as f:
        f.write(bytes(raw))
    original = sorted((str(u), str(i), r, t) for u, i, r, t in FUZZ_ROWS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = _loaded(load_ratings(path))
    except ValueError as e:
        return ("error", str(e)[:200]) if path in str(e) else ("other", f"no path: {e}")
    except Exception as e:  # noqa: BLE001 - any other exception is the bug being looked for
        return "other", f"{kind} {type(e).__name__}: {e}"[:300]
    if got == original:
        return "exact", ""
    if fmt != "zip" and got == _reference(bytes(raw), fmt):
        return "valid", ""
    return "other", f"{kind}: {bytes(raw)!r} read as {got} (reference {_reference(bytes(raw), fmt)})"[:600]


def run_fuzz(n_cases: int, seed: int, folder) -> dict:
    rng = np.random.default_rng(seed)
    counts = {"exact": 0, "valid": 0, "error": 0, "other": 0}
    others = []
    fmts = list(FUZZ_FORMATS)
    for j in range(n_cases):
        outcome, detail = fuzz_case(rng, fmts[j % len(fmts)], folder)
        counts[outcome] += 1
        if outcome == "other":
            others.append(detail)
    return {"counts": counts, "others": others}


def test_fuzz_readers(tmp_path):
    res = run_fuzz(240, seed=14, folder=tmp_path)
    assert res["counts"]["other"] == 0, "\n".join(res["others"][:5])
    assert res["counts"]["error"] > 20 and res["counts"]["exact"] + res["counts"]["valid"] > 20


# ------------------------------------------------------------ solver fuzz (issue #22)
# Random small data with extreme values and random extreme hyperparameters, for every
# model. Every outcome must be finite factors (a model whose every table is finite) or a
# ValueError / TypeError / FloatingPointError with a message. The long run is
# benchmarks/fuzz_solvers.py (counts in benchmarks/RESULTS.md).

#: The (solver, objective) pairs the fuzz covers; ials twice (exact solves and 3-step CG).
SOLVER_ROUTES = (("optax", "explicit"), ("als", "explicit"), ("gibbs", "explicit"),
                 ("als", "ials/cg0"), ("als", "ials/cg3"), ("optax", "bpr"))
#: What a case may raise: a clear refusal.
CLEAR_ERRORS = (ValueError, TypeError, FloatingPointError)


def solver_fuzz_case(rng, route):
    """``(train, kwargs for mfjax.fit, description)``: random data and hyperparameters."""
    import mfjax

    solver, objective = route
    n_users, n_items = int(rng.integers(1, 25)), int(rng.integers(1, 20))
    nnz = int(rng.integers(1, n_users * n_items + 1))
    pairs = rng.choice(n_users * n_items, nnz, replace=False)
    scale = float(rng.choice([1e-30, 1e-6, 1.0, 5.0, 1e4, 1e9, 1e30]))
    shape = rng.choice(["stars", "constant", "uniform", "counts", "zeros"])
    if shape == "stars":
        values = rng.integers(1, 6, nnz) * scale
    elif shape == "constant":
        values = np.full(nnz, scale)
    elif shape == "uniform":
        values = rng.uniform(-scale if objective == "explicit" else 0.0, scale, nnz)
    elif shape == "counts":
        values = np.minimum(rng.zipf(1.5, nnz), 5e4) * min(scale, 1e4)
    else:
        values = np.zeros(nnz)
    train = mfjax.Ratings.from_arrays(pairs // n_items, pairs % n_items, values)
    pick = lambda *xs: xs[int(rng.integers(len(xs)))]
    kw = dict(rank=pick(1, 2, 8, 64), epochs=pick(1, 2, 3), progress=False,
              seed=int(rng.integers(0, 1000)))
    if objective == "explicit":
        kw["solver"] = solver
        if solver == "gibbs":
            kw.update(burn_in=pick(0, 1, 3), samples=pick(1, 2, 4))
            del kw["epochs"]
        else:
            kw["reg"] = pick(0.0, 1e-9, 0.02, 10.0, 1e9)
        if solver == "optax":
            kw.update(learning_rate=pick(1e-4, 0.01, 1.0, 1e3), batch_size=pick(1, 7, 256))
    else:
        kw["objective"] = objective.split("/")[0]
        kw["reg"] = pick(0.0, 1e-9, 0.01, 10.0, 1e9)
        if objective.startswith("ials"):
            kw.update(cg_steps=int(objective[-1]), alpha=pick(0.0, 1.0, 40.0, 1e4),
                      unobserved_weight=pick(0.0, 0.3, 10.0), nu=pick(0.0, 1.0))
        else:
            kw.update(learning_rate=pick(1e-4, 0.05, 10.0), batch_size=pick(1, 7, 256))
    desc = (f"{solver}/{objective} {n_users}x{n_items} nnz={nnz} values={shape}*{scale:g} "
            + " ".join(f"{k}={v}" for k, v in kw.items() if k != "progress"))
    return train, kw, desc


def run_solver_case(train, kw, desc):
    """``(outcome, detail)``: outcome "finite", "ValueError"/"TypeError"/"FloatingPointError"
    (a clear refusal, with a message) or "other" (a bug: non-finite tables, another
    exception, an empty message)."""
    import warnings

    import mfjax

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = mfjax.fit(train, **kw)
    except CLEAR_ERRORS as e:
        if not str(e).strip():
            return "other", f"{desc}: {type(e).__name__} without a message"
        return type(e).__name__, f"{desc}: {e}"[:400]
    except Exception as e:  # noqa: BLE001 - anything else is what the fuzz looks for
        return "other", f"{desc}: {type(e).__name__}: {e}"[:600]
    bad = [name for name, table in model.params._asdict().items()
           if not np.isfinite(np.asarray(table)).all()]
    if bad:
        return "other", f"{desc}: non-finite {bad}"
    return "finite", desc


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", [*range(12), *(pytest.param(c, marks=pytest.mark.slow)
                                                for c in range(12, 24))])
def test_solver_fuzz(case):
    rng = np.random.default_rng([22, case])
    route = SOLVER_ROUTES[case % len(SOLVER_ROUTES)]
    outcome, detail = run_solver_case(*solver_fuzz_case(rng, route))
    assert outcome != "other", detail
