"""regbench: a benchmark of learned regularizers for imaging inverse problems.

The engine is grouped by job: `core` (registry, configs, hashing, device),
`solvers`, `training`, `calibration`, `evaluation`, `probes`, `results` and
`cli`; `regbench.methods` and `regbench.datasets` hold the methods and tasks.
Importing the package has no side effects.
"""


def evaluate(model, name: str, **options):
    """Benchmark your own model (a deepinv Prior, Denoiser, reconstructor or regbench Method) on regbench's
    tasks and probes; see `regbench.api.evaluate`. Imported on first call: `import regbench` stays light."""
    from regbench.api import evaluate as run

    return run(model, name, **options)
