import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
if "REGBENCH_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["REGBENCH_DATA"] = str(SHARED_DATA)


# the zoo's regularizers (`sweep: false`): experiment=study runs them until their checkpoints are released
STUDY_ONLY = {"icnn", "idcnn", "cnn", "tdv", "lsr", "nett", "epll", "patchnr", "lpn"}


def run_cli(*args: str, cache: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `regbench run ...` in a subprocess with its own checkpoint cache."""
    full_env = {**os.environ, "REGBENCH_CACHE": str(cache), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "regbench", "run", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """The default sweep at smoke size, run once per pytest run."""
    root = tmp_path_factory.mktemp("smoke")
    out, cache = root / "out", root / "cache"
    proc = run_cli("-m", "experiment=default", "profile=smoke", f"out={out}", "progress=false", cache=cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"out": out, "cache": cache, "proc": proc}


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of toy-sized tensors: a second thread only adds synchronization
    (tens of times slower on a busy machine). Used by `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compose(*overrides: str):
    from regbench.core.registry import compose as registry_compose

    return registry_compose(list(overrides))


def run_of(*overrides: str):
    """The typed `Run` of a composed config, as the command line resolves it."""
    from regbench.core.spec import Run

    return Run.from_config(compose(*overrides))


def solve_with(method, y, physics, x0, hyper=None, **settings):
    """method.reconstruct with its own hyperparameters (`hyper` over them) and options from keywords:
    SolverOptions fields by name, the rest as the method's own settings (options.method)."""
    import dataclasses

    from regbench.solvers.options import SolverOptions

    fields = {f.name for f in dataclasses.fields(SolverOptions)}
    options = SolverOptions(
        **{k: v for k, v in settings.items() if k in fields},
        method={k: v for k, v in settings.items() if k not in fields},
    )
    return method.reconstruct(y, physics, x0, method.hyper(hyper), options)
