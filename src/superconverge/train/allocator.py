"""Keep freed memory in the process, so that big tensors stop costing page faults (glibc only).

glibc's malloc serves every large request (above a threshold of at most 32 MB) with a fresh
``mmap`` and returns it to the kernel on ``free``. A CPU training step allocates and frees its
big activations and gradients every step, so each step touches new pages and pays a page fault
(and the kernel's zeroing) per 4 KiB of them: on a 2-core CPU that was ~20 % of a speedrun
step (``bench/speedrun_allocator.py``). Taking large blocks from the heap and never trimming it
lets the second step reuse the first step's pages. The price: memory freed by the process is
not given back to the system until it exits, so its footprint stays at its peak.

This module does not import torch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1
_kept = False


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory; ``False`` where it cannot.

    Calls ``mallopt(M_MMAP_MAX, 0)`` and ``mallopt(M_TRIM_THRESHOLD, INT_MAX)``. It changes the whole
    process and is not undone; the ``superconverge`` command line calls it on start (unless the
    environment sets ``SUPERCONVERGE_SYSTEM_MALLOC=1``). Without glibc
    (macOS, Windows, musl) it does nothing and returns ``False``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    global _kept
    _kept = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, _INT_MAX))
    return _kept


def freed_memory_kept() -> bool:
    """Whether :func:`keep_freed_memory` has taken effect in this process."""
    return _kept
