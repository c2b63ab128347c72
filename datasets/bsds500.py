"""BSDS500 (Arbelaez et al. 2011): BSD400 for training, BSD68 for testing.

Looked for under <root>/BSDS500/images/{train,val,test}; <root> is the config key
`data.root`, else the environment variable REGBENCH_DATA, else <repo>/data.
When missing, the canonical archive is downloaded (md5-checked) if
`data.download` is true; that is the only network access regbench ever makes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from regbench.core.plugins import REPO_ROOT
from regbench.datasets.images import DataMissingError, ImageSet
from regbench.datasets.zenodo import md5sum

URL = "https://github.com/BIDS/BSDS500/archive/refs/heads/master.zip"
MD5 = "7bfe17302a219367694200a61ce8256c"
ARCHIVE_PREFIX = "BSDS500-master/BSDS500/data/images/"
BSD68_IDS = (Path(__file__).parent / "bsd68.txt").read_text().split()
SPLITS = ("train400", "bsd68", "val_not68", "train", "val", "test")
DOWNLOAD_HELP = "regbench download-data"


def data_root(root: str | None = None) -> Path:
    root = root or os.environ.get("REGBENCH_DATA") or str(REPO_ROOT / "data")
    return Path(root).expanduser().resolve()


def extract_archive(archive: Path, root: Path) -> None:
    """Unpack the images of the BSDS500 zip into <root>/BSDS500/images (atomically)."""
    target = root / "BSDS500" / "images"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".bsds500-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member.startswith(ARCHIVE_PREFIX) and member.endswith(".jpg"):
                    rel = Path(member[len(ARCHIVE_PREFIX) :])
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as src, open(tmp / rel, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(root: Path, url: str | None = None, md5: str | None = None) -> None:
    url, md5 = url or URL, md5 or MD5
    root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=root, suffix=".zip")
    os.close(fd)
    archive = Path(name)
    try:
        urllib.request.urlretrieve(url, archive)
        got = md5sum(archive)
        if got != md5:
            raise DataMissingError(f"BSDS500 archive from {url} has md5 {got}, expected {md5}; not using it")
        extract_archive(archive, root)
    finally:
        archive.unlink(missing_ok=True)


def ensure_bsds500(root: str | None = None, allow_download: bool = True) -> Path:
    base = data_root(root)
    images = base / "BSDS500" / "images"
    if all((images / s).is_dir() for s in ("train", "val", "test")):
        return images
    reason = "download disabled (data.download=false)"
    if allow_download:
        try:
            download(base)
            return images
        except Exception as err:  # no network, bad checksum, disk error: say so and how to fix
            reason = f"download from {URL} failed: {err}"
    raise DataMissingError(
        f"BSDS500 not found in {images} ({reason}). Fix: point REGBENCH_DATA (or data.root=...) at a folder "
        f"holding BSDS500/images/{{train,val,test}}, or run `{DOWNLOAD_HELP} --root {base}` on a machine with network."
    )


class BSDS500(ImageSet):
    """One split: train400 (train+test, the usual BSD400), bsd68, val_not68, or a raw folder."""

    def __init__(self, split: str, root: str | None = None, download: bool = True):
        if split not in SPLITS:
            raise ValueError(f"BSDS500 split={split!r} is not allowed; allowed values: {', '.join(SPLITS)}")
        self.name = f"bsds500-{split}"
        images = ensure_bsds500(root, download)
        folders = {"train400": ["train", "test"], "bsd68": ["val"], "val_not68": ["val"]}.get(split, [split])
        files = {p.stem: p for f in folders for p in sorted((images / f).glob("*.jpg"))}
        if split == "bsd68":
            missing = [i for i in BSD68_IDS if i not in files]
            if missing:
                raise DataMissingError(f"BSD68 images {missing[:3]}... missing from {images / 'val'}")
            files = {i: files[i] for i in sorted(BSD68_IDS)}
        elif split == "val_not68":
            files = {i: p for i, p in files.items() if i not in set(BSD68_IDS)}
        self._files = dict(sorted(files.items()))

    def ids(self) -> list[str]:
        return list(self._files)

    def path(self, image_id: str) -> Path:
        return self._files[image_id]
