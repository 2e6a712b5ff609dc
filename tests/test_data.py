"""Ratings container and load_ratings: every format, ID mapping and bad input."""

import dataclasses
import io
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

from mfjax.data import Ratings, load_ratings

# One small log used for every format: (user, item, rating, timestamp).
ROWS = [(196, 242, 3.0, 881250949), (186, 302, 3.0, 891717742), (22, 377, 1.0, 878887116),
        (196, 302, 4.5, 881250950), (7, 242, 5.0, 875000000)]


def expected_frame():
    return pd.DataFrame(ROWS, columns=["user", "item", "rating", "timestamp"])


def check_rows(r: Ratings, rows=ROWS, *, timestamps=True):
    df = r.to_frame()
    want = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    assert df["user"].tolist() == want["user"].tolist()
    assert df["item"].tolist() == want["item"].tolist()
    np.testing.assert_allclose(df["rating"], want["rating"])
    if timestamps:
        assert df["timestamp"].tolist() == want["timestamp"].tolist()
    else:
        assert r.timestamps is None


def lines(sep, header=None, rows=ROWS):
    out = [header] if header else []
    out += [sep.join(str(int(x) if float(x).is_integer() else x) for x in row) for row in rows]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- Ratings


def test_from_arrays_maps_sorted_ids():
    r = Ratings.from_arrays([30, 10, 20, 10], ["b", "a", "b", "c"], [1, 2, 3, 4])
    assert (len(r), r.n_users, r.n_items) == (4, 3, 3)
    assert r.user_ids.tolist() == [10, 20, 30]
    assert r.item_ids.tolist() == ["a", "b", "c"]
    assert r.users.tolist() == [2, 0, 1, 0]
    assert r.items.tolist() == [1, 0, 1, 2]
    assert r.users.dtype == np.int32 and r.items.dtype == np.int32
    assert r.ratings.dtype == np.float32
    assert r.timestamps is None
    assert r.rating_range == (1.0, 4.0)
    assert r.mean == pytest.approx(2.5)


def test_ratings_is_immutable():
    r = Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0], [5, 6])
    for name in ("users", "items", "ratings", "timestamps", "user_ids", "item_ids"):
        with pytest.raises(ValueError):
            getattr(r, name)[0] = 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.users = np.zeros(2, np.int32)


def test_constructor_does_not_freeze_callers_arrays():
    users = np.array([0, 1], np.int32)
    Ratings(users, np.array([0, 0], np.int32), np.array([1.0, 2.0], np.float32), None,
            np.array([5, 6]), np.array([7]))
    users[0] = 1  # still writable


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(users=[0, 2], items=[0, 0]), r"users\[1\] = 2 is outside \[0, 2\)"),
        (dict(users=[0, 1], items=[-1, 0]), r"items\[0\] = -1 is outside \[0, 1\)"),
        (dict(users=[0.0, 1.0], items=[0, 0]), "integer indices"),
        (dict(users=[0, 1, 1], items=[0, 0]), "lengths differ"),
        (dict(users=[0, 1], items=[0, 0], ratings=[1.0, np.nan]), "not finite"),
        (dict(users=[0, 1], items=[0, 0], ratings=[1.0, 2 + 1j]), "real numbers"),
        (dict(user_ids=[10, 10]), r"user_ids repeats the ID 10 \(positions 0 and 1\)"),
        (dict(item_ids=["a", "b", "a"]), r"item_ids repeats the ID 'a' \(positions 0 and 2\)"),
    ],
)
def test_constructor_validates(kwargs, match):
    args = dict(users=[0, 1], items=[0, 0], ratings=[1.0, 2.0], timestamps=None,
                user_ids=np.array([10, 11]), item_ids=np.array([20]))
    args.update({k: np.asarray(v) for k, v in kwargs.items()})
    with pytest.raises(ValueError, match=match):
        Ratings(**args)


