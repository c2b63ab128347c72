"""Stability probes: families of perturbations with levels, level 0 being the nominal task."""
from regbench.probes.families import (
    NoiseDecay,
    NoiseModel,
    NoiseSweep,
    OperatorMismatch,
    OutOfDistribution,
    Probe,
    Sensitivity,
    WorstCase,
)

__all__ = ["NoiseDecay", "NoiseModel", "NoiseSweep", "OperatorMismatch", "OutOfDistribution", "Probe",
           "Sensitivity", "WorstCase"]
