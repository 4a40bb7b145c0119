"""Learning rates suggested by an LR range test curve: pure functions of ``(lrs, losses)``.

Every function takes the raw per-step losses and smooths them itself with :func:`denoise`:
a local linear fit in ``log10(lr)`` under a Gaussian kernel. Unlike the running (causal)
average that stops the sweep, it has no lag: a causal EMA with ``beta=0.98`` trails the
loss by ~50 steps, which on a 100-step sweep moves the apparent minimum to a higher LR.
Losses above the curve's starting level are capped first, so the blow-up at the end of a
sweep does not drag the smoothed minimum to the left.

What the suggestion is for 1cycle. Five markers describe the curve:

- ``steepest``: where the loss falls fastest per decade of LR, the middle of the descent;
- ``valley``: two thirds of the way, in log(lr), from where the descent begins to its bottom;
- ``minimum_div10``: a tenth of the LR at the minimum (fastai's default for flat schedules);
- ``minimum``: the LR at the smoothed minimum, where the loss stops falling;
- ``turn``: the first LR past the minimum where the loss has climbed back a quarter of its
  descent, where it turns back up. On a sharp wall it sits next to the minimum; on the wide
  flat bottom that batch-normalised nets under SGD show it lies well to the right.

1cycle's peak is the high end of the range where the loss still falls or holds (Smith 2015,
2018: max_lr is where the loss stops decreasing or turns ragged; Gugger: 1cycle allows peaks
"closer to the minimum" than a flat schedule, because the warm-up carries the net there).
So :func:`consensus` suggests ``turn`` pulled back by one kernel width (0.2 decade on a
default sweep, x0.63). Its band runs from the classic cautious pick (the median of steepest,
valley and minimum/10) to ``turn``: anything in it trains, the top trains fastest. The rule
was chosen on short 1cycle runs at 9 peak LRs x 2 seeds on three tasks (bench/finder_quality.py,
docs/BENCHMARKS.md), among 9 candidates; trained on a fresh grid around it, it came within 0.64
accuracy points of the grid's best on all three, where the classic picks sat 3x to 20x below the
best peak and the minimum pulled back one width lost 2.7 points on a BN ResNet-20. ``reliable`` is False when the curve
is too noisy for its descent, the minimum sits at an end of the sweep, or the three classic
markers disagree by more than 10x, and ``advice`` says what to change.

>>> import numpy as np
>>> lrs = np.geomspace(1e-5, 10, 120)
>>> x = np.log10(lrs)
>>> losses = 2.3 - 1.0 / (1 + np.exp(-(x + 2) * 3)) + np.exp(3 * (x - 0.5))
>>> round(float(np.log10(steepest(lrs, losses))), 1)
-2.0
>>> value, band, reliable, advice = consensus(lrs, losses)
>>> band[0] <= value <= band[1], reliable
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

MIN_POINTS = 10  # fewer finite points than this and no suggestion means anything
MIN_SNR = 8.0  # descent depth over the noise of the smoothed curve below which we warn
MAX_SPREAD = 10.0  # the three classic picks disagreeing by more than this factor is a warning
SLOPE_WIDTH = 2.5  # the slope's kernel is this much wider than the level's
VALLEY_EDGE = 0.2  # the descent starts where its slope reaches 20% of the steepest
VALLEY_AT = 2 / 3  # how far down the valley, in log(lr), the valley suggestion sits
TURN_AT = 0.25  # the loss turns back up once it has climbed back this share of its descent


class Consensus(NamedTuple):
    """What :func:`consensus` returns: unpacks as ``value, band, reliable, advice``."""

    value: float
    band: tuple[float, float]
    reliable: bool
    advice: str


def ema(losses: ArrayLike, beta: float = 0.98) -> np.ndarray:
    """Debiased exponential moving average, as used online to stop the sweep.

    ``m_t = beta * m_{t-1} + (1 - beta) * x_t``,  ``s_t = m_t / (1 - beta ** (t + 1))``

    >>> ema([1.0, 1.0, 1.0]).round(6).tolist()
    [1.0, 1.0, 1.0]
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}")
    out, m = np.empty(len(np.asarray(losses))), 0.0
    for t, x in enumerate(np.asarray(losses, dtype=float)):
        m = beta * m + (1 - beta) * x
        out[t] = m / (1 - beta ** (t + 1))
    return out


def denoise(lrs: ArrayLike, losses: ArrayLike, width: float | None = None) -> np.ndarray:
    """The zero-lag smoothed curve the suggestions read (see the module docstring).

    ``width`` is the kernel's standard deviation in decades of LR (default: 1/40 of the
    sweep's span, and at least 1.5 point spacings).
    """
    x, y = _prepared(lrs, losses)
    return _local_fit(x, y, _width(x, width))[0]


def minimum_div10(lrs: ArrayLike, losses: ArrayLike) -> float:
    """A tenth of the LR where the smoothed loss is lowest: ``lr[argmin s] / 10``.

    >>> lrs = np.geomspace(1e-4, 1, 50)
    >>> round(float(np.log10(minimum_div10(lrs, (np.log10(lrs) + 1) ** 2))), 1)
    -2.0
    """
    return minimum(lrs, losses) / 10