@pytest.mark.parametrize(
    "args, match",
    [
        (([1, 2], [1], [3.0, 4.0]), "lengths differ"),
        (([], [], []), "empty"),
        (([1, 2], [1, 2], ["3", "x"]), r"ratings must be numeric; ratings\[1\] = 'x'"),
        (([1, 2], [1, 2], [3.0, np.nan]), r"ratings\[1\] = nan is not finite"),
        (([1, 2], [1, 2], [np.inf, 4.0]), r"ratings\[0\] = inf is not finite"),
        (([1, None], [1, 2], [3.0, 4.0]), "user ID at position 1 is missing"),
        (([1, 2], [1, 2], np.array([3.0, 4 + 1j])), r"not complex; ratings\[0\]"),
        (([1, 2], [1, 2], [3.0, 4 + 1j]), r"not complex; ratings\[1\]"),
        (([1, 2], [1, 2], np.array([True, False])), r"not bool; ratings\[0\]"),
        (([1, 2], [1, 2], [3.0, True]), r"not bool; ratings\[1\]"),
        (([1, 2], [1, 2], pd.Series([1.0, np.complex64(2)], dtype=object)), r"not complex; ratings\[1\]"),
        (([1, 2], [1, 2], [3.0, 4.0], [1.0, np.nan]), r"timestamps\[1\]"),
    ],
)
def test_from_arrays_validates(args, match):
    with pytest.raises(ValueError, match=match):
        Ratings.from_arrays(*args)


def test_from_arrays_timestamp_kinds():
    r = Ratings.from_arrays([1, 2], [1, 2], [1, 2], [10.0, 20.0])
    assert r.timestamps.tolist() == [10, 20] and r.timestamps.dtype == np.int64
    r = Ratings.from_arrays([1, 2], [1, 2], [1, 2], ["1970-01-01 00:00:10", "1970-01-01 00:00:20"])
    assert r.timestamps.tolist() == [10, 20]


def test_duplicates_keep_latest_by_timestamp():
    with pytest.warns(UserWarning, match="dropped 3 duplicate"):
        r = Ratings.from_arrays(
            [1, 1, 2, 1, 2], [5, 5, 6, 5, 6], [1.0, 2.0, 3.0, 4.0, 5.0], [30, 10, 7, 20, 5]
        )
    df = r.to_frame().sort_values(["user", "item"])
    # (1, 5) is latest at t=30 (the first row); (2, 6) latest at t=7.
    assert df["rating"].tolist() == [1.0, 3.0]
    assert df["timestamp"].tolist() == [30, 7]


def test_duplicates_keep_last_without_timestamps():
    with pytest.warns(UserWarning, match="dropped 1 duplicate.*last occurrence"):
        r = Ratings.from_arrays([1, 2, 1], [5, 5, 5], [1.0, 2.0, 3.0])
    assert sorted(r.to_frame()["rating"].tolist()) == [2.0, 3.0]


def test_no_warning_without_duplicates():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ratings.from_arrays([1, 1, 2], [1, 2, 1], [1.0, 2.0, 3.0])


def test_index_users_and_items():
    r = Ratings.from_arrays([10, 20, 30], ["a", "b", "c"], [1, 2, 3])
    assert r.index_users(20) == 1 and isinstance(r.index_users(20), np.int32)
    assert r.index_users(np.int64(30)) == 2
    np.testing.assert_array_equal(r.index_users([30, 10]), [2, 0])
    np.testing.assert_array_equal(r.index_users(np.array([[10], [20]])), [[0], [1]])
    assert r.index_items("c") == 2
    np.testing.assert_array_equal(r.index_items(np.array(["b", "a"])), [1, 0])
    with pytest.raises(KeyError, match="unknown user ID 99"):
        r.index_users([10, 99])
    with pytest.raises(TypeError, match="user ID '10' has type str.*integers: pass 10"):
        r.index_users("10")  # the string '10' is not the int 10, and is refused, not unknown
    with pytest.raises(KeyError, match="unknown item ID 'z'"):
        r.index_items("z")
    np.testing.assert_array_equal(r.index_users([10, 99, 30], missing="ignore"), [0, -1, 2])
    assert r.index_items("zz", missing="ignore") == -1
    with pytest.raises(ValueError, match="missing must be"):
        r.index_users(10, missing="skip")


