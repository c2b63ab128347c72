"""Download one file of a Zenodo record, checked against the md5 the record publishes.

The record's JSON (`<record api url>`) lists each file with its key, its
"md5:<hex>" checksum and its link; the file is fetched into a temporary file
next to the target, checked, and only then moved into place. No partial or
unchecked file is ever left behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from pathlib import Path

from regbench.core.hashing import file_digest
from regbench.datasets.images import DataMissingError


def md5sum(path: Path) -> str:
    return file_digest(path, "md5")


def record_files(record_url: str) -> dict[str, dict]:
    """{file key: {"md5": hex, "url": link}} of a Zenodo record (its API JSON)."""
    with urllib.request.urlopen(record_url, timeout=60) as r:
        record = json.load(r)
    files = record.get("files") or []
    out = {}
    for f in files:
        algo, _, digest = str(f.get("checksum", "")).partition(":")
        links = f.get("links") or {}
        out[f["key"]] = {"md5": digest if algo == "md5" else None, "url": links.get("content") or links.get("self")}
    return out


def fetch(record_url: str, key: str, target: Path) -> Path:
    """Download file `key` of the record to `target`, md5-checked against the record."""
    files = record_files(record_url)
    if key not in files:
        raise DataMissingError(
            f"Zenodo record {record_url} has no file {key!r}; it has {', '.join(sorted(files)) or 'none'}"
        )
    entry = files[key]
    if not entry["md5"] or not entry["url"]:
        raise DataMissingError(
            f"Zenodo record {record_url} gives no md5 checksum or link for {key!r}; not downloading it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{key}-")
    os.close(fd)
    tmp = Path(name)
    try:
        urllib.request.urlretrieve(entry["url"], tmp)
        got = md5sum(tmp)
        if got != entry["md5"]:
            raise DataMissingError(
                f"{key} from {entry['url']} has md5 {got}, the record says {entry['md5']}; not using it"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
