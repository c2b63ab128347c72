"""Checkpoints are content-addressed, checksummed and written atomically."""
import logging

import torch

from benchmark import checkpoints
from conftest import compose


def test_saved_checkpoint_loads_and_a_truncated_one_is_reported(tmp_path, caplog):
    cfg = compose("method=crr", "profile=smoke", f"cache_dir={tmp_path}", f"weights_dir={tmp_path / 'none'}")
    state = {"w": torch.arange(10.0)}
    entry = checkpoints.save(cfg, "crr", "abc", state, {"method": "crr"})
    loaded, got = checkpoints.load(cfg, "crr", "abc")
    assert torch.equal(loaded["w"], state["w"]) and got["sha256"] == entry["sha256"]
    path = tmp_path / "checkpoints" / entry["file"]
    path.write_bytes(path.read_bytes()[:20])
    with caplog.at_level(logging.WARNING):
        assert checkpoints.load(cfg, "crr", "abc") is None
    assert "corrupt or truncated" in caplog.text and str(path) in caplog.text
    assert checkpoints.load(cfg, "crr", "other-key") is None
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))
