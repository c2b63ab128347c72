"""The `regbench` command: sweeps, pre-checks, reports, perf and releases."""