def test_subset_shares_id_space():
    r = Ratings.from_arrays([1, 2, 3, 4], [1, 1, 2, 2], [1, 2, 3, 4], [4, 3, 2, 1])
    a = r.subset(np.array([True, False, False, True]))
    b = r.subset([2])
    assert len(a) == 2 and len(b) == 1
    for s in (a, b):
        assert (s.n_users, s.n_items) == (4, 2)
        assert np.shares_memory(s.user_ids, r.user_ids)
    assert a.to_frame()["user"].tolist() == [1, 4]
    assert b.timestamps.tolist() == [2]
    with pytest.raises(ValueError, match="boolean mask has shape"):
        r.subset(np.array([True, False]))
    with pytest.raises(ValueError, match="integer indices"):
        r.subset(np.array([0.5]))
    empty = r.subset(np.zeros(4, bool))
    assert len(empty) == 0 and empty.n_users == 4
    with pytest.raises(ValueError, match="empty"):
        empty.rating_range


def test_repr():
    assert repr(Ratings.from_arrays([1], [2], [3])) == (
        "Ratings(1 ratings, 1 users, 1 items, without timestamps)"
    )


# ------------------------------------------------------------- load_ratings


def _zip(path, member, text, encoding="utf-8"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member.rsplit("/", 1)[0] + "/", "") if "/" in member else None
        zf.writestr(member, text.encode(encoding))
        zf.writestr(member.rsplit("/", 1)[0] + "/README" if "/" in member else "README", "x")
    return path


FORMAT_CASES = {
    # name: (file name, text, load_ratings kwargs)
    "u.data": ("u.data", lines("\t"), {}),
    "u.data spaces": ("u.data", lines(" "), {}),
    "u1.base": ("u1.base", lines("\t"), {}),
    "ratings.dat": ("ratings.dat", lines("::"), {}),
    "ratings.csv": ("ratings.csv", lines(",", "userId,movieId,rating,timestamp"), {}),
    "inter": ("ml.inter", lines("\t", "user_id:token\titem_id:token\trating:float\ttimestamp:float"), {}),
    "tsv": ("log.tsv", lines("\t", "user_id\titem_id\trating\ttimestamp"), {}),
    "csv named": ("log.csv", lines(";", "who;what;stars;when"),
                  dict(user_col="who", item_col="what", rating_col="stars", time_col="when", sep=";")),
    "csv reordered": ("log.csv", "\n".join(
        ["ts,score,item_id,user_id,extra"] + [f"{t},{r},{i},{u},x" for u, i, r, t in ROWS]) + "\n",
        dict(time_col="ts", rating_col="score")),
    "sniff dat": ("ratings.txt", lines("::"), {}),
    "sniff udata": ("data.txt", lines("\t"), {}),
    "sniff csv": ("data.txt", lines(",", "userId,movieId,rating,timestamp"), {}),
    "format= dat": ("whatever", lines("::"), dict(format="dat")),
    "format= tsv": ("whatever", lines("\t", "userId\tmovieId\trating\ttimestamp"), dict(format="tsv")),
}


@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_load_formats(tmp_path, case):
    name, text, kwargs = FORMAT_CASES[case]
    path = tmp_path / name
    path.write_text(text)
    check_rows(load_ratings(path, **kwargs))


@pytest.mark.parametrize(
    "archive, member, text",
    [
        ("ml-100k.zip", "ml-100k/u.data", lines("\t")),
        ("ml-1m.zip", "ml-1m/ratings.dat", lines("::")),
        ("ml-10m.zip", "ml-10M100K/ratings.dat", lines("::")),
        ("ml-20m.zip", "ml-20m/ratings.csv", lines(",", "userId,movieId,rating,timestamp")),
        ("ml-latest-small.zip", "ml-latest-small/ratings.csv",
         lines(",", "userId,movieId,rating,timestamp")),
        ("x.whl", "pkg/data/ml.inter",
         lines("\t", "user_id:token\titem_id:token\trating:float\ttimestamp:float")),
    ],
)
def test_load_zip_archives_in_memory(tmp_path, archive, member, text):
    path = _zip(tmp_path / archive, member, text)
    r = load_ratings(path)
    check_rows(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive]  # nothing extracted
    check_rows(load_ratings(path, member=member))


def test_zip_member_errors(tmp_path):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.csv", "x")
        zf.writestr("b.csv", "y")
    with pytest.raises(ValueError, match="pass member=.*a.csv, b.csv"):
        load_ratings(path)
    with pytest.raises(FileNotFoundError, match="no member 'c.csv'"):
        load_ratings(path, member="c.csv")


