"""Forward+backward throughput (images/s) of the CIFAR models: fp32 vs bf16 autocast, NCHW vs NHWC.

Run by hand, on an otherwise idle machine (the figures are wall-clock):

    python bench/models_throughput.py                      # resnet20, resnet9, tiny; ~3 min
    python bench/models_throughput.py --models tiny --iters 20

One step is cross-entropy forward + backward on a random batch in train mode (BN updates its
running stats), no optimizer step: the optimizer costs the same in every configuration.
bf16 is only worth it where oneDNN has bf16 kernels (avx512_bf16 / amx_bf16); without them
PyTorch falls back to a slow im2col convolution, so the header prints what this CPU has.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from superconverge.train.models import build_model

SETTINGS = dict(
    models=("resnet20", "resnet9", "tiny"),
    batch_size=128,  # images per step
    threads=2,  # torch.set_num_threads; the CI and dev boxes have 2 cores
    warmup=3,  # untimed steps: oneDNN builds its kernels and the allocator settles
    iters=10,  # timed steps at most
    budget_s=15.0,  # seconds per configuration; slow ones stop early rather than take minutes
)


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _busy_cpu_s() -> float:
    """CPU seconds all processes have spent busy since boot (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)


def measure(name: str, bf16: bool, channels_last: bool, cfg: dict) -> tuple[float, int, str]:
    """Return (images/s, timed steps, note) for one configuration; median of the timed steps."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(name).train().to(memory_format=fmt)
    x = torch.randn(cfg["batch_size"], 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (cfg["batch_size"],))
    # A step of the slow bf16 fallback can take minutes; a small probe finds that out cheaply.
    probe = max(1, cfg["batch_size"] // 16)
    t0 = time.perf_counter()
    _step(model, x[:probe], y[:probe], bf16)
    probe_s = time.perf_counter() - t0
    if probe_s * cfg["batch_size"] / probe > cfg["budget_s"]:
        return probe / probe_s, 0, f"estimate: one untimed step at batch {probe}"
    start = time.perf_counter()
    for _ in range(cfg["warmup"]):
        _step(model, x, y, bf16)
        if time.perf_counter() - start > cfg["budget_s"]:
            break
    times: list[float] = []
    budget, start = cfg["budget_s"], time.perf_counter()
    while len(times) < cfg["iters"] and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        _step(model, x, y, bf16)
        times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    return cfg["batch_size"] / median, len(times), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SETTINGS["models"]))
    for key in ("batch_size", "threads", "warmup", "iters"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=SETTINGS[key])
    parser.add_argument("--budget-s", type=float, default=SETTINGS["budget_s"])
    cfg = vars(parser.parse_args())

    torch.set_num_threads(cfg["threads"])
    flags = _cpu_flags()
    bf16_flags = sorted(f for f in flags if "bf16" in f or f.startswith("amx")) or ["none"]
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, ISA {torch.backends.cpu.get_cpu_capability()}")
    print(f"CPU bf16 flags: {', '.join(bf16_flags)}; "
          f"oneDNN bf16 supported: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print(f"batch {cfg['batch_size']}, warmup {cfg['warmup']}, up to {cfg['iters']} timed steps, "
          f"{cfg['budget_s']:.0f} s per configuration")
    print()
    print(f"{'model':<10} {'dtype':<5} {'format':<13} {'img/s':>8} {'ms/step':>9} {'vs fp32':>8} "
          f"{'steps':>5} {'other':>5}  note")
    t_start = time.perf_counter()
    for name in cfg["models"]:
        base = None
        for bf16 in (False, True):
            for channels_last in (False, True):
                busy0, own0, wall0 = _busy_cpu_s(), time.process_time(), time.perf_counter()
                ips, n, note = measure(name, bf16, channels_last, cfg)
                # Cores' worth of CPU other processes used meanwhile: >0.1 means a noisy figure.
                other = (_busy_cpu_s() - busy0 - (time.process_time() - own0)) / (
                    time.perf_counter() - wall0
                )
                base = base or ips  # fp32 NCHW comes first
                print(f"{name:<10} {'bf16' if bf16 else 'fp32':<5} "
                      f"{'channels_last' if channels_last else 'contiguous':<13} {ips:>8.0f} "
                      f"{1000 * cfg['batch_size'] / ips:>9.1f} {ips / base:>7.2f}x {n:>5} "
                      f"{max(other, 0.0):>5.2f}  {note}", flush=True)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s. img/s is batch / median step time; "
          "'vs fp32' is relative to fp32 contiguous;\n'other' is the cores' worth of CPU other "
          "processes used during that row (0 = idle machine, the figure is clean).")


if __name__ == "__main__":
    main()
