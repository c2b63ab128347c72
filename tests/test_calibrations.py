"""Released calibrations: a fresh cache evaluates with them instead of searching, and every
shipped entry still matches the config it claims (a stale one is never used silently)."""

import json

import pandas as pd
import pytest
from conftest import REPO, run_cli

from regbench.calibration import cache as calibrations
from regbench.calibration.release import calibration_of, release_combination
from regbench.core.instantiate import build

RELEASED = REPO / "results" / "weights" / calibrations.RELEASED


def _rows(out):
    return pd.concat(pd.read_parquet(p) for p in (out / "rows").glob("*.parquet"))


def test_a_released_calibration_replaces_the_search(tmp_path, monkeypatch):
    cache, weights = tmp_path / "cache", tmp_path / "weights"
    combo = ["method=tv", "task=denoise_bsd68", "profile=smoke", f"weights_dir={weights}"]
    first = run_cli(*combo, f"out={tmp_path / 'a'}", "progress=false", cache=cache)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "calibrated {'lam'" in first.stdout + first.stderr

    monkeypatch.setenv("REGBENCH_CACHE", str(cache))
    record = release_combination(combo)
    assert record["method"] == "tv" and record["overrides"] == combo
    released = json.loads((weights / calibrations.RELEASED).read_text())
    [name] = released
    released[name]["hp"] = {"lam": 0.0123}  # a value no search would return: proves where the rows' value came from
    (weights / calibrations.RELEASED).write_text(json.dumps(released))
    (cache / "calibration" / f"{name}.json").unlink()

    second = run_cli(*combo, f"out={tmp_path / 'b'}", "progress=false", cache=cache)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"calibration from released {calibrations.RELEASED}" in second.stdout + second.stderr
    assert json.loads(_rows(tmp_path / "b").hyper.iloc[0]) == {"lam": 0.0123}
    assert not (cache / "calibration" / f"{name}.json").exists()  # nothing was searched, nothing cached

    third = run_cli(*combo, f"out={tmp_path / 'c'}", "progress=false", "retrain=true", cache=cache)
    assert third.returncode == 0, third.stderr[-2000:]
    log = third.stdout + third.stderr
    assert "calibrated {'lam'" in log and "calibration from released" not in log


def test_releasing_an_uncalibrated_combination_says_to_run_it_first(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "empty"))
    assert release_combination(["method=tv", "task=denoise_bsd68", "profile=smoke", f"weights_dir={tmp_path}"]) is None
    assert "no cached calibration" in caplog.text and "run the combination first" in caplog.text
    assert not (tmp_path / calibrations.RELEASED).exists()


@pytest.mark.parametrize("name", sorted(json.loads(RELEASED.read_text())) if RELEASED.exists() else [])
def test_shipped_calibration_matches_its_current_config(name):
    record = json.loads(RELEASED.read_text())[name]
    run, key = calibration_of(record["overrides"])
    assert f"{run.method.name}-{key}" == name, f"{name} is stale: recalibrate and run regbench release-calibrations"
    assert record["task"] == run.task.name
    method = build(run.method.model)  # the record holds every hyperparameter the solve uses: the calibrated
    assert set(method.calibration_space()) <= set(record["hp"]) <= set(method.hp)  # ones and the learned ones
    assert record["psnr"] > 20
