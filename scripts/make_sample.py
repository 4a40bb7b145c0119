"""Make the class-balanced CIFAR-10 sample shipped in src/superconverge/data/.

Takes the first N files by sorted name of each class from an ImageFolder-layout .tar.gz
(train/<class>/*.jpg, test/<class>/*.jpg), keeps their original JPEG bytes and writes a
deterministic .tar.gz: sorted members, fixed mtime/uid/gid/mode, gzip mtime 0 and no file
name in the gzip header, so a rerun gives identical bytes.

    python scripts/make_sample.py  # from /work/shared/datasets/cifar10-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import tarfile
from collections import defaultdict
from pathlib import Path

SOURCE = Path("/work/shared/datasets/cifar10-jpeg.tar.gz")
OUT = Path(__file__).resolve().parents[1] / "src/superconverge/data/cifar10-sample.tar.gz"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_images(source: Path) -> dict[str, bytes]:
    """All <split>/<class>/<file> images of the archive, read in one pass over its stream."""
    images = {}
    with tarfile.open(source, "r|*") as tar:  # streamed: random access re-reads the gzip
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) >= 3 and parts[-1].lower().endswith(IMAGE_SUFFIXES):
                images["/".join(parts[-3:])] = tar.extractfile(member).read()
    return images


def choose(names: list[str], per_split: dict[str, int]) -> list[str]:
    """The first per_split[split] names by sorted file name in each <split>/<class>/."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in sorted(names):
        split, folder, _ = name.split("/")
        groups[split, folder].append(name)
    chosen = []
    for (split, folder), members in sorted(groups.items()):
        if split not in per_split:
            continue
        if len(members) < per_split[split]:
            raise SystemExit(f"{split}/{folder} has {len(members)} images, need {per_split[split]}")
        chosen += members[: per_split[split]]
    return chosen


def write_tar(out: Path, files: dict[str, bytes]) -> None:
    """A .tar.gz whose bytes depend only on the file names and contents."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0
    ) as gz:
        gz.write(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    args = parser.parse_args()

    images = read_images(args.source)
    per_split = {"train": args.train_per_class, "test": args.test_per_class}
    chosen = choose(list(images), per_split)
    write_tar(args.out, {name: images[name] for name in chosen})
    data = args.out.read_bytes()
    print(f"{args.out}: {len(chosen)} images, {len(data) / 1e6:.2f} MB")
    print(f"sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
