"""Released checkpoints match the current default configs: a stale one can never be used silently."""

import hashlib
import json

import pytest
from conftest import REPO, compose, run_of

from regbench.training import checkpoints
from regbench.training.release import released_methods, released_pairs

WEIGHTS = REPO / "results" / "weights"


def _manifest():
    return json.loads((WEIGHTS / checkpoints.MANIFEST).read_text())


def _config_name(entry: dict) -> str:
    """The method config a checkpoint was released for (shared weights: the one calibrated)."""
    return entry.get("calibration", {}).get("method", entry["method"])


def test_every_trainable_default_method_has_a_released_checkpoint():
    released = {_config_name(entry) for entry in _manifest().values() if not _overrides(entry)}
    assert set(released_methods()) <= released


def _overrides(entry: dict) -> list[str]:
    return entry.get("calibration", {}).get("overrides", [])


def test_released_pairs_are_the_default_methods_then_the_schemes_experiment():
    pairs = released_pairs()
    assert pairs[: len(released_methods())] == [(m, None) for m in released_methods()]
    assert ("wcrr", "score") in pairs and ("crr", "adversarial") in pairs and ("crr", "bilevel_ift") not in pairs


@pytest.mark.parametrize("key", sorted(_manifest()) if (WEIGHTS / checkpoints.MANIFEST).exists() else [])
def test_manifest_entry_matches_its_current_config_and_file(key):
    entry = _manifest()[key]
    spec = checkpoints.spec_of(run_of(f"method={_config_name(entry)}", "profile=cpu", *_overrides(entry)))
    assert checkpoints.checkpoint_key(spec) == key, f"{entry['file']} is stale: run `make train-release`"
    assert entry["spec"] == spec
    blob = (WEIGHTS / entry["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
    for field in ("git_rev", "device", "train_minutes", "calibration", "params"):
        assert field in entry
    assert entry["calibration"]["psnr"] > 20


def test_a_changed_config_gets_a_different_key():
    base = compose("method=crr", "profile=cpu")
    changed = compose("method=crr", "profile=cpu", "method.train.lr=0.01")
    k = lambda c: checkpoints.checkpoint_key(checkpoints.training_spec(c.method, "cpu", c.seed))
    assert k(base) != k(changed)
    moved = compose("method=crr", "profile=cpu", "data.root=/elsewhere")
    assert k(base) == k(moved)  # where the data lives does not change what was trained


def test_diffpir_and_dps_resolve_to_the_one_released_diffusion_prior():
    keys = {
        m: checkpoints.checkpoint_key(checkpoints.training_spec(compose(f"method={m}", "profile=cpu").method, "cpu", 0))
        for m in ("diffpir", "dps")
    }
    assert keys["diffpir"] == keys["dps"] and _manifest()[keys["dps"]]["method"] == "diffusion_prior"
