"""Registries come from configs/<group>/*.yaml; unknown names fail in one line at start-up."""

import pytest
from conftest import STUDY_ONLY, run_cli

from regbench.core.instantiate import build
from regbench.core.registry import RegistryError, check_overrides, known


def test_registries_list_the_yaml_files():
    assert {"tv", "crr", "wcrr"} <= set(known("method"))
    assert "denoise_bsd68" in known("task")
    assert {"smoke", "cpu", "paper"} == set(known("profile"))


def test_unknown_method_in_a_multirun_list_is_named_with_the_known_ones():
    with pytest.raises(RegistryError, match=r"unknown method 'wcr'; known methods: .*crr.*tv.*wcrr"):
        check_overrides(["-m", "method=tv,wcr", "profile=smoke"])


def test_cli_rejects_unknown_task_in_one_line(tmp_path):
    proc = run_cli("task=denoise_bsd86", f"out={tmp_path}", cache=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown task 'denoise_bsd86'" in lines[0] and "denoise_bsd68" in lines[0]
    assert not (tmp_path / "results.parquet").exists()


def test_cli_rejects_bad_values_before_work(tmp_path):
    proc = run_cli("method=tv", "profile=smoke", "device=tpu", f"out={tmp_path}", cache=tmp_path)
    assert proc.returncode == 2
    assert "device='tpu' is not allowed; allowed: auto, cpu, cuda, cuda:N" in proc.stdout + proc.stderr
    assert not (tmp_path / "rows").exists()


def test_targets_outside_the_allowlist_are_refused():
    with pytest.raises(ValueError, match=r"_target_='os.system' is not allowed"):
        build({"_target_": "os.system", "command": "true"})


def test_default_sweep_is_every_registered_method_less_those_that_opt_out(tmp_path, monkeypatch):
    from regbench.cli.precheck import combinations
    from regbench.core.registry import known, sweep_params

    methods = tmp_path / "plugin" / "configs" / "method"
    methods.mkdir(parents=True)
    (methods / "joins_tv.yaml").write_text("name: joins_tv\nmodel: {_target_: regbench.methods.tv.TV}\ntrain: null\n")
    (methods / "hidden_tv.yaml").write_text(
        "name: hidden_tv\nsweep: false\nmodel: {_target_: regbench.methods.tv.TV}\ntrain: null\n"
    )
    monkeypatch.setenv("REGBENCH_PLUGINS", str(tmp_path / "plugin"))
    swept = sweep_params("default")["method"]
    assert "joins_tv" in swept and "hidden_tv" not in swept and "hidden_tv" in known("method")
    assert set(known("method")) - set(swept) <= {"hidden_tv"} | STUDY_ONLY
    jobs = combinations(["-m", "experiment=default"])
    assert ["experiment=default", "method=joins_tv", "task=denoise_bsd68"] in jobs and len(jobs) == len(swept)
