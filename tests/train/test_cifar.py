"""CIFAR-10 loading: every format to the same arrays, the cache, errors, download, the sample."""

import hashlib
import io
import pickle
import shutil
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from superconverge.train import cifar
from superconverge.train.cifar import CLASSES, load_cifar10, load_sample
from superconverge.train.data import DataError

PER_BATCH, N_TEST = 4, 12  # 20 train and 12 test images: every class in each split


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """Random images written in every format, and the arrays each must load to."""
    root = tmp_path_factory.mktemp("fake")
    rng = np.random.default_rng(0)
    batch_dir = root / "extracted" / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True)
    splits = {}
    for split, names in [("train", cifar._BATCH_FILES[:5]), ("test", ["test_batch"])]:
        images, labels = [], []
        for name in names:
            n = PER_BATCH if split == "train" else N_TEST
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            batch_labels = [int(v) for v in (len(labels) + np.arange(n)) % 10]
            batch = {b"batch_label": name.encode(), b"labels": batch_labels, b"data": data}
            (batch_dir / name).write_bytes(pickle.dumps(batch, protocol=2))
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels += batch_labels
        splits[split] = (np.concatenate(images), np.array(labels))
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(batch_dir, arcname="cifar-10-batches-py")

    folder = root / "imagefolder"
    for split, (images, labels) in splits.items():
        for i, (image, label) in enumerate(zip(images, labels)):
            (folder / split / CLASSES[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / split / CLASSES[label] / f"{i:04d}.png")
    with tarfile.open(root / "imagefolder.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar10")  # a leading folder, as tools often add
    return root, splits


def assert_loads_to(ds, splits, *, by_class: bool) -> None:
    """ImageFolders list images by (class, file name); the pickles keep their own order."""
    for split, (images, labels) in splits.items():
        order = np.argsort(labels, kind="stable") if by_class else np.arange(len(labels))
        np.testing.assert_array_equal(getattr(ds, f"{split}_images"), images[order])
        np.testing.assert_array_equal(getattr(ds, f"{split}_labels"), labels[order])
        assert getattr(ds, f"{split}_images").dtype == np.uint8
        assert getattr(ds, f"{split}_labels").dtype == np.int64
    assert ds.classes == CLASSES


@pytest.mark.parametrize(
    "source, by_class",
    [
        ("cifar-10-python.tar.gz", False),
        ("extracted/cifar-10-batches-py", False),
        ("extracted", False),  # the folder the archive was extracted into
        ("imagefolder", True),
        ("imagefolder.tar.gz", True),
    ],
)
def test_every_format_loads_to_the_same_arrays(fake, tmp_path, source, by_class):
    root, splits = fake
    assert_loads_to(load_cifar10(root / source, cache_dir=tmp_path), splits, by_class=by_class)


def test_jpeg_imagefolder_loads(tmp_path):
    for split in ("train", "test"):
        for name in CLASSES[:2]:
            (tmp_path / "jpg" / split / name).mkdir(parents=True)
            Image.new("L", (32, 32), 200).save(tmp_path / "jpg" / split / name / "a.JPG")
    ds = load_cifar10(tmp_path / "jpg", cache_dir=tmp_path / "cache")
    assert ds.train_images.shape == (2, 32, 32, 3) and ds.classes == CLASSES[:2]
    assert abs(int(ds.train_images[0, 0, 0, 0]) - 200) <= 2  # greyscale became RGB


def test_cache_hit_does_not_decode(fake, tmp_path, monkeypatch):
    root, splits = fake
    load_cifar10(root / "imagefolder.tar.gz", cache_dir=tmp_path)
    [entry] = tmp_path.glob("cifar10-*.npz")
    mtime = entry.stat().st_mtime_ns

    def fail(path):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(cifar, "decode", fail)
    again = load_cifar10(root / "imagefolder.tar.gz", cache_dir=tmp_path)
    assert_loads_to(again, splits, by_class=True)
    assert entry.stat().st_mtime_ns == mtime


def test_cache_dir_from_environment(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERCONVERGE_CACHE", str(tmp_path / "env-cache"))
    load_cifar10(fake[0] / "cifar-10-python.tar.gz")
    assert len(list((tmp_path / "env-cache").glob("cifar10-*.npz"))) == 1


def test_data_path_from_environment(fake, tmp_path, monkeypatch):
    root, splits = fake
    monkeypatch.setenv("SUPERCONVERGE_DATA", str(root / "cifar-10-python.tar.gz"))
    assert_loads_to(load_cifar10(cache_dir=tmp_path), splits, by_class=False)
    monkeypatch.setenv("SUPERCONVERGE_DATA", str(root / "missing"))
    with pytest.raises(DataError, match="SUPERCONVERGE_DATA=.*missing does not exist"):
        load_cifar10(cache_dir=tmp_path)


# --- errors ------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"nope does not exist.*--data PATH.*SUPERCONVERGE_DATA"):
        load_cifar10(tmp_path / "nope", cache_dir=tmp_path)


def test_directory_without_a_cifar_layout(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match=r"not a CIFAR-10 layout \(it holds: notes.txt, train\)"):
        load_cifar10(tmp_path / "data", cache_dir=tmp_path)


def test_imagefolder_without_test_images(tmp_path):
    (tmp_path / "data" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "data" / "test").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "data" / "train" / "cat" / "0.png")
    with pytest.raises(DataError, match=r"no images under test/<class>/"):
        load_cifar10(tmp_path / "data", cache_dir=tmp_path)


def test_tar_without_a_cifar_layout(tmp_path):
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataError, match="other.tar.gz holds no CIFAR-10 data"):
        load_cifar10(tmp_path / "other.tar.gz", cache_dir=tmp_path)


