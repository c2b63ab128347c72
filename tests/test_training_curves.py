"""scripts/training_curves.py: training-batch PSNR against minutes, from manifest histories."""

import json

import pytest
import training_curves


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
    }


def test_table_reads_psnr_or_converts_the_ridge_loss_and_smooths_over_a_tenth():
    t = training_curves.table(_manifest()).set_index("weights")
    # crr: PSNR k dB at history point k; at 100% the moving average of the last 4 points (37..40)
    assert t.loc["crr", "psnr@100%"] == pytest.approx(38.5)
    assert t.loc["crr", "psnr@25%"] == pytest.approx(8.5)  # points 7..10
    assert t.loc["pnp_drunet", "psnr@50%"] == pytest.approx(25.0) and t.loc["pnp_drunet", "psnr@100%"] == pytest.approx(
        27.0
    )
    assert t.loc["crr", "train_minutes"] == 40.0


def test_minutes_scale_with_the_history_and_a_history_without_psnr_is_an_error():
    c = training_curves.curve(_manifest()["b"])
    assert c.minutes.iloc[-1] == pytest.approx(10.0) and c.minutes.iloc[0] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="neither psnr nor loss"):
        training_curves.curve({"file": "x-1.pt", "train_minutes": 1.0, "log": {"history": {"lam": [1.0]}}})


def test_cli_prints_the_table_and_writes_the_png(tmp_path, capsys):
    (tmp_path / "MANIFEST.json").write_text(json.dumps(_manifest()))
    training_curves.main([str(tmp_path), "--out", str(tmp_path / "curves.png")])
    printed = capsys.readouterr().out
    assert "| crr " in printed and "psnr@75%" in printed
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
