"""Download BSDS500 from its canonical URL (md5-checked) into a data root.

    python -m scripts.download_data [--root DIR]    (default: $REGBENCH_DATA or <repo>/data)
"""
from __future__ import annotations

import argparse

import benchmark  # noqa: F401  (mounts plugin folders)
from regbench_datasets.bsds500 import data_root, ensure_bsds500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default=None, help="data root that will hold BSDS500/")
    args = parser.parse_args()
    images = ensure_bsds500(str(data_root(args.root)), allow_download=True)
    print(f"BSDS500 images in {images}")


if __name__ == "__main__":
    main()
