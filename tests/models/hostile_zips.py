"""Hostile ``.keras`` files, written by the tests that refuse them: small on disk, huge or deep to read.

Each writer streams what it writes, so that making a file that inflates to gigabytes takes a few
megabytes of memory. Every file is a well-formed zip (right CRCs and sizes): it is refused for
what it would cost to read, not for being corrupt.
"""

from __future__ import annotations

import binascii
import json
import struct
import zipfile
import zlib
from pathlib import Path

MIB = 1024**2
METADATA = json.dumps({"keras_version": "2.21.0", "date_saved": "2026-01-01@00:00:00"}).encode()


def deep_config(path: Path, depth: int) -> Path:
    """A ``.keras`` zip whose ``config.json`` is a layer list nested ``depth`` levels deep."""
    inner = {"class_name": "Dense", "config": {"name": "probs", "units": 10}}
    config = json.dumps({"class_name": "Sequential", "config": {"name": "m", "layers": "@"}})
    text = config.replace('"@"', "[" * depth + json.dumps(inner) + "]" * depth)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", METADATA)
        archive.writestr("config.json", text)
        archive.writestr("model.weights.h5", b"")
    return path


def inflating_config(path: Path, inflated_mib: int) -> Path:
    """A ``.keras`` zip whose deflated ``config.json`` inflates to ``inflated_mib`` MiB of spaces."""
    with open(path, "wb") as out:
        entries = [_stored(out, "metadata.json", METADATA)]
        entries.append(_repeated(out, "config.json", b" " * MIB, inflated_mib))
        _central_directory(out, entries)
    return path


def shared_member(path: Path, entries: int, member_mib: int) -> Path:
    """A ``.keras`` zip with ``entries`` central-directory entries that all point at one deflated member
    of ``member_mib`` MiB of zeros (checking each entry would decompress it once per entry)."""
    config = json.dumps({"class_name": "Sequential", "config": {"name": "m", "layers": []}}).encode()
    with open(path, "wb") as out:
        listed = [_stored(out, "metadata.json", METADATA), _stored(out, "config.json", config)]
        weights = _repeated(out, "model.weights.h5", bytes(MIB), member_mib)
        copies = [(f"model.weights.{n}.h5".encode(), *weights[1:]) for n in range(entries - len(listed) - 1)]
        _central_directory(out, [*listed, weights, *copies])
    return path


def huge_declared_member(path: Path, declared: int) -> Path:
    """A ``.keras`` zip whose weights member says it inflates to ``declared`` bytes (its data is 1 MiB)."""
    config = json.dumps({"class_name": "Sequential", "config": {"name": "m", "layers": []}}).encode()
    with open(path, "wb") as out:
        entries = [_stored(out, "metadata.json", METADATA), _stored(out, "config.json", config)]
        name, method, crc, compressed, _size, offset = _repeated(out, "model.weights.h5", bytes(MIB), 1)
        entries.append((name, method, crc, compressed, declared, offset))
        _central_directory(out, entries)
    return path


# --------------------------------------------------------------------------- zip records


def _stored(out, name: str, data: bytes) -> tuple:
    offset = out.tell()
    crc = binascii.crc32(data)
    out.write(_local_header(name.encode(), zipfile.ZIP_STORED, crc, len(data), len(data)))
    out.write(data)
    return name.encode(), zipfile.ZIP_STORED, crc, len(data), len(data), offset


def _local_header(name: bytes, method: int, crc: int, compressed: int, size: int) -> bytes:
    return struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, compressed, size,
                       len(name), 0) + name


def _central_directory(out, entries: list[tuple]) -> None:
    start = out.tell()
    for name, method, crc, compressed, size, offset in entries:
        out.write(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                              compressed, size, len(name), 0, 0, 0, 0, 0, offset) + name)
    length = out.tell() - start
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), length, start, 0))


def _repeated(out, name: str, chunk: bytes, times: int) -> tuple:
    """Write a deflated member that is ``chunk`` ``times`` over, in about ``times`` KiB of memory and time.

    NOTE: deflating gigabytes takes most of a minute. A deflate stream fully flushed after each chunk
    gives the same bytes for every chunk after the first, so the member is that block repeated; its CRC
    is combined from the chunk's. It is a plain ZIP_DEFLATED member that zipfile and unzip read back.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH) == block
    tail = compressor.flush(zlib.Z_FINISH)
    compressed = len(first) + (times - 1) * len(block) + len(tail)
    crc = _repeated_crc(binascii.crc32(chunk), len(chunk), times)
    offset = out.tell()
    out.write(_local_header(name.encode(), zipfile.ZIP_DEFLATED, crc, compressed, len(chunk) * times))
    out.write(first)
    for _ in range(times - 1):
        out.write(block)
    out.write(tail)
    return name.encode(), zipfile.ZIP_DEFLATED, crc, compressed, len(chunk) * times, offset


def _repeated_crc(crc: int, length: int, times: int) -> int:
    """CRC-32 of ``times`` copies of bytes whose CRC-32 is ``crc`` and length ``length`` (by doubling)."""
    total, total_length = 0, 0
    while times:
        if times & 1:
            total, total_length = crc32_combine(total, crc, length), total_length + length
        crc, length, times = crc32_combine(crc, crc, length), 2 * length, times >> 1
    return total


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A + B from CRC-32 of A, of B and B's length (zlib's crc32_combine)."""
    if length2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = _gf2_square(even)
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]
