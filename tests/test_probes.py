"""Probes change the data exactly as stated; level 0 is the nominal task, bit for bit."""
import os

import pytest
import torch

from benchmark.probes import NoiseSweep, Probe
from regbench_datasets.bsds500 import BSDS500
from regbench_datasets.denoising import DenoisingTask

pytestmark = pytest.mark.skipif(not os.environ.get("REGBENCH_DATA"), reason="REGBENCH_DATA not set")


@pytest.fixture(scope="module")
def task():
    return DenoisingTask(25, BSDS500("val_not68"), BSDS500("val_not68"), BSDS500("bsd68"))


def test_noise_sweep_scales_the_measured_noise_std(task):
    probe = NoiseSweep(levels=[0, -1, 1, 2])
    for level in probe.levels:
        noise = torch.cat([(s.y - s.x).flatten() for s in probe.samples(task, level, 8, None, 0, "cpu")])
        assert float(noise.std()) == pytest.approx(25 / 255 * 2.0**level, rel=0.05)


def test_level_zero_reproduces_the_nominal_measurements(task):
    nominal = list(Probe().samples(task, 0, 3, 64, 0, "cpu"))
    swept = list(NoiseSweep(levels=[0, 1]).samples(task, 0, 3, 64, 0, "cpu"))
    assert all(torch.equal(a.y, b.y) and a.image_id == b.image_id for a, b in zip(nominal, swept))


def test_levels_must_start_at_the_nominal_task():
    with pytest.raises(ValueError, match=r"probe.levels=\[1, 2\] is not allowed"):
        NoiseSweep(levels=[1, 2])
