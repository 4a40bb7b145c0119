"""How long a study takes on this kind of machine, from measured training throughputs.

The figures are images per second for one training process using both cores of a
2-core AVX2 CPU in fp32 (docs/BENCHMARKS.md); evaluation runs about 3x faster than
training. A study spends ``images / throughput`` per run plus a fixed overhead
(data loading, plots, the store).
"""

from __future__ import annotations

from collections.abc import Sequence

from superconverge.studies.spec import Run

# training images per second through fit() on 2 cores (tiny, resnet20, resnet56, resnet9 measured;
# resnet32/44/110 interpolated by depth, preact_resnet18 a guess); unknown models count as ResNet-20
CPU_THROUGHPUT = {"tiny": 3700.0, "resnet20": 440.0, "resnet32": 290.0, "resnet44": 215.0, "resnet56": 170.0,
                  "resnet110": 85.0, "resnet9": 60.0, "preact_resnet18": 40.0}
EVAL_SPEEDUP = 3.0
RUN_OVERHEAD = 2.0  # seconds: data, plots and records of one run
SAMPLE_SIZES = (5000, 1000)  # the shipped sample's train and test images
FULL_SIZES = (50000, 10000)


def run_seconds(run: Run) -> float:
    """Estimated seconds for one run on 2 cores (training, evaluation, extra measurements)."""
    c = run.config
    train_n, test_n = SAMPLE_SIZES if c.get("data", "sample") == "sample" else FULL_SIZES
    n = min(c.get("train_subset") or train_n, train_n)
    epochs = c.get("epochs", 30)
    speed = CPU_THROUGHPUT.get(c.get("model", "resnet20"), CPU_THROUGHPUT["resnet20"])
    images = n * epochs
    if "lr_find" in run.extras.get("measure", []):
        images += run.extras.get("lr_find_steps", 100) * c.get("batch_size", 512)
    evaluated = test_n * epochs + (n if "forgetting" in run.extras.get("measure", []) else 0)
    return images / speed + evaluated / (speed * EVAL_SPEEDUP) + RUN_OVERHEAD


def study_seconds(runs: Sequence[Run]) -> float:
    """Estimated wall seconds for all ``runs`` on 2 cores (jobs do not add throughput there)."""
    return sum(run_seconds(r) for r in runs)
