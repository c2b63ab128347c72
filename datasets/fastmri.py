"""fastMRI single-coil knee (Zbontar et al. 2018) as ground-truth images for the MRI tasks.

Looked for under <root>/fastMRI/singlecoil_<split>/*.h5 (the layout of the
official archives); each volume's `reconstruction_esc` (320x320 magnitude
images) gives `slices` central slices, each scaled to a maximum of 1. The MRI
task then simulates its own Cartesian measurements from these magnitudes.

fastMRI has no public download link: the archives come from
https://fastmri.med.nyu.edu/ after signing its data use agreement, as signed,
expiring URLs. With `download: true` and a `url` (such a link to
knee_singlecoil_<split>.tar.xz), the archive is fetched, checked against `md5`
when one is given, and unpacked; otherwise the error says how to get the data.

Use it as an MRI task's data, e.g.
  task=mri_x4_bsd68 task.spec.test._target_=regbench.datasets.fastmri.FastMRIKnee +task.spec.test.split=val ...
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from regbench.datasets.bsds500 import data_root
from regbench.datasets.images import DataMissingError, ImageSet
from regbench.datasets.zenodo import md5sum

SPLITS = ("train", "val")
AGREEMENT = "https://fastmri.med.nyu.edu/"


def download_archive(url: str, folder: Path, md5: str | None) -> None:
    """Fetch a fastMRI .tar.xz into folder's parent, check it, unpack the .h5 volumes into folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder.parent, suffix=".tar.xz")
    os.close(fd)
    archive = Path(name)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".extract-"))
    try:
        urllib.request.urlretrieve(url, archive)
        if md5 and md5sum(archive) != md5:
            raise DataMissingError(
                f"fastMRI archive from the given url has md5 {md5sum(archive)}, expected {md5}; not using it"
            )
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        volumes = list(tmp.rglob("*.h5"))
        if not volumes:
            raise DataMissingError("the fastMRI archive holds no .h5 volumes")
        folder.mkdir(parents=True, exist_ok=True)
        for v in volumes:
            os.replace(v, folder / v.name)
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


class FastMRIKnee(ImageSet):
    def __init__(
        self,
        split: str = "val",
        slices: int = 1,
        n: int | None = None,
        root: str | None = None,
        download: bool = True,
        url: str | None = None,
        md5: str | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"FastMRIKnee split={split!r} is not allowed; allowed values: {', '.join(SPLITS)}")
        import h5py

        self._h5py = h5py
        self.name = f"fastmri-knee-{split}"
        folder = data_root(root) / "fastMRI" / f"singlecoil_{split}"
        url = url or os.environ.get("FASTMRI_URL")
        if not list(folder.glob("*.h5")):
            if download and url:
                download_archive(url, folder, md5)
            else:
                raise DataMissingError(
                    f"fastMRI single-coil knee {split} volumes not found in {folder}. Fix: request "
                    f"the data at {AGREEMENT} "
                    f"(data use agreement), then unpack knee_singlecoil_{split}.tar.xz there, or pass "
                    "its signed link as "
                    f"url=... (or FASTMRI_URL) with download=true."
                )
        self._index: dict[str, tuple[Path, int]] = {}
        for path in sorted(folder.glob("*.h5")):
            with h5py.File(path, "r") as f:
                if "reconstruction_esc" not in f:
                    continue
                depth = int(f["reconstruction_esc"].shape[0])
            first = max(0, depth // 2 - slices // 2)
            for i in range(first, min(depth, first + slices)):
                self._index[f"{path.stem}-{i:02d}"] = (path, i)
                if n and len(self._index) >= n:
                    return
        if not self._index:
            raise DataMissingError(f"no fastMRI volume in {folder} has a reconstruction_esc (single-coil ground truth)")

    def ids(self) -> list[str]:
        return list(self._index)

    def load(self, image_id: str) -> torch.Tensor:
        path, i = self._index[image_id]
        with self._h5py.File(path, "r") as f:
            img = np.asarray(f["reconstruction_esc"][i], dtype=np.float32)
        return torch.from_numpy(img / max(float(img.max()), 1e-12)).unsqueeze(0)
