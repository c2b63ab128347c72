"""methods/ and datasets/ are plugin folders: importable as regbench_*, never shadowing `datasets`."""
import subprocess
import sys

from conftest import REPO


def test_plugin_folders_have_no_init_so_they_are_not_packages():
    assert not (REPO / "datasets" / "__init__.py").exists()
    assert not (REPO / "methods" / "__init__.py").exists()


def test_huggingface_style_datasets_package_is_not_shadowed(tmp_path):
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("ORIGIN = 'third-party'\n")
    code = "import benchmark, datasets, regbench_datasets.bsds500 as b; print(datasets.ORIGIN, b.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    origin, path = proc.stdout.split()
    assert origin == "third-party" and path == str(REPO / "datasets" / "bsds500.py")
