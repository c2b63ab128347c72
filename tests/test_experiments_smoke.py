"""Every named experiment (configs/experiment/) runs to the end in the smoke profile, each from an empty
checkpoint cache, as `regbench release --profile smoke` runs it: every combination of its sweep has
finished rows. The wall time of each is printed (`pytest -s`); the smoke profile keeps each to minutes."""

import itertools
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from regbench.core.registry import known, sweep_params
from regbench.results.publish import EXPERIMENTS

pytestmark = pytest.mark.slow  # each experiment trains its methods at smoke size: minutes in all

EXPERIMENT_NAMES = known("experiment")


def sweeps(experiment: str) -> list[list[str]]:
    """The sweeps an experiment is released as (its own, plus any the release adds)."""
    return EXPERIMENTS.get(experiment, [[]])


def expected_cells(experiment: str, overrides: list[str]) -> set[tuple[str, str, str]]:
    """(method, task, probe) of every combination a sweep runs; a method's rows read `<method>+<scheme>`
    under a scheme other than its own, so the method is compared by its base name."""
    axes = sweep_params(experiment)
    for override in overrides:
        group, value = override.split("=", 1)
        axes[group] = value.split(",")
    return set(itertools.product(axes["method"], axes["task"], axes.get("probe", ["nominal"])))


def run_sweep(experiment: str, overrides: list[str], out: Path, cache: Path) -> None:
    start = time.perf_counter()
    proc = run_cli(
        "-m",
        f"experiment={experiment}",
        *overrides,
        "profile=smoke",
        f"out={out}",
        "progress=false",
        "logger=none",
        cache=cache,
        timeout=1800,
    )
    print(f"experiment={experiment} {' '.join(overrides)} profile=smoke: {time.perf_counter() - start:.0f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]


def check_rows(experiment: str, overrides: list[str], out: Path) -> None:
    """Every combination of the sweep has rows, none failed; a swept scheme gives each method one label per scheme."""
    rows = pd.read_parquet(out / "results.parquet")
    failed = rows[rows.status.str.startswith("failed")]
    assert failed.empty, failed[["method", "task", "probe", "status"]].drop_duplicates().to_string()
    cells = {(m.split("+")[0], t, p) for m, t, p in rows[["method", "task", "probe"]].itertuples(index=False)}
    assert cells == expected_cells(experiment, overrides)
    schemes = sweep_params(experiment).get("training")
    if schemes:
        labels = rows.groupby(rows.method.str.split("+").str[0]).method.nunique()
        assert (labels == len(schemes)).all(), labels


@pytest.mark.parametrize("experiment", EXPERIMENT_NAMES)
def test_experiment_runs_every_combination_at_smoke_size(experiment, tmp_path, request):
    for i, overrides in enumerate(sweeps(experiment)):
        if experiment == "default":  # the smoke sweep every test session runs once, from its own empty cache
            out = request.getfixturevalue("smoke_sweep")["out"]
        else:
            out = tmp_path / f"sweep{i}"
            run_sweep(experiment, overrides, out, tmp_path / "cache")
        check_rows(experiment, overrides, out)
