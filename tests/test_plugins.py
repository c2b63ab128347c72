"""One package, `regbench`: no generic top-level names, no import-time side effects, and
methods that join the registry from a folder (REGBENCH_PLUGINS) or an installed entry point."""

import os
import subprocess
import sys

from conftest import REPO


def _python(code: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def test_regbench_parts_are_the_repository_folders_and_no_generic_name_is_importable(tmp_path):
    code = (
        "import importlib.util as u, regbench.methods.ridge as r, regbench.datasets.bsds500 as b;"
        "print(r.__file__, b.__file__, *(u.find_spec(n) is None for n in ('benchmark', 'methods')))"
    )
    proc = _python(code, cwd=tmp_path)  # outside the repository: what an installed regbench offers
    assert proc.returncode == 0, proc.stderr
    ridge, bsds, no_benchmark, no_methods = proc.stdout.split()
    assert ridge == str(REPO / "methods" / "ridge.py") and bsds == str(REPO / "datasets" / "bsds500.py")
    assert no_benchmark == "True" and no_methods == "True"


def test_huggingface_style_datasets_package_is_not_shadowed(tmp_path):
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("ORIGIN = 'third-party'\n")
    code = "import regbench.datasets.bsds500 as b, datasets; print(datasets.ORIGIN, b.__file__)"
    proc = _python(code, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 0, proc.stderr
    origin, path = proc.stdout.split()
    assert origin == "third-party" and path == str(REPO / "datasets" / "bsds500.py")


def test_importing_regbench_has_no_side_effects(tmp_path):
    plugin = tmp_path / "plugin" / "methods"
    plugin.mkdir(parents=True)
    code = (
        "import sys, regbench, regbench.methods;"
        "print(len(regbench.methods.__path__), 'torch' in sys.modules, 'hydra' in sys.modules)"
    )
    proc = _python(code, cwd=tmp_path, env={"REGBENCH_PLUGINS": str(tmp_path / "plugin")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "False", "False"]  # the plugin folder joins only when asked


PLUGIN_MODULE = '''\
"""A method shipped by an installed package."""
from regbench.methods.tv import TV


class ScaledTV(TV):
    """TV under another name, enough to see the target resolve."""
'''


def test_installed_package_joins_the_registry_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    pkg = site / "myplug"
    (pkg / "configs" / "method").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "methods.py").write_text(PLUGIN_MODULE)
    (pkg / "configs" / "method" / "scaled_tv.yaml").write_text(
        "name: scaled_tv\nmodel: {_target_: myplug.methods.ScaledTV}\ntrain: null\n"
    )
    dist = site / "myplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[regbench.methods]\nmyplug = myplug\n")
    code = (
        "from regbench.core import registry; from regbench.core.instantiate import build;"
        "print('scaled_tv' in registry.known('method'), type(build({'_target_': 'myplug.methods.ScaledTV'})).__name__);"
        "build({'_target_': 'otherpkg.X'})"
    )
    proc = _python(code, cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert proc.stdout.split() == ["True", "ScaledTV"], proc.stderr[-2000:]
    assert "'otherpkg.X' is not allowed" in proc.stderr and "myplug." in proc.stderr
