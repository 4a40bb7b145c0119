"""CIFAR-10 from any of its usual forms, decoded once and cached as uint8 arrays.

Reads the official python archive (cifar-10-python.tar.gz) or its extracted
cifar-10-batches-py/ directory, an ImageFolder directory (train/<class>/*.png|jpg and
test/<class>/...) or a tar(.gz) of one, and downloads the official archive when given no
path. Images come out as (N, 32, 32, 3) uint8 HWC, labels as int64 indices into `classes`.

Example:
    >>> ds = load_sample()
    >>> ds.train_images.shape, ds.test_images.shape, ds.classes[:2]
    ((5000, 32, 32, 3), (1000, 32, 32, 3), ('airplane', 'automobile'))
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from superconverge.train.data import DataError, cached
from superconverge.train.data import cache_dir as _cache_dir  # the arguments take the plain name

# The official label order, which is also alphabetical, so ImageFolder class order matches it.
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
DATA_ENV = "SUPERCONVERGE_DATA"



def default_data() -> str:
    """What the commands train on when ``--data`` is not given: ``$SUPERCONVERGE_DATA``, else the sample."""
    return os.environ.get(DATA_ENV) or "sample"


_BATCH_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FORMATS = (
    "cifar-10-python.tar.gz, its extracted cifar-10-batches-py/ directory, an ImageFolder "
    "directory (train/<class>/*.png|jpg and test/<class>/...) or a .tar.gz of one"
)
_POINT_AT_COPY = (
    f"point at a local copy with --data PATH or the {DATA_ENV} environment variable "
    f"(accepted: {_FORMATS})"
)


@dataclass(frozen=True, eq=False)  # eq=False: == on arrays is elementwise, not a bool
class Cifar10:
    """CIFAR-10 as uint8 HWC images (N, 32, 32, 3) and int64 labels indexing `classes`."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...] = CLASSES


def load_cifar10(
    path: str | Path | None = None,
    *,
    download: bool = True,
    cache_dir: str | Path | None = None,
) -> Cifar10:
    """Load CIFAR-10 from `path`, else $SUPERCONVERGE_DATA, else a (cached) download.

    The first load decodes the source and caches the arrays in `cache_dir` (default
    $SUPERCONVERGE_CACHE or ~/.cache/superconverge); later loads read the cache.
    """
    source = _locate(path, download=download, directory=cache_dir)
    arrays = cached(source, decode, name="cifar10", directory=cache_dir)
    return Cifar10(
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"],
        classes=tuple(str(c) for c in arrays["classes"]),
    )


def load_sample(*, cache_dir: str | Path | None = None) -> Cifar10:
    """The class-balanced sample shipped with the package: 500 train, 100 test images per class."""
    sample = resources.files("superconverge") / "data" / "cifar10-sample.tar.gz"
    with resources.as_file(sample) as path:
        return load_cifar10(path, cache_dir=cache_dir)


def download_cifar10(cache_dir: str | Path | None = None) -> Path:
    """Download the official archive into the cache directory, check its md5 and return its path."""
    target = _cache_dir(cache_dir) / ARCHIVE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    md5 = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(URL, timeout=60) as response:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=ARCHIVE_NAME) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
        if md5.hexdigest() != MD5:
            raise DataError(
                f"the download from {URL} has md5 {md5.hexdigest()}, expected {MD5}: it was "
                f"corrupted or the server sent something else. Try again, or download it "
                f"yourself and {_POINT_AT_COPY}."
            )
        os.replace(tmp, target)  # only a complete, checked file ever gets the real name
    except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DataError(
            f"could not download CIFAR-10 from {URL} ({reason}). If this machine is offline, "
            f"{_POINT_AT_COPY}."
        ) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def decode(path: Path) -> dict[str, np.ndarray]:
    """Decode a CIFAR-10 source (any accepted format) into arrays, without the cache."""
    if path.is_dir():
        return _decode_dir(path)
    if not tarfile.is_tarfile(path):
        raise DataError(
            f"{path} is not a readable tar archive: it is damaged, truncated or some other kind "
            f"of file. Expected {_FORMATS}."
        )
    try:
        return _decode_tar(path)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{path} is corrupt or truncated ({exc}); download or copy it again."
        ) from exc


def _locate(path: str | Path | None, *, download: bool, directory: str | Path | None) -> Path:
    """The source to read: `path`, else $SUPERCONVERGE_DATA, else the downloaded archive."""
    origin = None
    if path is None and (env := os.environ.get(DATA_ENV)):
        path, origin = env, f"{DATA_ENV}={env}"
    if path is not None:
        source = Path(path).expanduser()
        if not source.exists():
            raise DataError(
                f"{origin or source} does not exist; check the path, or {_POINT_AT_COPY}."
            )
        return source
    archive = _cache_dir(directory) / ARCHIVE_NAME
    if archive.is_file():
        return archive
    if not download:
        raise DataError(
            f"CIFAR-10 is not in {archive.parent} and download=False; {_POINT_AT_COPY}."
        )
    return download_cifar10(directory)


