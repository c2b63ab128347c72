"""Stable content hashes of configs (checkpoint keys, combination keys)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


def to_plain(obj: Any) -> Any:
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def config_hash(*parts: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of `parts` (key order does not matter)."""
    blob = json.dumps([to_plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in blocks (checksums of downloads and of weights files)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed derived from arbitrary labels (e.g. image id and run seed)."""
    return int(config_hash(*parts, length=15), 16)


MACHINE_KEYS = ("root", "download")  # where data lives is not part of an experiment


def portable(obj: Any) -> Any:
    """The config without machine-specific keys (data roots), for hashing."""
    obj = to_plain(obj)
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items() if k not in MACHINE_KEYS}
    if isinstance(obj, list):
        return [portable(v) for v in obj]
    return obj
