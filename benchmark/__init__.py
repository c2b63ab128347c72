"""regbench engine: registries, runner, solvers, metrics, result store."""
from benchmark.allocator import tune_malloc
from benchmark.plugins import mount_plugin_folders

tune_malloc()
mount_plugin_folders()
