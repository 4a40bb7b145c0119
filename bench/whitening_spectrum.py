"""The spectrum the speedrun's whitening layer is fitted on, and the gain each ``whiten_eps`` gives it.

The layer's filters are the eigenvectors ``V_i`` of the covariance of 2x2 patches of the
normalised training images, scaled by ``1 / sqrt(lambda_i + eps)`` (``superconverge.speedrun.net``).
Directions whose variance ``lambda_i`` is far below ``eps`` are amplified by at most ``1/sqrt(eps)``.
Prints the 12 eigenvalues (largest first) of the same 5,000 images ``superconverge speedrun``
fits on, and the gain of every direction for each ``--eps``:

    python bench/whitening_spectrum.py --data ../shared/datasets/cifar10-jpeg.tar.gz --eps 5e-5 5e-4 5e-3
"""

from __future__ import annotations

import argparse

import torch

from superconverge.train.augment import to_input
from superconverge.train.run import load_data


def patch_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Eigenvalues, largest first, of the covariance of all 2x2 patches of NCHW ``images``."""
    c = images.shape[1]
    patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
    patches = patches - patches.mean(0)
    return torch.linalg.eigvalsh((patches.T @ patches / len(patches)).double()).flip(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=5000, help="the first N training images (the speedrun's 5,000)")
    parser.add_argument("--eps", type=float, nargs="+", default=[5e-4])
    args = parser.parse_args()
    data = load_data(args.data)
    spectrum = patch_spectrum(to_input(torch.from_numpy(data.train_images[: args.images])))
    print(f"2x2-patch covariance of the first {args.images} training images, normalised per channel")
    print(f"{'direction':>9} {'eigenvalue':>11} " + " ".join(f"{'gain @ ' + format(e, 'g'):>13}" for e in args.eps))
    for i, value in enumerate(spectrum.tolist()):
        gains = " ".join(f"{(value + e) ** -0.5:13.1f}" for e in args.eps)
        print(f"{i + 1:9d} {value:11.2e} {gains}")


if __name__ == "__main__":
    main()