def steepest(lrs: ArrayLike, losses: ArrayLike) -> float:
    """The LR where the smoothed loss falls fastest against log(lr): ``argmin ds/dlog10(lr)``.

    Measured per decade, not per unit of LR: against linear LR the slope at high LRs is
    squeezed by their spacing and the answer would drift to the low end of the sweep.
    Only the part of the curve up to the minimum counts.
    """
    x, y = _prepared(lrs, losses)
    width = _width(x, None)
    bottom = int(np.argmin(_local_fit(x, y, width)[0]))
    # A slope is noisier than a level, so it gets a wider kernel; within one kernel width
    # of the sweep's start the fit is one-sided and its slope unreliable, so skip that part.
    slope = _local_fit(x, y, SLOPE_WIDTH * width)[1]
    inner = np.flatnonzero(x[: bottom + 1] >= x[0] + SLOPE_WIDTH * width)
    candidates = inner if len(inner) else np.arange(bottom + 1)
    return float(10 ** x[candidates[int(np.argmin(slope[candidates]))]])


def valley(lrs: ArrayLike, losses: ArrayLike) -> float:
    """Two thirds of the way down the valley that ends at the minimum, in log(lr).

    The valley starts where the descent does: walking left from the steepest point, the first
    point whose slope is under ``VALLEY_EDGE`` (20%) of the steepest. Bumps on the plateau
    before it are too shallow to matter, which a level-based edge is not.
    ``log lr = x_start + 2/3 * (x_min - x_start)``
    """
    x, y = _prepared(lrs, losses)
    width = _width(x, None)
    bottom = int(np.argmin(_local_fit(x, y, width)[0]))
    slope = _local_fit(x, y, SLOPE_WIDTH * width)[1][: bottom + 1]
    steep = int(np.argmin(slope))
    shallow = np.flatnonzero(slope[: steep + 1] > VALLEY_EDGE * slope[steep])
    start = int(shallow[-1]) if len(shallow) and slope[steep] < 0 else 0
    return float(10 ** (x[start] + VALLEY_AT * (x[bottom] - x[start])))


def minimum(lrs: ArrayLike, losses: ArrayLike) -> float:
    """The LR where the smoothed loss is lowest, where it stops falling: ``lr[argmin s]``."""
    x, y = _prepared(lrs, losses)
    return float(10 ** x[int(np.argmin(_local_fit(x, y, _width(x, None))[0]))])


def turn(lrs: ArrayLike, losses: ArrayLike) -> float:
    """The first LR past the minimum where the smoothed loss has climbed back a quarter of its descent.

    ``lr[first i > argmin s with s_i >= s_min + 0.25 * (max_{j <= argmin} s_j - s_min)]``, the
    sweep's last LR if the loss never climbs back that far.
    """
    x, y = _prepared(lrs, losses)
    level = _local_fit(x, y, _width(x, None))[0]
    bottom = int(np.argmin(level))
    depth = level[: bottom + 1].max() - level[bottom]
    above = np.flatnonzero(level[bottom:] >= level[bottom] + TURN_AT * depth)
    return float(10 ** x[bottom + above[0]]) if len(above) and depth > 0 else float(10 ** x[-1])


SUGGESTERS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "minimum_div10": minimum_div10, "steepest": steepest, "valley": valley, "minimum": minimum, "turn": turn,
}
CLASSIC = ("minimum_div10", "steepest", "valley")  # the cautious picks, for flat schedules


def suggest_all(lrs: ArrayLike, losses: ArrayLike) -> dict[str, float]:
    """Every suggestion by name."""
    return {name: f(lrs, losses) for name, f in SUGGESTERS.items()}


def consensus(lrs: ArrayLike, losses: ArrayLike, suggestions: dict[str, float] | None = None) -> Consensus:
    """The recommended 1cycle peak LR, one kernel width below where the loss turns up, with a band.

    ``value = lr_turn * 10 ** -width``; ``band = (median of the classic picks, lr_turn)``.
    ``reliable`` is False when the loss has no clear descent above its noise, when the minimum
    sits at an end of the sweep, or when the classic picks disagree by more than 10x; ``advice``
    then says what to change.
    """
    suggestions = suggestions or suggest_all(lrs, losses)
    x, y = _prepared(lrs, losses)
    lr_min = suggestions.get("minimum") or minimum(lrs, losses)
    lr_turn = suggestions.get("turn") or turn(lrs, losses)
    value = float(lr_turn * 10 ** -_width(x, None))
    classic = np.log10([suggestions[k] for k in CLASSIC if k in suggestions] or [value])
    cautious = float(10 ** np.median(classic))
    band = (min(cautious, value), float(lr_turn))
    issues = _issues(x, y, (float(10 ** classic.min()), float(10 ** classic.max())))
    if issues:
        return Consensus(value, band, False, "Not reliable: " + "; ".join(issues) + ".")
    return Consensus(value, band, True,
                     f"Use max_lr ~ {value:.3g} for 1cycle: the loss bottoms out at {lr_min:.3g} and turns "
                     f"back up at {lr_turn:.3g}. For a flat or step schedule take the cautious end, "
                     f"{band[0]:.3g}. Re-run the finder if the batch size, weight decay or model change.")