def _decode_tar(path: Path) -> dict[str, np.ndarray]:
    """Read a tar of either layout in one pass over the stream."""
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    encoded: dict[tuple[str, str, str], bytes] = {}
    # "r|*" streams: random access into a .tar.gz re-reads it from the start for every member.
    with tarfile.open(path, "r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = member.name.split("/")
            if parts[-1] in _BATCH_FILES:
                batches[parts[-1]] = _batch_arrays(_read(tar, member), f"{path}:{member.name}")
            elif _is_image(parts):
                # Keep the small encoded bytes and decode later in sorted order, straight
                # into one preallocated array.
                encoded[(parts[-3], parts[-2], parts[-1])] = _read(tar, member)
    if batches:
        return _from_batches(batches, path)
    if encoded:
        return _from_images(encoded, path)
    raise DataError(f"{path} holds no CIFAR-10 data. Expected {_FORMATS}.")


def _decode_dir(path: Path) -> dict[str, np.ndarray]:
    nested = path / "cifar-10-batches-py"
    root = nested if nested.is_dir() else path
    if any((root / name).is_file() for name in _BATCH_FILES):
        batches = {
            name: _batch_arrays((root / name).read_bytes(), str(root / name))
            for name in _BATCH_FILES
            if (root / name).is_file()
        }
        return _from_batches(batches, root)
    if (path / "train").is_dir() and (path / "test").is_dir():
        files = {
            (split, folder.name, file.name): file
            for split in ("train", "test")
            for folder in (path / split).iterdir()
            if folder.is_dir()
            for file in folder.iterdir()
            if _is_image([split, folder.name, file.name])
        }
        return _from_images(files, path)
    listing = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
    raise DataError(
        f"{path} is a directory but not a CIFAR-10 layout (it holds: {listing}). Expected "
        f"{_FORMATS}."
    )


def _from_batches(
    batches: dict[str, tuple[np.ndarray, np.ndarray]], where: Path
) -> dict[str, np.ndarray]:
    if missing := [name for name in _BATCH_FILES if name not in batches]:
        raise DataError(
            f"{where} lacks {', '.join(missing)}: the CIFAR-10 python batches are data_batch_1..5 "
            f"and test_batch. It is incomplete; download or copy it again."
        )
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return {
        "train_images": np.concatenate([images for images, _ in train]),
        "train_labels": np.concatenate([labels for _, labels in train]),
        "test_images": batches["test_batch"][0],
        "test_labels": batches["test_batch"][1],
        "classes": np.array(CLASSES),
    }


def _from_images(
    encoded: dict[tuple[str, str, str], bytes | Path], where: Path
) -> dict[str, np.ndarray]:
    if missing := {"train", "test"} - {split for split, _, _ in encoded}:
        raise DataError(
            f"{where} has no images under {' or '.join(sorted(missing))}/<class>/; an ImageFolder "
            f"needs both train/<class>/*.png|jpg and test/<class>/*.png|jpg."
        )
    classes = sorted({folder for _, folder, _ in encoded})
    label_of = {name: i for i, name in enumerate(classes)}
    arrays: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for split in ("train", "test"):
        keys = sorted(key for key in encoded if key[0] == split)  # (class, file name) order
        images = np.empty((len(keys), 32, 32, 3), np.uint8)
        for i, key in enumerate(keys):
            images[i] = _decode_image(encoded[key], "/".join(key), where)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = np.array([label_of[key[1]] for key in keys], np.int64)
    return arrays


def _decode_image(source: bytes | Path, name: str, where: Path) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:  # what Pillow raises for broken files
        raise DataError(f"{name} in {where} is not a readable image ({exc}).") from exc
    if pixels.shape != (32, 32, 3):
        height, width = pixels.shape[:2]
        raise DataError(f"{name} in {where} is {width}x{height}; CIFAR-10 images are 32x32.")
    return pixels


def _batch_arrays(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and labels of one pickled CIFAR-10 batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # a damaged pickle can fail in almost any way
        raise DataError(
            f"{name} is corrupt or truncated ({exc}); download or copy it again."
        ) from exc
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    labels = batch.get(b"labels", batch.get("labels")) if isinstance(batch, dict) else None
    if (
        not isinstance(data, np.ndarray)
        or data.shape[1:] != (3072,)
        or labels is None
        or len(labels) != len(data)
    ):
        raise DataError(f"{name} is not a CIFAR-10 batch (a dict of data (N, 3072) and N labels).")
    # Rows are channel-major (1024 red, 1024 green, 1024 blue values); we store HWC.
    images = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(labels, np.int64)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds: unpickling arbitrary globals can run any code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: not part of a CIFAR-10 batch"
            )
        return super().find_class(module, name)


def _is_image(parts: list[str]) -> bool:
    """True for <split>/<class>/<file>.png|jpg paths (any prefix), skipping hidden files."""
    return (
        len(parts) >= 3
        and parts[-3] in ("train", "test")
        and not parts[-1].startswith(".")
        and parts[-1].lower().endswith(_IMAGE_SUFFIXES)
    )


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    file = tar.extractfile(member)
    assert file is not None  # regular members always have content
    return file.read()
