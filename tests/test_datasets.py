"""Data sources: BSDS500 splits, its download path, a user's image folder, the denoising task."""

import hashlib
import io
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from regbench.datasets import bsds500
from regbench.datasets.bsds500 import BSDS500, DataMissingError
from regbench.datasets.denoising import DenoisingTask
from regbench.datasets.images import ImageFolder

needs_bsds = pytest.mark.skipif(not os.environ.get("REGBENCH_DATA"), reason="REGBENCH_DATA not set")


def _png(path, value):
    Image.fromarray(np.full((20, 30), value, dtype=np.uint8)).save(path)


def test_image_folder_lists_sorted_images_in_unit_range(tmp_path):
    _png(tmp_path / "zebra.png", 255)
    _png(tmp_path / "apple.png", 51)
    (tmp_path / "notes.txt").write_text("not an image")
    folder = ImageFolder(str(tmp_path))
    assert folder.ids() == ["apple", "zebra"]
    x = folder.load("apple")
    assert x.shape == (1, 20, 30) and torch.allclose(x, torch.full_like(x, 0.2))


def test_image_folder_missing_says_which_folder(tmp_path):
    with pytest.raises(DataMissingError, match=f"image folder {tmp_path / 'nope'} does not exist"):
        ImageFolder(str(tmp_path / "nope"))


def test_missing_bsds500_names_both_fixes(tmp_path):
    with pytest.raises(DataMissingError) as err:
        BSDS500("bsd68", root=str(tmp_path), download=False)
    msg = str(err.value)
    assert str(tmp_path / "BSDS500" / "images") in msg
    assert "REGBENCH_DATA" in msg and "regbench download-data" in msg
    assert len(msg.splitlines()) == 1


def _fake_archive(path):
    with zipfile.ZipFile(path, "w") as zf:
        for split in ("train", "val", "test"):
            buf = io.BytesIO()
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="JPEG")
            zf.writestr(f"{bsds500.ARCHIVE_PREFIX}{split}/1{split}.jpg", buf.getvalue())
        zf.writestr("BSDS500-master/README", "ignored")
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_checks_md5_and_extracts_the_images(tmp_path, monkeypatch):
    archive = tmp_path / "master.zip"
    md5 = _fake_archive(archive)
    monkeypatch.setattr(bsds500.urllib.request, "urlretrieve", lambda url, dst: dst.write_bytes(archive.read_bytes()))
    root = tmp_path / "data"
    with pytest.raises(DataMissingError, match="has md5"):
        bsds500.download(root, md5="0" * 32)
    assert not (root / "BSDS500").exists()
    monkeypatch.setattr(bsds500, "MD5", md5)
    images = bsds500.ensure_bsds500(str(root))
    assert sorted(p.name for p in images.rglob("*.jpg")) == ["1test.jpg", "1train.jpg", "1val.jpg"]
    assert not list(root.glob("*.zip"))


@needs_bsds
def test_bsds500_splits_have_the_usual_sizes():
    assert len(BSDS500("train400").ids()) == 400
    bsd68 = BSDS500("bsd68")
    assert len(bsd68.ids()) == 68 and bsd68.ids() == sorted(bsds500.BSD68_IDS)
    calib = BSDS500("val_not68")
    assert len(calib.ids()) == 32 and not set(calib.ids()) & set(bsd68.ids())
    x = bsd68.load(bsd68.ids()[0])
    assert x.shape[0] == 1 and sorted(x.shape[1:]) == [321, 481] and 0 <= x.min() and x.max() <= 1


@needs_bsds
def test_denoising_noise_is_fixed_per_image_and_has_the_nominal_std():
    task = DenoisingTask(25, BSDS500("train400"), BSDS500("val_not68"), BSDS500("bsd68"))
    a = list(task.samples("test", 3, 64, seed=0, device="cpu"))
    b = list(task.samples("test", 3, 64, seed=0, device="cpu"))
    c = list(task.samples("test", 3, 64, seed=1, device="cpu"))
    assert all(torch.equal(s.y, t.y) for s, t in zip(a, b))
    assert not torch.equal(a[0].y, c[0].y)
    assert not torch.equal(a[0].y - a[0].x, a[1].y - a[1].x)
    noise = torch.cat([(s.y - s.x).flatten() for s in task.samples("test", 20, None, 0, "cpu")])
    assert float(noise.std()) == pytest.approx(25 / 255, rel=0.01)


def test_negative_noise_level_is_refused():
    with pytest.raises(ValueError, match=r"task.sigma=-5 is out of range"):
        DenoisingTask(-5, None, None, None)
