"""The CPU's peak matrix throughput, fp32 and bf16: the physical limit training is measured against.

Times a large square matmul (best of several repeats) at the thread count given.

    python bench/peak_flops.py --size 4096
"""

from __future__ import annotations

import argparse
import time

import torch


def gflops(size: int, dtype: torch.dtype, repeats: int) -> float:
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b  # warm up (allocations, kernel choice)
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - tick)
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.size}x{args.size} matmul, "
          f"best of {args.repeats}")
    for dtype in (torch.float32, torch.bfloat16):
        print(f"  {str(dtype).removeprefix('torch.'):>8}: {gflops(args.size, dtype, args.repeats):7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
