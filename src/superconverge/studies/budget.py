"""How long a study takes on this kind of machine, from measured training throughputs.

The figures are images per second for one training process using both cores of a 2-core
CPU, in the precision ``precision = "auto"`` picks there (fp32 without native bf16, bf16
with it): measured fp32 through ``fit`` on an AVX2 CPU (docs/BENCHMARKS.md), bf16 scaled
from them by the bf16/fp32 speed-up measured on a CPU with native bf16. Evaluation runs
about 3x faster than training. A study spends ``images / throughput`` per run plus a fixed
overhead (data loading, plots, the store).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from superconverge.studies.spec import Run

# training images per second through fit() on 2 cores in fp32 (tiny, resnet20, resnet56, resnet9 measured;
# resnet32/44/110 interpolated by depth, preact_resnet18 a guess); unknown models count as ResNet-20
CPU_THROUGHPUT = {"tiny": 3700.0, "resnet20": 440.0, "resnet32": 290.0, "resnet44": 215.0, "resnet56": 170.0,
                  "resnet110": 85.0, "resnet9": 60.0, "preact_resnet18": 40.0}
# bf16 autocast (channels_last, batch 128) over fp32 on a 2-core CPU with native bf16, from
# bench/models_throughput.py: ResNet-20 750 vs 518 img/s, tiny 8000 vs 5400; other models take ResNet-20's
BF16_SPEEDUP = {"tiny": 8000 / 5400, "resnet20": 750 / 518}
EVAL_SPEEDUP = 3.0
RUN_OVERHEAD = 2.0  # seconds: data, plots and records of one run
SAMPLE_SIZES = (5000, 1000)  # the shipped sample's train and test images
FULL_SIZES = (50000, 10000)


@cache
def auto_precision() -> str:
    """What ``precision = "auto"`` resolves to on this machine's CPU: bf16 or fp32."""
    import torch

    from superconverge.train.runtime import resolve_precision

    return resolve_precision("auto", torch.device("cpu"))


def throughput(model: str, precision: str) -> float:
    """Training images per second of ``model`` on 2 cores in ``precision`` (bf16 or fp32)."""
    fp32 = CPU_THROUGHPUT.get(model, CPU_THROUGHPUT["resnet20"])
    return fp32 * BF16_SPEEDUP.get(model, BF16_SPEEDUP["resnet20"]) if precision == "bf16" else fp32


def run_seconds(run: Run, auto: str | None = None) -> float:
    """Estimated seconds for one run on 2 cores (training, evaluation, extra measurements).

    ``auto``: the precision ``"auto"`` stands for (default: what it resolves to on this machine).
    """
    c = run.config
    train_n, test_n = SAMPLE_SIZES if c.get("data", "sample") == "sample" else FULL_SIZES
    n = min(c.get("train_subset") or train_n, train_n)
    epochs = c.get("epochs", 30)
    precision = c.get("precision", "auto")
    if precision == "auto":
        precision = auto or auto_precision()
    speed = throughput(c.get("model", "resnet20"), precision)
    images = n * epochs
    if "lr_find" in run.extras.get("measure", []):
        images += run.extras.get("lr_find_steps", 100) * c.get("batch_size", 512)
    evaluated = test_n * epochs + (n if "forgetting" in run.extras.get("measure", []) else 0)
    return images / speed + evaluated / (speed * EVAL_SPEEDUP) + RUN_OVERHEAD


def study_seconds(runs: Sequence[Run], auto: str | None = None) -> float:
    """Estimated wall seconds for all ``runs`` on 2 cores (jobs do not add throughput there)."""
    return sum(run_seconds(r, auto) for r in runs)
