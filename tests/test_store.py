from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request

import numpy as np
import pytest

from hmlearn.data import store
from hmlearn.data.registry import DATASETS, get_spec
from hmlearn.errors import ChecksumError, DatasetNotFoundError

from .conftest import SHARED_DATA, requires_shared

TOY = b"""@RELATION toy
@ATTRIBUTE x numeric
@ATTRIBUTE class hierarchical a,a/b
@DATA
1,a/b
2,a
"""


def test_every_standard_dataset_is_registered_by_name():
    names = {f"{d}_{f}" for d in ("cellcycle", "derisi", "eisen", "expr", "gasch1", "gasch2", "seq", "spo")
             for f in ("FUN", "GO")} | {"diatoms_others", "enron_others", "imclef07a_others", "imclef07d_others"}
    assert set(DATASETS) == names
    assert get_spec("DERISI_fun").name == "derisi_FUN"
    with pytest.raises(DatasetNotFoundError, match="unknown dataset 'derisi'.*derisi_FUN"):
        get_spec("derisi")
    for spec in DATASETS.values():
        assert spec.url("test").startswith("https://") and spec.files["test"] in spec.url("test")


def test_locate_follows_the_documented_order(tmp_path, monkeypatch):
    spec = DATASETS["imclef07d_others"]  # not in ../shared, so only our folders can hold it
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", tmp_path / "cache"
    for root in (explicit, env, cache / "hmc_data"):
        (root / "others").mkdir(parents=True)
        (root / spec.files["train"]).write_bytes(TOY)
    monkeypatch.setenv("HMLEARN_DATA", str(env))
    monkeypatch.setenv("HMLEARN_CACHE", str(cache))
    assert store.locate(spec, "train", explicit) == explicit / spec.files["train"]
    assert store.locate(spec, "train") == env / spec.files["train"]
    monkeypatch.delenv("HMLEARN_DATA")
    assert store.locate(spec, "train") == cache / "hmc_data" / spec.files["train"]
    (cache / "hmc_data" / spec.files["train"]).unlink()
    assert store.locate(spec, "train") is None


@requires_shared
def test_shared_folder_beside_the_checkout_is_found():
    assert store.locate(DATASETS["derisi_FUN"], "train") == SHARED_DATA / DATASETS["derisi_FUN"].files["train"]


def test_download_checks_sha256_and_moves_into_place(tmp_path):
    source = tmp_path / "source.arff"
    source.write_bytes(TOY)
    dest = tmp_path / "data" / "toy.arff"
    store.download(source.as_uri(), dest, hashlib.sha256(TOY).hexdigest(), progress=False)
    assert dest.read_bytes() == TOY
    assert [p.name for p in dest.parent.iterdir()] == ["toy.arff"]


def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path):
    source = tmp_path / "source.arff"
    source.write_bytes(TOY)
    dest = tmp_path / "data" / "toy.arff"
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        store.download(source.as_uri(), dest, "0" * 64, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        headers = {"Content-Length": str(len(TOY) * 10)}

        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(16)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Broken(TOY))
    dest = tmp_path / "data" / "toy.arff"
    with pytest.raises(DatasetNotFoundError, match="could not download.*connection reset"):
        store.download("https://example.invalid/toy.arff", dest, None, progress=False)
    assert list(dest.parent.iterdir()) == []


def test_no_network_gives_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.delenv("HMLEARN_OFFLINE")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError, match=r"could not download https://.*ImCLEF07D_Train.arff: Name or service"):
        store.fetch("imclef07d_others", data_dir=tmp_path, progress=False)
    assert not any(tmp_path.rglob("*.arff*"))


def test_offline_mode_names_the_places_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"ImCLEF07D_Train.arff not found \(looked in .*\); unset "
                       "HMLEARN_OFFLINE"):
        store.fetch("imclef07d_others", data_dir=tmp_path)


def test_fetch_downloads_a_dataset_absent_from_shared(tmp_path, monkeypatch):
    """A dataset the project does not have works by name once its files can be fetched."""
    spec = DATASETS["imclef07d_others"]
    mirror = tmp_path / "mirror"
    for split in spec.splits:
        (mirror / spec.files[split]).parent.mkdir(parents=True, exist_ok=True)
        (mirror / spec.files[split]).write_bytes(TOY)
    monkeypatch.delenv("HMLEARN_OFFLINE")
    monkeypatch.setattr(type(spec), "url", lambda self, split: (mirror / self.files[split]).as_uri())
    with pytest.warns(UserWarning, match="no published SHA-256"):
        train, test = store.load_dataset("imclef07d_others", data_dir=tmp_path / "data")
    assert len(train) == 2 and train.hierarchy.labels_of(train.Y[0]) == ["root", "a", "a/b"]
    assert (tmp_path / "data" / spec.files["train"]).is_file()


