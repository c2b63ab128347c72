"""Stability probes: families of perturbations with levels, level 0 being the nominal task.

Configs name them as `regbench.probes.<Class>`; each family is one module.
"""

from regbench.probes.base import Probe
from regbench.probes.noise import NoiseDecay, NoiseModel, NoiseSweep
from regbench.probes.ood import OutOfDistribution
from regbench.probes.operator_mismatch import OperatorMismatch
from regbench.probes.sensitivity import Sensitivity
from regbench.probes.worst_case import WorstCase

__all__ = [
    "NoiseDecay",
    "NoiseModel",
    "NoiseSweep",
    "OperatorMismatch",
    "OutOfDistribution",
    "Probe",
    "Sensitivity",
    "WorstCase",
]
