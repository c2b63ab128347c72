"""The typed run specs resolved at the edge carry exactly what the config says."""

import pytest
from conftest import run_of

from regbench.core.spec import Folders
from regbench.evaluation.runner import combination_key
from regbench.training import checkpoints


def test_a_samplers_profile_settings_are_split_into_seeds_image_cap_and_options():
    run = run_of("method=diffpir", "profile=cpu")
    assert run.method.seeds == (0, 1, 2) and run.method.n_test == 17
    assert run.method.options == {"steps": 20, "bf16": True, "start": "measurement"}
    assert run.n_test == 17  # the profile evaluates all images (null), the sampler its first 17
    assert run_of("method=diffpir", "profile=cpu", "profile.data.n_test=5").n_test == 5
    assert run_of("method=tv", "profile=cpu").method.seeds == (0,)


def test_interpolations_resolve_against_the_profile_the_run_uses():
    smoke, cpu = run_of("method=deal", "profile=smoke"), run_of("method=deal", "profile=cpu")
    assert list(smoke.method.model.channels) == [1, 4, 8] and list(cpu.method.model.channels) == [1, 4, 8, 32]
    assert "${" not in str(dict(cpu.method.config))


def test_folders_come_from_the_config_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "env"))
    assert run_of("profile=smoke").folders.cache == tmp_path / "env"
    run = run_of("profile=smoke", f"cache_dir={tmp_path / 'given'}", f"out={tmp_path / 'out'}")
    assert run.folders == Folders(out=tmp_path / "out", cache=tmp_path / "given", weights=run.folders.weights)


def test_where_a_run_writes_is_not_part_of_its_keys(tmp_path):
    here = run_of("method=wcrr", "profile=smoke")
    there = run_of("method=wcrr", "profile=smoke", f"out={tmp_path}", f"cache_dir={tmp_path}", "data.root=/elsewhere")
    assert combination_key(here) == combination_key(there)
    assert checkpoints.checkpoint_key(checkpoints.spec_of(here)) == checkpoints.checkpoint_key(
        checkpoints.spec_of(there)
    )
    assert combination_key(here) != combination_key(run_of("method=wcrr", "profile=smoke", "seed=1"))


def test_a_warm_start_runs_the_other_method_under_its_own_scheme_in_the_same_folders(tmp_path):
    run = run_of("method=diffpir", "profile=smoke", "retrain=true", f"cache_dir={tmp_path}", "seed=3")
    other = checkpoints.init_run(run)
    assert (other.method.name, other.method.training, other.retrain) == ("pnp_drunet", None, False)
    assert (other.folders, other.seed, other.profile) == (run.folders, 3, run.profile)
    with pytest.raises(ValueError, match="train.init='tv' names a method with nothing trained"):
        checkpoints.init_run(run_of("method=diffpir", "profile=smoke", "method.train.init=tv"))


def test_a_per_profile_section_for_an_unknown_profile_fails_in_one_line():
    from conftest import compose

    from regbench.core.validate import ConfigError, validate

    validate(compose("method=deal", "profile=smoke"))
    with pytest.raises(
        ConfigError, match=r"method.train.budget \(of crr\)=\['cpuu'\] is not allowed; allowed: sections"
    ):
        validate(compose("method=crr", "profile=smoke", "+method.train.budget.cpuu.steps=3"))