def test_load_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "r.parquet"
    expected_frame().rename(columns={"user": "user_id", "item": "item_id"}).to_parquet(path)
    check_rows(load_ratings(path))
    with pytest.raises(ValueError, match="no column 'uid'.*found columns: 'user_id', 'item_id'"):
        load_ratings(path, user_col="uid")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_parquet_non_finite_rating(tmp_path, bad):
    pytest.importorskip("pyarrow")
    path = tmp_path / "r.parquet"
    df = expected_frame()
    df.loc[3, "rating"] = bad
    df.to_parquet(path)
    with pytest.raises(ValueError, match=r"r\.parquet: (missing or NaN|non-finite \(NaN/inf\)) rating \(row 3\)"):
        load_ratings(path)


def test_parquet_inside_zip(tmp_path):
    pytest.importorskip("pyarrow")
    buf = io.BytesIO()
    expected_frame().to_parquet(buf)
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("d/ratings.parquet", buf.getvalue())
    check_rows(load_ratings(path))


def test_string_ids(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\nalice,The Matrix,5\nbob,Heat,3\nalice,Heat,4\n")
    r = load_ratings(path)
    assert r.user_ids.tolist() == ["alice", "bob"]
    assert r.index_items("Heat") == 0
    assert r.timestamps is None


CSV_TEXT = lines(",", "userId,movieId,rating,timestamp")


@pytest.mark.parametrize(
    "name, raw",
    [
        ("r.csv", CSV_TEXT.replace("\n", "\r\n").encode()),  # Windows line endings
        ("r.csv", b"\xef\xbb\xbf" + CSV_TEXT.encode()),  # UTF-8 BOM
        ("r.csv", b"\xef\xbb\xbf" + CSV_TEXT.replace("\n", "\r\n").encode()),
        ("ratings.dat", b"\xef\xbb\xbf" + lines("::").replace("\n", "\r\n").encode()),
        ("u.data", lines("\t").replace("\n", "\r\n").encode()),
        ("r.csv", (CSV_TEXT + "\n\n \n").encode()),  # trailing blank lines
        ("ratings.dat", (lines("::") + "\r\n\r\n").encode()),
        ("u.data", (lines("\t") + "\n\n").encode()),
        ("r.csv", ('"userId","movieId","rating","timestamp"\n'  # quoted fields
                   + "".join(f'"{u}","{i}","{r}","{t}"\n' for u, i, r, t in ROWS)).encode()),
    ],
)
def test_text_quirks(tmp_path, name, raw):
    path = tmp_path / name
    path.write_bytes(raw)
    check_rows(load_ratings(path))


def test_trailing_delimiter_on_every_line_is_tolerated(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,3,\n4,5,6,\n")
    assert load_ratings(path).to_frame()["rating"].tolist() == [3.0, 6.0]


def test_quoted_field_with_separator(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('user,item,rating\n"Doe, Jane","Heat, 1995",4\n')
    r = load_ratings(path)
    assert r.user_ids.tolist() == ["Doe, Jane"] and r.item_ids.tolist() == ["Heat, 1995"]


HEADER = "userId,movieId,rating,timestamp\n"


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("r.csv", HEADER + "1,2,3,4\n1,2,3,4,5\n", r"r\.csv, line 3: expected 4 fields, found 5"),
        ("r.csv", HEADER + "1,2,3,4\n\n5,6,7\n", r"r\.csv, line 4: expected 4 fields, found 3"),
        ("r.csv", HEADER + "1,2,3,4\n1,3,abc,4\n", r"r\.csv, line 3: rating 'abc' is not a number"),
        ("r.csv", HEADER + "1,2,3,4\n1,3,,4\n", r"r\.csv, line 3: rating '' is not a number"),
        ("r.csv", HEADER + "1,2,NaN,4\n", r"r\.csv, line 2: rating 'NaN' is not finite"),
        ("r.csv", HEADER + "1,2,3,4\n1,3,inf,4\n", r"r\.csv, line 3: rating 'inf' is not finite"),
        ("r.csv", HEADER + "1,2,3,4\n1,3,-inf,4\n", r"line 3: rating '-inf' is not finite"),
        ("r.csv", HEADER + "1,2,3,4\n,3,4,5\n", r"r\.csv, line 3: empty user ID"),
        ("u.data", "1\t2\t3\t4\n1\t2\t3\n", r"u\.data, line 2: expected 4 fields, found 3"),
        ("u.data", "1\t2\t3\t4\n1\t2\t3\t4\t5\n", r"u\.data, line 2: expected 4 fields, found 5"),
        ("u.data", "1\t2\t3\t4\n1\t2\tfive\t4\n", r"u\.data, line 2: rating 'five' is not a number"),
        ("ratings.dat", "1::2::3::4\n1::2::3\n", r"ratings\.dat, line 2: expected 4 fields, found 3"),
        ("ratings.dat", "1::2::3::4\n1::2::3::4::5\n", r"line 2: expected 4 fields, found 5"),
        ("ratings.dat", "1::2::3::4\n1:2::3::4\n", r"line 2: expected 4 fields, found 3"),
        ("ratings.dat", "1::2::3::4\n1::2::nan::4\n", r"line 2: rating 'nan' is not finite"),
        ("x.inter", "user_id:token\titem_id:token\trating:float\n1\t2\tx\n",
         r"x\.inter, line 2: rating 'x' is not a number"),
        ("u.data", "1\t2\n", "first line: expected 3 or 4 fields"),
        ("r.csv", "user,item,rating\n1,2,3,4\n5,6,7,8\n", r"r\.csv, line 2: expected 3 fields, found 4"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        load_ratings(path)
    assert str(path) in str(e.value)


def test_malformed_line_inside_zip(tmp_path):
    path = _zip(tmp_path / "ml-1m.zip", "ml-1m/ratings.dat", "1::2::3::4\n5::6::x::7\n")
    with pytest.raises(ValueError, match=r"ml-1m\.zip \(member ml-1m/ratings\.dat\), line 2"):
        load_ratings(path)


def test_crlf_line_numbers(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes((HEADER + "1,2,3,4\n1,3,oops,4\n").replace("\n", "\r\n").encode())
    with pytest.raises(ValueError, match="line 3: rating 'oops'"):
        load_ratings(path)


@pytest.mark.parametrize(
    "name, raw, match",
    [
        ("r.csv", b"", "empty"),
        ("r.csv", b"\n\n", "empty"),
        ("r.csv", HEADER.encode(), "header but no rows"),
        ("r.csv", b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n", "header but no rows"),
        ("u.data", b"", "empty"),
        ("ratings.dat", b"", "empty"),
        ("x.inter", b"user_id:token\titem_id:token\trating:float\n", "header but no rows"),
        ("noext", b"", "empty"),
    ],
)
def test_empty_inputs(tmp_path, name, raw, match):
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=match):
        load_ratings(path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(user_col="uid"), r"no column 'uid' \(user_col\); found columns: 'userId', 'movieId', 'rating', 'timestamp'"),
        (dict(rating_col="stars"), r"no column 'stars' \(rating_col\); found columns: 'userId'"),
        (dict(time_col="when"), r"no column 'when' \(time_col\)"),
    ],
)
def test_missing_named_column(tmp_path, kwargs, match):
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "1,2,3,4\n")
    with pytest.raises(ValueError, match=match):
        load_ratings(path, **kwargs)


def test_unguessable_columns_list_found(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"cannot find the user column.*Found columns: 'a', 'b', 'c'"):
        load_ratings(path)


def test_missing_path_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_ratings(tmp_path / "nope.csv")
    path = tmp_path / "u.data"
    path.write_text(lines("\t"))
    with pytest.raises(ValueError, match="format must be one of"):
        load_ratings(path, format="xlsx")
    with pytest.raises(ValueError, match="no header"):
        load_ratings(path, user_col="u")
    with pytest.raises(ValueError, match="is a directory"):
        load_ratings(tmp_path)


def test_duplicates_in_file_warn_and_keep_latest(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "1,2,5,200\n1,2,1,100\n3,4,2,1\n3,4,4,1\n")
    with pytest.warns(UserWarning, match="dropped 2 duplicate") as rec:
        r = load_ratings(path)
    assert rec[0].filename == __file__  # attributed to the caller, not mfjax internals
    assert r.to_frame().sort_values("user")["rating"].tolist() == [5.0, 4.0]


def test_datetime_time_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,date\n1,2,3,1970-01-02\n")
    assert load_ratings(path).timestamps.tolist() == [86400]


def test_latin1_encoding(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("user,item,rating\nJosé,1,3\n".encode("latin-1"))
    assert load_ratings(path, encoding="latin-1").user_ids.tolist() == ["José"]
