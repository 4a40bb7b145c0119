"""Memory of a training step: peak measurements and the budget they are held against.

On the CPU the measure is the process's peak resident set size (``VmHWM``), which Linux lets a
process reset to its current RSS by writing ``5`` to ``/proc/self/clear_refs``. On a GPU it
is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import resource
import sys
from pathlib import Path

import torch


def budget(dev: torch.device, given: int | None) -> tuple[float, str]:
    """(budget in bytes, how memory is measured) for a device; ``given`` overrides the default."""
    if dev.type == "cuda":
        method = "torch.cuda.max_memory_allocated per trial"
        return float(given or torch.cuda.get_device_properties(dev).total_memory), method
    method = ("peak RSS of the process (VmHWM, reset per trial)" if reset_cpu_peak()
              else "peak RSS of the process (ru_maxrss; trials under the high-water mark interpolated)")
    if given is not None:
        if not given > 0:
            raise ValueError(f"memory_budget_bytes must be positive, got {given}")
        return float(given), method
    return float(cpu_memory_limit()), method


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Without it, memory freed by earlier work stays resident; a trial that reuses it raises the
    RSS less than the same step would in a fresh process, and its peak reads too low.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """libc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``), or None."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def reset_cpu_peak() -> bool:
    """Reset the peak RSS to the current RSS; False where the OS does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: reset the peak RSS to the current RSS
        return True
    except OSError:
        return False


def status(key: str) -> int | None:
    """A kB field of /proc/self/status in bytes (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            found = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
        return int(found.group(1)) * 1024 if found else None
    except OSError:
        return None


def cpu_peak() -> int:
    """Peak RSS of this process in bytes (since the last reset, where resets work)."""
    peak = status("VmHWM")
    if peak is not None:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


def cpu_memory_limit() -> int:
    """The cgroup limit if one is set, else the memory available now plus what this process holds."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    try:
        found = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    except OSError:
        found = None
    if not found:
        raise ValueError("cannot tell how much memory is free here; pass memory_budget_bytes")
    return int(found.group(1)) * 1024 + (status("VmRSS") or 0)


def gib(n: float) -> str:
    """Bytes for people: MiB below a GiB, else GiB."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
