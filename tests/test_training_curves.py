"""regbench.results.training_curves (scripts/training_curves.py): each scheme's training quantity
against minutes, from manifest histories."""

import json

import pytest

from regbench.results import training_curves


def _manifest():
    return {
        "a": {
            "method": "crr",
            "file": "crr-aaaa.pt",
            "train_minutes": 40.0,
            "log": {"history": {"loss": [10 ** (-k / 10) for k in range(1, 41)]}},
        },
        "b": {
            "method": "pnp_drunet",
            "file": "pnp_drunet-bbbb.pt",
            "train_minutes": 10.0,
            "log": {"history": {"psnr": [25.0] * 20 + [27.0] * 20}},
        },
        "c": {
            "method": "wcrr",
            "training": "adversarial",
            "file": "wcrr-cccc.pt",
            "train_minutes": 5.0,
            "log": {"history": {"loss": [-1.0] * 10, "gap": [0.5] * 5 + [1.5] * 5}},
        },
        "d": {
            "method": "epll",
            "training": "method_fit",
            "file": "epll-dddd.pt",
            "train_minutes": 2.0,
            "log": {"history": {"nll": [-50.0, -60.0, -61.0]}},
        },
    }


def test_table_reads_psnr_or_converts_the_ridge_loss_and_smooths_over_a_tenth():
    t = training_curves.table(_manifest()).set_index("weights")
    # crr: PSNR k dB at history point k; at 100% the moving average of the last 4 points (37..40)
    assert t.loc["crr", "@100%"] == pytest.approx(38.5)
    assert t.loc["crr", "@25%"] == pytest.approx(8.5)  # points 7..10
    assert t.loc["pnp_drunet", "@50%"] == pytest.approx(25.0) and t.loc["pnp_drunet", "@100%"] == pytest.approx(27.0)
    assert t.loc["crr", "train_minutes"] == 40.0
    assert t.loc["crr", "quantity"] == t.loc["pnp_drunet", "quantity"] == "training-batch PSNR (dB)"


def test_adversarial_schemes_show_the_critic_gap_and_patch_priors_their_nll():
    t = training_curves.table(_manifest()).set_index("weights")
    # an adversarial loss is a critic loss, not an MSE: its gap is shown, never a PSNR of its loss
    assert t.loc["wcrr (adversarial)", "quantity"] == "critic gap, noisy - clean"
    assert t.loc["wcrr (adversarial)", "@100%"] == pytest.approx(1.5)
    assert t.loc["epll (method_fit)", "quantity"] == "patch NLL (nats)"
    assert t.loc["epll (method_fit)", "@100%"] == pytest.approx(-61.0)


def test_a_methods_own_fit_loss_is_shown_as_it_is_not_as_a_psnr():
    # NETT's fit loss (squared plus l1 error summed over pixels) is no MSE: a PSNR of it would read about -9 dB
    entry = {"method": "nett", "training": "method_fit", "train_minutes": 4.0}
    entry["log"] = {"history": {"loss": [12.0, 10.0, 9.0, 8.0], "noisy": [0.5] * 4}}
    c = training_curves.curve(entry)
    assert c.quantity.iloc[0] == "the method's own fitting loss"
    assert c.value.tolist() == [12.0, 10.0, 9.0, 8.0]


def test_minutes_scale_with_the_history_and_a_history_without_psnr_is_an_error():
    c = training_curves.curve(_manifest()["b"])
    assert c.minutes.iloc[-1] == pytest.approx(10.0) and c.minutes.iloc[0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="none of psnr, gap, nll, loss"):
        training_curves.curve({"file": "x-1.pt", "train_minutes": 1.0, "log": {"history": {"lam": [1.0]}}})


def test_cli_prints_the_table_and_writes_the_png(tmp_path, capsys):
    (tmp_path / "MANIFEST.json").write_text(json.dumps(_manifest()))
    training_curves.main([str(tmp_path), "--out", str(tmp_path / "curves.png")])
    printed = capsys.readouterr().out
    assert "| crr " in printed and "| epll (method_fit) " in printed and "@75%" in printed
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
