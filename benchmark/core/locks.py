"""Inter-process locks for jobs that share an OUT folder or a cache (joblib, Slurm arrays).

`flock` on a lock file beside the shared resource: released by the kernel when
the holder dies (a SIGKILLed job never leaves a stale lock), works on local
disks and on the NFS mounts of common clusters.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path):
    """Hold an exclusive lock on `path` (created if needed) for the `with` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
