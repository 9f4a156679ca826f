"""Names the cache derives from keys and user-chosen names, always sanitised.

Nothing a user writes (a pipeline name, a stage name) and nothing that claims to be a
key becomes part of a path before it has passed through this module.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import string
from functools import lru_cache

KEY_PATTERN = re.compile(r"[0-9a-f]{64}")

_SAFE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_MAX_ENCODED_NAME = 120

# Temporary names: ".tmp-<key>-<pid>-<random>" for an entry being written, ".del-<key>-<pid>-<random>"
# for an entry being removed, ".tmp-<pid>-<random>-<name>" for a small file being replaced.
# <random> starts with a 6-hex tag of the host, so that liveness is only ever judged for processes
# of this host.
_TEMP_PATTERN = re.compile(
    r"\.(?:tmp|del)-(?:[0-9a-f]{64}-)?(?P<pid>\d+)-(?P<host>[0-9a-f]{6})[0-9a-f]{8}(?:-.*)?", re.DOTALL)


def check_key(key: object) -> str:
    """Return ``key`` if it is a cache key (64 lowercase hex characters), else raise ValueError."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"invalid cache key {key!r}: expected 64 lowercase hexadecimal characters "
                         "(a sha256 digest)")
    return key


def is_key(name: str) -> bool:
    return bool(KEY_PATTERN.fullmatch(name))


def short_key(key: str) -> str:
    """The first 12 characters of a key, for messages."""
    return key[:12] + "\u2026"


def encode_name(name: str) -> str:
    """Turn a user-chosen name into one safe file name, injectively for names of sane length.

    Characters outside ``[A-Za-z0-9_.-]`` and a leading ``.`` are percent-encoded (UTF-8
    bytes), so ``..``, ``/`` and hidden names cannot appear. Names whose encoding would be
    too long for a file system keep a prefix and end in ``~`` plus a sha256 of the name
    (``~`` never appears in a percent-encoded name).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid name {name!r}: expected a non-empty string")
    parts = []
    for index, char in enumerate(name):
        if char in _SAFE_NAME_CHARS and not (index == 0 and char == "."):
            parts.append(char)
        else:
            parts.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    encoded = "".join(parts)
    if len(encoded) > _MAX_ENCODED_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        encoded = f"{encoded[:_MAX_ENCODED_NAME - 33]}~{digest}"
    return encoded


@lru_cache(maxsize=1)
def host_tag() -> str:
    """A short, stable tag of this host, embedded in temporary names."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def _owner_suffix() -> str:
    return f"{os.getpid()}-{host_tag()}{secrets.token_hex(4)}"


def temp_entry_name(key: str) -> str:
    """Name of a directory an entry is written into before it is renamed into place."""
    return f".tmp-{key}-{_owner_suffix()}"


def doomed_entry_name(key: str) -> str:
    """Name an entry is renamed to before it is deleted (so nobody reads it half-deleted)."""
    return f".del-{key}-{_owner_suffix()}"


def temp_file_name(final_name: str) -> str:
    """Name of a temporary file that will replace ``final_name`` atomically."""
    return f".tmp-{_owner_suffix()}-{final_name}"


def temp_owner(name: str) -> tuple[int, str] | None:
    """(pid, host tag) of the process that created temporary ``name``; None if not a temp name."""
    match = _TEMP_PATTERN.fullmatch(name)
    if match is None:
        return None
    return int(match.group("pid")), match.group("host")
