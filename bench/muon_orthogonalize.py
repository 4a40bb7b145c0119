"""What Muon's orthogonalisation costs in a cpu94 step, and whether batching or fewer iterations would cut it.

Times ``superconverge.optim.muon.orthogonalize`` on the update shapes of cpu94's six conv
filters (widths 48/192/192 after a 24-channel whitening layer), three ways, alternately:
one call per filter (what Muon does), the three same-shape 192 x 1728 updates as one batched
iteration, and 3 Newton-Schulz iterations instead of 5. Compare with a ~690 ms training step.

    python bench/muon_orthogonalize.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from superconverge.optim.muon import NS_COEFFICIENTS, _fast_dtype, orthogonalize

SHAPES = [(48, 24, 3, 3), (48, 48, 3, 3), (192, 48, 3, 3), (192, 192, 3, 3), (192, 192, 3, 3), (192, 192, 3, 3)]


def batched(updates: list[torch.Tensor], steps: int = 5) -> torch.Tensor:
    """The same iteration on a stack of same-shape (wide) matrices."""
    a, b, c = NS_COEFFICIENTS
    x = torch.stack([u.reshape(len(u), -1) for u in updates]).to(_fast_dtype(updates[0].device))
    x = x / (x.norm(dim=(1, 2), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20, help="steps' worth of updates timed per round")
    args = parser.parse_args()
    updates = [torch.randn(s) for s in SHAPES]
    ways = {
        "one call per filter, 5 iterations (Muon)": lambda: [orthogonalize(u) for u in updates],
        "the three 192x1728 batched, 5 iterations": lambda: ([orthogonalize(u) for u in updates[:3]],
                                                             batched(updates[3:])),
        "one call per filter, 3 iterations": lambda: [orthogonalize(u, steps=3) for u in updates],
    }
    ways[next(iter(ways))]()  # warm up
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                way()
            times[name].append((time.perf_counter() - start) / args.calls * 1000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {_fast_dtype(torch.device('cpu'))}; "
          f"median of {args.rounds} rounds, ms per step's worth of updates:")
    for name, ms in times.items():
        print(f"  {name:44s} {statistics.median(ms):6.1f}")


if __name__ == "__main__":
    main()
