"""Checkpoints are content-addressed, checksummed and written atomically."""

import logging

import torch
from conftest import compose, run_of

from regbench.training import checkpoints


def test_saved_checkpoint_loads_and_a_truncated_one_is_reported(tmp_path, caplog):
    folders = run_of("method=crr", "profile=smoke", f"cache_dir={tmp_path}", f"weights_dir={tmp_path / 'none'}").folders
    state = {"w": torch.arange(10.0)}
    entry = checkpoints.save(folders, "crr", "abc", state, {"method": "crr"})
    loaded, got = checkpoints.load(folders, "crr", "abc")
    assert torch.equal(loaded["w"], state["w"]) and got["sha256"] == entry["sha256"]
    path = tmp_path / "checkpoints" / entry["file"]
    path.write_bytes(path.read_bytes()[:20])
    with caplog.at_level(logging.WARNING):
        assert checkpoints.load(folders, "crr", "abc") is None
    assert "corrupt or truncated" in caplog.text and str(path) in caplog.text
    assert checkpoints.load(folders, "crr", "other-key") is None
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_warm_start_key_follows_the_weights_it_starts_from():
    def spec_of(*overrides):
        cfg = compose("method=diffpir", "profile=smoke", *overrides)
        return checkpoints.training_spec(cfg.method, "smoke", cfg.seed)

    key = lambda *o: checkpoints.checkpoint_key(spec_of(*o))

    pnp = compose("method=pnp_drunet", "profile=smoke")
    spec = checkpoints.training_spec(compose("method=diffpir", "profile=smoke").method, "smoke", 0)
    assert spec["train"]["init"] == {
        "method": "pnp_drunet",
        "key": checkpoints.checkpoint_key(checkpoints.training_spec(pnp.method, "smoke", 0)),
    }
    # another seed: another PnP checkpoint to start from (its key is in this spec)
    assert spec_of("seed=1")["train"]["init"]["key"] != spec["train"]["init"]["key"]
    assert key() != key("method.train.init=null")


def test_warm_start_trains_from_the_other_methods_weights(tmp_path):
    """With lr=0 training leaves the weights it starts from: the diffusion prior is then PnP's denoiser,
    which was trained first (the cache was empty) and saved under its own key."""
    from regbench.core.instantiate import build
    from regbench.training.weights import prepare_weights

    common = ("profile=smoke", "progress=false", f"cache_dir={tmp_path}", f"weights_dir={tmp_path / 'none'}")
    run = run_of("method=diffpir", "method.train.lr=0", *common)
    model = build(run.method.model)
    prepare_weights(run, model, torch.device("cpu"))
    pnp = run_of("method=pnp_drunet", *common)
    pnp_key = checkpoints.checkpoint_key(checkpoints.spec_of(pnp))
    state, entry = checkpoints.load(pnp.folders, "pnp_drunet", pnp_key)
    assert entry["spec"]["method"] == "pnp_drunet"
    prior = model.denoiser.state_dict()
    for name, value in prior.items():
        assert torch.equal(value, state[f"denoiser.{name}"]), name
    cold_run = run_of("method=diffpir", "method.train.lr=0", "method.train.init=null", *common)
    cold = build(cold_run.method.model)
    prepare_weights(cold_run, cold, torch.device("cpu"))
    assert not all(torch.equal(v, cold.denoiser.state_dict()[k]) for k, v in prior.items())


def test_warm_start_from_a_method_with_nothing_trained_is_an_error():
    import pytest

    cfg = compose("method=diffpir", "profile=smoke", "method.train.init=tv")
    with pytest.raises(ValueError, match="train.init='tv' names a method with nothing trained"):
        checkpoints.training_spec(cfg.method, "smoke", 0)


def test_warm_start_from_the_same_method_under_another_scheme():
    """`train.init: lsr+score`: the bilevel training keys (and starts from) LSR's score-matching checkpoint;
    the warm-up itself, under its own scheme's settings, has no warm start of its own."""
    import pytest

    cfg = compose("method=lsr", "profile=smoke", "++method.train.init=lsr+score")
    spec = checkpoints.training_spec(cfg.method, "smoke", 0)
    warmup = compose("method=lsr", "training=score", "profile=smoke", "++method.train.init=lsr+score")
    warmup_spec = checkpoints.training_spec(warmup.method, "smoke", 0, warmup.training)
    assert spec["training"] == "bilevel_ift" and warmup_spec["training"] == "score"
    assert "init" not in warmup_spec["train"]
    assert spec["train"]["init"] == {"method": "lsr+score", "key": checkpoints.checkpoint_key(warmup_spec)}
    bad = compose("method=lsr", "profile=smoke", "++method.train.init=lsr+")
    with pytest.raises(ValueError, match=r"train.init='lsr\+': expected <method> or <method>\+<training scheme>"):
        checkpoints.training_spec(bad.method, "smoke", 0)


def test_a_warm_start_under_another_scheme_starts_from_the_score_trained_network(tmp_path):
    """With lr=0 the bilevel phase leaves LSR's network as the score-matching warm-up left it."""
    from regbench.core.instantiate import build
    from regbench.training.weights import prepare_weights

    common = ("profile=smoke", "progress=false", f"cache_dir={tmp_path}", f"weights_dir={tmp_path / 'none'}")
    run = run_of("method=lsr", "++method.train.init=lsr+score", "method.train.lr=0", *common)
    model = build(run.method.model)
    prepare_weights(run, model, torch.device("cpu"))
    warmup = run_of("method=lsr", "training=score", *common)
    state, entry = checkpoints.load(warmup.folders, "lsr", checkpoints.checkpoint_key(checkpoints.spec_of(warmup)))
    assert entry["spec"]["training"] == "score"
    fresh = build(run.method.model).state_dict()
    for name, value in model.state_dict().items():
        if name.startswith("net."):
            assert torch.equal(value, state[name]), name
    assert not all(torch.equal(v, fresh[k]) for k, v in state.items() if k.startswith("net."))
