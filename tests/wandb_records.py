"""Read the records of a W&B run log (`run-<id>.wandb`).

wandb 0.31 no longer ships `wandb.sdk.internal.datastore`; the log is still the
LevelDB-style format it documented: a 7-byte header (":W&B", magic 0xBEE1,
version 0), then 32 KiB blocks of records, each with a 7-byte header (CRC-32 of
type byte + data, little-endian length, type: 1 full, 2 first, 3 middle, 4 last)
and a chunk of one serialized `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def chunks(path: Path):
    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # block trailer: zero padding
            pos += room
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            pos += room
            continue
        body = data[pos + HEADER : pos + HEADER + length]
        assert zlib.crc32(body, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == checksum, f"bad checksum at {pos}"
        pos += HEADER + length
        if kind == FULL:
            yield body
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            yield pending + body
            pending = b""


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    for blob in chunks(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(blob)
        yield record