def test_parsed_cache_makes_the_second_load_skip_parsing(tmp_path, monkeypatch):
    path = tmp_path / "toy.arff"
    path.write_bytes(TOY)
    first = store.read_cached(path)
    monkeypatch.setattr(store, "read_arff", lambda *a, **k: pytest.fail("parsed again despite the cache"))
    second = store.read_cached(path)
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.Y, second.Y)
    assert first.hierarchy == second.hierarchy and first.feature_names == second.feature_names


def test_corrupt_cache_entry_is_parsed_again(tmp_path):
    path = tmp_path / "toy.arff"
    path.write_bytes(TOY)
    store.read_cached(path)
    for entry in (store.cache_dir() / "parsed").glob("*.npz"):
        entry.write_bytes(b"not an npz")
    again = store.read_cached(path)
    assert again.X.shape == (2, 1)


@requires_shared
def test_trainvalid_is_train_plus_valid_and_splits_share_one_hierarchy():
    train, valid, trainvalid, test = store.load_dataset("derisi_FUN", ("train", "valid", "trainvalid", "test"))
    assert len(trainvalid) == len(train) + len(valid)
    np.testing.assert_array_equal(trainvalid.Y[: len(train)], train.Y)
    assert train.hierarchy is test.hierarchy is trainvalid.hierarchy
    with pytest.raises(DatasetNotFoundError, match="has no split 'validation'"):
        store.load_dataset("derisi_FUN", "validation")


@requires_shared
def test_others_use_their_train_file_as_trainvalid():
    trainvalid = store.load_dataset("enron_others", "trainvalid")
    assert trainvalid.n_features == 1001 and int(trainvalid.hierarchy.evaluated.sum()) == 56


@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_an_unusable_cache_warns_once_and_the_dataset_still_loads(tmp_path, monkeypatch, kind):
    import os
    import warnings

    arff = tmp_path / "toy.arff"
    arff.write_bytes(TOY)
    cache = tmp_path / "cache"
    if kind == "file":
        cache.write_text("not a folder")
    else:
        cache.mkdir()
        cache.chmod(0o500)
        if os.access(cache, os.W_OK):  # root ignores permissions: make it unusable another way
            cache.chmod(0o700)
            (cache / "parsed").write_text("a file where the folder should be")
    monkeypatch.setenv("HMLEARN_CACHE", str(cache))
    store._CACHE_WARNED.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = store.load_dataset(arff), store.load_dataset(arff)
    assert len(first) == len(second) == 2
    messages = [str(w.message) for w in caught if "cannot cache parsed datasets" in str(w.message)]
    assert len(messages) == 1 and "going on without the cache" in messages[0]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_truncated_or_flipped_cache_entry_is_parsed_again(tmp_path, monkeypatch, damage):
    arff = tmp_path / "toy.arff"
    arff.write_bytes(TOY)
    monkeypatch.setenv("HMLEARN_CACHE", str(tmp_path / "cache"))
    expected = store.load_dataset(arff)
    (entry,) = (tmp_path / "cache" / "parsed").glob("*.npz")
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        for i in range(40, len(data), 97):
            data[i] ^= 0xFF
    entry.write_bytes(bytes(data))
    again = store.load_dataset(arff)  # no zipfile.BadZipFile, now or on later runs
    np.testing.assert_array_equal(again.X, expected.X)
    assert store.load_dataset(arff).hierarchy == expected.hierarchy


def test_hmlearn_data_pointing_at_a_file_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "data.txt").write_text("x")
    monkeypatch.setenv("HMLEARN_DATA", str(tmp_path / "data.txt"))
    with pytest.raises(DatasetNotFoundError, match="HMLEARN_DATA=.*data.txt is a file; point it at the folder"):
        store.locate(DATASETS["derisi_FUN"], "train")


def test_offline_mode_says_so_when_a_dataset_is_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="unset HMLEARN_OFFLINE to download it"):
        store.fetch("imclef07d_others", data_dir=tmp_path)
