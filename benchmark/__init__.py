"""regbench: a benchmark of learned regularizers for imaging inverse problems.

The engine is grouped by job: `core` (registry, configs, hashing, device),
`solvers`, `training`, `calibration`, `evaluation`, `probes`, `results` and
`cli`; `regbench.methods` and `regbench.datasets` hold the methods and tasks.
Importing the package has no side effects.
"""
