"""Data pipeline benchmark: first decode of CIFAR-10, cached load, augmented images per second.

The pipeline must never be the bottleneck: small ResNets train at about 1,000-3,000 img/s
on this kind of CPU, so batches should come at ten times that or more.

    python bench/data_pipeline.py [--data PATH] [--epochs 1] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from superconverge.train.augment import Augment
from superconverge.train.cifar import load_cifar10
from superconverge.train.data import batches

DATA = Path("/work/shared/datasets/cifar10-jpeg.tar.gz")
BATCH_SIZE = 512
PIPELINES = {  # name: (augmentation, input dtype, channels_last)
    "no augmentation, float32": (None, torch.float32, False),
    "crop+flip, float32": (Augment(crop_padding=4, flip=True), torch.float32, False),
    "crop+flip+cutout8, float32": (
        Augment(crop_padding=4, flip=True, cutout=8),
        torch.float32,
        False,
    ),
    "crop+flip+cutout8, bf16 channels_last": (
        Augment(crop_padding=4, flip=True, cutout=8),
        torch.bfloat16,
        True,
    ),
}


def rss_mb() -> float:
    """Resident memory now, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())  # other jobs on the CPU skew figures
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}")
    print(f"data {args.data}")

    with tempfile.TemporaryDirectory() as cache:
        before = rss_mb()
        start = time.perf_counter()
        ds = load_cifar10(args.data, cache_dir=cache)
        decode_s = time.perf_counter() - start
        print(
            f"first load (decode + write cache): {decode_s:.1f} s, peak RSS {peak_rss_mb():.0f} MB "
            f"(+{peak_rss_mb() - before:.0f} MB over the {before:.0f} MB after imports)"
        )
        del ds
        start = time.perf_counter()
        ds = load_cifar10(args.data, cache_dir=cache)
        print(f"cached load: {time.perf_counter() - start:.2f} s")

    images = torch.from_numpy(ds.train_images)
    labels = torch.from_numpy(ds.train_labels)
    print(f"epoch of {len(images)} train images, batch {args.batch_size}:")
    for name, (config, dtype, channels_last) in PIPELINES.items():
        kwargs = dict(augment=config, dtype=dtype, channels_last=channels_last)
        next(batches(images, labels, args.batch_size, **kwargs))  # warm up kernels
        count, start = 0, time.perf_counter()
        for epoch in range(args.epochs):
            for x, _ in batches(images, labels, args.batch_size, seed=0, epoch=epoch, **kwargs):
                count += len(x)
        seconds = time.perf_counter() - start
        print(
            f"  {name:40s} {count / seconds:9,.0f} img/s "
            f"({count / seconds / args.batch_size:6.1f} batches/s)"
        )


if __name__ == "__main__":
    main()
