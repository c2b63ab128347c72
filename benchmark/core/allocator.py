"""Keep large CPU tensors off mmap.

glibc serves allocations above its mmap threshold (at most 32 MiB) with fresh
mmap'd pages, so every 60-channel feature map of a full image (~37 MiB) pays
page faults on each allocation: measured here, elementwise ops ran 2-4x slower
and a ridge-regularizer gradient took 3x longer than with the threshold raised.
Raising the mmap and trim thresholds makes freed blocks reusable. Linux/glibc
only; elsewhere this does nothing. Disable with REGBENCH_MALLOC_TUNING=0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30  # 1 GiB


def tune_malloc() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("REGBENCH_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False
