"""Download BSDS500 from its canonical URL (md5-checked) into a data root.

regbench download-data [--root DIR]    (default: $REGBENCH_DATA or <repo>/data)
"""

from __future__ import annotations

import argparse

from regbench.datasets.bsds500 import data_root, ensure_bsds500


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="regbench download-data", description=__doc__)
    parser.add_argument("--root", default=None, help="data root that will hold BSDS500/")
    args = parser.parse_args(argv)
    images = ensure_bsds500(str(data_root(args.root)), allow_download=True)
    print(f"BSDS500 images in {images}")