def noise(lrs: ArrayLike, losses: ArrayLike) -> tuple[float, float]:
    """(depth of the descent, robust std of the per-step noise) of the curve up to its minimum."""
    x, y = _prepared(lrs, losses)
    level, _ = _local_fit(x, y, _width(x, None))
    bottom = int(np.argmin(level))
    # From differences of neighbours, not residuals from the smoothed curve: a narrow kernel
    # follows the noise and its residuals understate it.
    return float(level[: bottom + 1].max() - level[bottom]), _sigma(y[: max(bottom + 1, 5)])


# -- internals ----------------------------------------------------------------------------


def _issues(x: np.ndarray, y: np.ndarray, spread: tuple[float, float]) -> list[str]:
    width = _width(x, None)
    level, slope = _local_fit(x, y, width)
    n, bottom = len(x), int(np.argmin(level))
    depth, sigma = noise(10**x, y)
    # The smoothed curve averages about n_eff points, so its noise is sigma / sqrt(n_eff).
    n_eff = width * np.sqrt(4 * np.pi) / max(float(np.median(np.diff(x))), 1e-12)
    issues = []
    rose = bottom <= max(1, n // 10)
    if rose:
        issues.append(f"the loss never fell clearly below where it started (at lr {10 ** x[0]:.3g}); if that LR "
                      "is already high, lower start_lr, otherwise run more steps or use a larger batch so the "
                      "sweep has time to learn")
    elif depth * np.sqrt(max(n_eff, 1.0)) < MIN_SNR * sigma or depth <= 0:
        issues.append(f"too noisy or no clear descent: the smoothed loss falls by {depth:.3g} but the "
                      f"step-to-step noise is {sigma:.3g}; run more steps (e.g. 3x) or use a larger batch "
                      "(or gradient accumulation)")
    if bottom >= n - max(2, n // 30) and slope[bottom] < 0:
        issues.append(f"the loss was still falling at the last LR ({10 ** x[-1]:.3g}); raise end_lr")
    if spread[1] > MAX_SPREAD * spread[0]:
        issues.append(f"steepest, valley and minimum/10 disagree by {spread[1] / spread[0]:.0f}x; run more steps "
                      "or use a larger batch")
    return issues


def _prepared(lrs: ArrayLike, losses: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(log10 lr, capped loss) of the finite points; checks the inputs."""
    lr, loss = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    if lr.ndim != 1 or lr.shape != loss.shape:
        raise ValueError(f"lrs and losses must be 1-D and the same length, got {lr.shape} and {loss.shape}")
    if not np.all(np.isfinite(lr)) or np.any(lr <= 0):
        raise ValueError("lrs must be positive and finite")
    if np.any(np.diff(lr) <= 0):
        raise ValueError("lrs must be strictly increasing (a range test sweeps the LR up)")
    keep = np.isfinite(loss)
    if keep.sum() < MIN_POINTS:
        raise ValueError(f"too few points to suggest anything: {int(keep.sum())} finite losses, need at least "
                         f"{MIN_POINTS}; run more steps, and if the sweep diverged at once, lower start_lr")
    x, y = np.log10(lr[keep]), loss[keep]
    # Past the blow-up the loss's size carries no information; capping it just above the
    # starting level (the median of the first points plus 3 noise sds, and never below the
    # first loss) keeps the explosion from pulling the smoothed minimum to the left.
    head = y[: max(5, len(y) // 10)]
    return x, np.minimum(y, max(y[0], float(np.median(head)) + 3 * _sigma(head)))


def _sigma(y: np.ndarray) -> float:
    """Robust standard deviation of step-to-step noise: MAD of first differences / sqrt(2)."""
    if len(y) < 3:
        return 0.0
    d = np.diff(y)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def _width(x: np.ndarray, width: float | None) -> float:
    if width is not None:
        if not width > 0:
            raise ValueError(f"width must be positive (decades of LR), got {width}")
        return float(width)
    return max((x[-1] - x[0]) / 40, 1.5 * float(np.median(np.diff(x))))


def _local_fit(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(level, slope) at each point of a Gaussian-weighted local line fit: no lag, no edge bias."""
    level, slope = np.empty_like(y), np.empty_like(y)
    for lo in range(0, len(x), 512):  # rows in chunks: memory stays O(512 n)
        xi = x[lo:lo + 512, None]
        w = np.exp(-0.5 * ((x[None, :] - xi) / width) ** 2)
        sw = w.sum(1, keepdims=True)
        mx, my = (w * x).sum(1, keepdims=True) / sw, (w * y).sum(1, keepdims=True) / sw
        dx = x[None, :] - mx
        var = (w * dx**2).sum(1, keepdims=True)
        b = np.where(var > 0, (w * dx * (y - my)).sum(1, keepdims=True) / np.maximum(var, 1e-300), 0.0)
        level[lo:lo + 512], slope[lo:lo + 512] = (my + b * (xi - mx))[:, 0], b[:, 0]
    return level, slope