def test_not_an_archive(tmp_path):
    (tmp_path / "cifar.tar.gz").write_bytes(b"definitely not gzip" * 100)
    with pytest.raises(DataError, match="not a readable tar archive"):
        load_cifar10(tmp_path / "cifar.tar.gz", cache_dir=tmp_path)


@pytest.mark.parametrize("archive", ["cifar-10-python.tar.gz", "imagefolder.tar.gz", "sample"])
def test_truncated_archive(fake, tmp_path, archive):
    real = cifar.resources.files("superconverge") / "data" / "cifar10-sample.tar.gz"
    data = Path(str(real)).read_bytes() if archive == "sample" else (fake[0] / archive).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.tar.gz is corrupt or truncated.*copy it again"):
        load_cifar10(tmp_path / "cut.tar.gz", cache_dir=tmp_path)
    assert not list(tmp_path.glob("*.npz"))  # nothing cached


def test_incomplete_batches(fake, tmp_path):
    shutil.copytree(fake[0] / "extracted" / "cifar-10-batches-py", tmp_path / "batches")
    (tmp_path / "batches" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="lacks data_batch_3"):
        load_cifar10(tmp_path / "batches", cache_dir=tmp_path)


def test_pickle_with_foreign_code_is_refused(tmp_path):
    (tmp_path / "batches").mkdir()
    for name in cifar._BATCH_FILES:
        (tmp_path / "batches" / name).write_bytes(pickle.dumps({b"data": Path("x")}))
    with pytest.raises(DataError, match="refusing to unpickle pathlib"):
        load_cifar10(tmp_path / "batches", cache_dir=tmp_path)


def test_wrong_image_size(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "data" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (64, 48)).save(tmp_path / "data" / split / "cat" / "0.png")
    with pytest.raises(DataError, match="0.png in .* is 64x48; CIFAR-10 images are 32x32"):
        load_cifar10(tmp_path / "data", cache_dir=tmp_path)


# --- download ----------------------------------------------------------------------------


class FakeResponse(io.BytesIO):
    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}


def test_offline_download_says_how_to_point_at_a_copy(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.delenv("SUPERCONVERGE_DATA", raising=False)
    monkeypatch.setattr(cifar.urllib.request, "urlopen", offline)
    message = r"could not download.*name resolution.*--data PATH.*SUPERCONVERGE_DATA"
    with pytest.raises(DataError, match=message):
        load_cifar10(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_download_with_wrong_md5(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERCONVERGE_DATA", raising=False)
    monkeypatch.setattr(cifar.urllib.request, "urlopen", lambda *a, **k: FakeResponse(b"<html>"))
    with pytest.raises(DataError, match=f"has md5 .*, expected {cifar.MD5}"):
        load_cifar10(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_then_reuse_the_cached_archive(fake, tmp_path, monkeypatch):
    root, splits = fake
    body = (root / "cifar-10-python.tar.gz").read_bytes()
    monkeypatch.delenv("SUPERCONVERGE_DATA", raising=False)
    monkeypatch.setattr(cifar, "MD5", hashlib.md5(body).hexdigest())
    monkeypatch.setattr(cifar.urllib.request, "urlopen", lambda *a, **k: FakeResponse(body))
    assert_loads_to(load_cifar10(cache_dir=tmp_path), splits, by_class=False)
    assert (tmp_path / "cifar-10-python.tar.gz").read_bytes() == body

    monkeypatch.setattr(cifar.urllib.request, "urlopen", None)  # a second download would fail
    assert_loads_to(load_cifar10(cache_dir=tmp_path, download=False), splits, by_class=False)


def test_no_download_allowed(tmp_path, monkeypatch):
    monkeypatch.delenv("SUPERCONVERGE_DATA", raising=False)
    with pytest.raises(DataError, match="download=False.*--data PATH"):
        load_cifar10(cache_dir=tmp_path, download=False)


# --- shipped sample and the real data set -------------------------------------------------


def test_sample_is_balanced(tmp_path):
    ds = load_sample(cache_dir=tmp_path)
    assert ds.train_images.shape == (5000, 32, 32, 3) and ds.test_images.shape == (1000, 32, 32, 3)
    assert np.bincount(ds.train_labels).tolist() == [500] * 10
    assert np.bincount(ds.test_labels).tolist() == [100] * 10
    assert ds.classes == CLASSES
    assert 0.4 < ds.train_images.mean() / 255 < 0.55  # real photos, not blank decodes


def test_sample_file_is_small():
    sample = cifar.resources.files("superconverge") / "data" / "cifar10-sample.tar.gz"
    assert Path(str(sample)).stat().st_size < 8e6


SHARED = Path("/work/shared/datasets/cifar10-jpeg.tar.gz")


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="the shared data set is not on this machine")
def test_shared_dataset(tmp_path):
    ds = load_cifar10(SHARED, cache_dir=tmp_path)
    assert ds.train_images.shape == (50000, 32, 32, 3)
    assert ds.test_images.shape == (10000, 32, 32, 3)
    assert np.bincount(ds.train_labels).tolist() == [5000] * 10
    means = ds.train_images.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(means, [0.4913, 0.4821, 0.4465], atol=2e-3)
