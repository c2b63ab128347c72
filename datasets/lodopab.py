"""LoDoPaB-CT ground truths (Leuschner et al. 2021): 362x362 slices of LIDC-IDRI
chest CT scans, attenuation scaled to [0, 1], as test data for the CT tasks.

Looked for under <root>/LoDoPaB-CT/ground_truth_<part>_NNN.hdf5 (each file holds
up to 128 slices under "data"); <root> as for BSDS500 (`data.root`, else
REGBENCH_DATA, else <repo>/data). When missing and `download` is true, the part's
zip is fetched from the dataset's canonical Zenodo record and md5-checked against
the checksum the record publishes. Only the ground truths are used: the CT task
simulates its own measurements (its geometry, noise and a finer grid).

Use it as a CT task's data, e.g.
  task=ct_parallel_ellipses task.spec.test._target_=regbench.datasets.lodopab.LoDoPaB
      +task.spec.test.part=test ...
(the task resizes the slices to its reconstruction size).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from regbench.datasets.bsds500 import data_root
from regbench.datasets.images import DataMissingError, ImageSet
from regbench.datasets.zenodo import fetch

RECORD = "https://zenodo.org/api/records/3384092"  # https://doi.org/10.5281/zenodo.3384092
PARTS = {"train": "train", "calib": "validation", "validation": "validation", "test": "test"}
DOWNLOAD_SIZES = {"train": "~30 GB", "validation": "~3 GB", "test": "~3 GB"}


def ensure_part(root: Path, part: str, allow_download: bool, record: str | None = None) -> list[Path]:
    record = record or RECORD
    folder = root / "LoDoPaB-CT"
    files = sorted(folder.glob(f"ground_truth_{part}_*.hdf5"))
    if files:
        return files
    reason = "download disabled (data.download=false)"
    if allow_download:
        try:
            archive = fetch(record, f"ground_truth_{part}.zip", folder / f"ground_truth_{part}.zip")
            tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".extract-"))
            try:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(tmp)
                for f in tmp.rglob(f"ground_truth_{part}_*.hdf5"):
                    os.replace(f, folder / f.name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                archive.unlink(missing_ok=True)
            files = sorted(folder.glob(f"ground_truth_{part}_*.hdf5"))
            if files:
                return files
            reason = f"the archive from {record} held no ground_truth_{part}_*.hdf5"
        except Exception as err:  # no network, bad checksum, disk full: say so and how to fix
            reason = f"download from {record} failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    raise DataMissingError(
        f"LoDoPaB-CT {part} ground truths not found in {folder} ({reason}). Fix: point REGBENCH_DATA "
        "(or data.root=...) at a "
        f"folder holding LoDoPaB-CT/ground_truth_{part}_*.hdf5, or download ground_truth_{part}.zip "
        f"({DOWNLOAD_SIZES[part]}) "
        f"from https://doi.org/10.5281/zenodo.3384092 and unzip it there."
    )


class LoDoPaB(ImageSet):
    """One part of LoDoPaB-CT: `part` train, validation (alias calib) or test; `n` keeps the first n slices."""

    def __init__(self, part: str = "test", n: int | None = None, root: str | None = None, download: bool = True):
        if part not in PARTS:
            raise ValueError(f"LoDoPaB part={part!r} is not allowed; allowed values: {', '.join(PARTS)}")
        import h5py

        self._h5py = h5py
        self.part = PARTS[part]
        self.name = f"lodopab-{self.part}"
        self._index: dict[str, tuple[Path, int]] = {}
        for path in ensure_part(data_root(root), self.part, download):
            with h5py.File(path, "r") as f:
                count = int(f["data"].shape[0])
            for i in range(count):
                self._index[f"{path.stem.rsplit('_', 1)[-1]}-{i:03d}"] = (path, i)
                if n and len(self._index) >= n:
                    return

    def ids(self) -> list[str]:
        return list(self._index)

    def load(self, image_id: str) -> torch.Tensor:
        path, i = self._index[image_id]
        with self._h5py.File(path, "r") as f:
            return torch.from_numpy(np.asarray(f["data"][i], dtype=np.float32)).unsqueeze(0)
