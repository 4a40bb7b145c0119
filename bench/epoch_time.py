"""Seconds per epoch of full CIFAR-10 (50,000 images) through ``fit``, fp32 vs bf16 autocast.

Trains whole epochs where that is affordable and otherwise the first N batches of one,
scaled to 50,000 images (said in the output). Run by hand, alone on the machine:

    python bench/epoch_time.py --data ../shared/datasets/cifar10-jpeg.tar.gz
"""

from __future__ import annotations

import argparse
import time

import torch

from superconverge.schedules import constant
from superconverge.train.augment import Augment
from superconverge.train.cifar import load_cifar10
from superconverge.train.feed import ArrayFeed
from superconverge.train.loop import FitOptions, fit
from superconverge.train.models import build_model
from superconverge.train.runtime import cpu_has_native_bf16

# (model, precision, batches of 512 to time; None = the whole epoch). Where bf16 is emulated
# (no avx512_bf16 or AMX) it is 10-25x slower than fp32, so only a batch or two of it is timed.
PLAN_NATIVE_BF16 = [("resnet20", "fp32", None), ("resnet20", "bf16", None), ("resnet9", "fp32", 20),
                    ("resnet9", "bf16", 20)]
PLAN_EMULATED_BF16 = [("resnet20", "fp32", None), ("resnet20", "bf16", 2), ("resnet9", "fp32", 8),
                      ("resnet9", "bf16", 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--only", nargs="*", help="model:precision pairs to run, e.g. resnet9:fp32")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = load_cifar10(args.data)
    images, labels = torch.from_numpy(data.train_images), torch.from_numpy(data.train_labels)
    native = cpu_has_native_bf16()
    print(f"{len(images)} training images, batch {args.batch_size}, crop+flip, channels_last, 2 threads; "
          f"bf16 {'native' if native else 'emulated'} on this CPU")
    for name, precision, batches in PLAN_NATIVE_BF16 if native else PLAN_EMULATED_BF16:
        if args.only and f"{name}:{precision}" not in args.only:
            continue
        n = len(images) if batches is None else batches * args.batch_size
        feed = ArrayFeed(images[:n], labels[:n], args.batch_size, augment=Augment(), seed=0, drop_last=True)
        model = build_model(name)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        options = FitOptions(progress=False, precision=precision)  # type: ignore[arg-type]
        start = time.perf_counter()
        fit(model, opt, {"lr": constant(0.01)}, feed, epochs=1, options=options)
        seconds = time.perf_counter() - start
        per_epoch = seconds * len(images) / (len(feed) * args.batch_size)
        how = "whole epoch" if batches is None else f"{len(feed)} batches, scaled"
        print(f"{name:<9} {precision}  {per_epoch:8.0f} s per epoch  ({how}; {seconds:.0f} s measured)")


if __name__ == "__main__":
    main()
