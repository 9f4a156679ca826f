"""Bounds on what reading a model file may cost, checked before anything in it is decompressed or parsed.

A model file from someone else may be built to exhaust the reader: a ``config.json`` that inflates
from 2 MB to gigabytes, thousands of zip entries that all point at one huge member (so that checking
each of them decompresses it again), a member that declares gigabytes, a config nested deeper than
the parsers' recursion, or a SavedModel folder whose ``variables/`` is a link to weights elsewhere
(which the cache key would not see). Each is refused with a :class:`ModelFileLimit` naming the file,
the limit and how to raise it. The limits read the environment when they are checked, so that one
command (or one process of the Python API) can raise them:

* ``COMPRESSFLOW_MODEL_MAX_CONFIG_BYTES`` (64 MiB): a model's stored config, decompressed
  (``config.json``, ``metadata.json``, the ``.h5`` attribute, ``keras_metadata.pb``);
* ``COMPRESSFLOW_MODEL_MAX_BYTES`` (2 GiB): all members of a ``.keras`` zip, decompressed;
* ``COMPRESSFLOW_MODEL_MAX_MEMBERS`` (256): entries in a ``.keras`` zip;
* ``COMPRESSFLOW_MODEL_MAX_CONFIG_DEPTH`` (200): nesting of lists and objects in a config.

This module does not import TensorFlow.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from compressflow.errors import StageFailed, UsageError


@dataclass(frozen=True)
class Limit:
    """One bound, with the environment variable that raises it."""

    variable: str
    default: int
    what: str  # e.g. "bytes for a model's config, decompressed"

    def value(self) -> int:
        """The bound in force: the environment variable's value (a positive integer), else the default."""
        raw = os.environ.get(self.variable, "").strip().replace("_", "")
        if not raw:
            return self.default
        if not raw.isdigit() or int(raw) <= 0:
            raise UsageError(f"{self.variable}={os.environ[self.variable]!r} is not a positive whole number "
                              f"(it is the most {self.what}); unset it or give a number such as {self.default}")
        return int(raw)

    def refuse(self, path: Path, found: str) -> "ModelFileLimit":
        """The error for ``path``, whose ``found`` (e.g. "config.json inflates to 2,147,483,648 bytes")
        is over this limit."""
        return ModelFileLimit(
            f"refusing to read model file {path}: {found}, over the limit of {self.value():,} {self.what}. "
            f"A file built to exhaust memory or time looks like this; if yours is real and that big, set "
            f"the environment variable {self.variable} to a larger number (see docs/reliability.md, "
            "'Hostile model files')")


MAX_CONFIG_BYTES = Limit("COMPRESSFLOW_MODEL_MAX_CONFIG_BYTES", 64 * 1024**2,
                         "bytes for a model's stored config, decompressed")
MAX_ARCHIVE_BYTES = Limit("COMPRESSFLOW_MODEL_MAX_BYTES", 2 * 1024**3,
                          "bytes for all members of a .keras file, decompressed")
MAX_MEMBERS = Limit("COMPRESSFLOW_MODEL_MAX_MEMBERS", 256, "entries in a .keras file")
MAX_CONFIG_DEPTH = Limit("COMPRESSFLOW_MODEL_MAX_CONFIG_DEPTH", 200,
                         "levels of nested lists and objects in a model's config")


class ModelFileLimit(StageFailed):
    """A model file is over a bound on what reading it may cost, or links outside its folder."""

    exit_code = 2


# --------------------------------------------------------------------------- .keras (zip)


#: The members of a ``.keras`` zip that are read before the model is loaded.
CONFIG_MEMBERS = ("config.json", "metadata.json")


def check_archive(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse a zip with too many entries, entries that share or overlap their data, a config member
    over the config limit, or too many bytes in all.

    Reads only the central directory (what ``ZipFile`` already parsed): nothing is decompressed.
    """
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS.value():
        raise MAX_MEMBERS.refuse(path, f"it has {len(infos):,} entries")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ModelFileLimit(f"refusing to read model file {path}: it has several entries named {duplicate!r}; "
                             "a .keras file that Keras wrote has each member once (save the model again)")
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for first, second in zip(ordered, ordered[1:]):
        # NOTE: entries whose data overlap make one member count many times (a "zip bomb" without recursion)
        if first.header_offset + first.compress_size > second.header_offset:
            raise ModelFileLimit(f"refusing to read model file {path}: its entries {first.filename!r} and "
                                 f"{second.filename!r} share their data, which no zip writer does; "
                                 "save the model again")
    for info in infos:
        if info.filename in CONFIG_MEMBERS:
            check_config_size(info.file_size, path, f"{info.filename} inflates to", f" ({info.compress_size:,} stored)")
    total = sum(info.file_size for info in infos)
    if total > MAX_ARCHIVE_BYTES.value():
        biggest = max(infos, key=lambda info: info.file_size)
        raise MAX_ARCHIVE_BYTES.refuse(path, f"its members inflate to {total:,} bytes ({biggest.filename!r} "
                                             f"declares {biggest.file_size:,})")


def read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    """The bytes of member ``name``, refused if it declares more than the config limit.

    ``ZipFile`` never decompresses more than a member declares (and then checks its CRC), so the
    declared size bounds the memory this takes.
    """
    info = archive.getinfo(name)
    check_config_size(info.file_size, path, f"{name} inflates to", f" ({info.compress_size:,} stored)")
    limit = MAX_CONFIG_BYTES.value()
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:  # pragma: no cover - ZipExtFile stops at the declared size
        raise MAX_CONFIG_BYTES.refuse(path, f"its {name} inflates to more than {limit:,} bytes")
    return data


# --------------------------------------------------------------------------- configs


# A JSON string (skipped whole, brackets inside it included) or one bracket.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_config_depth(data: bytes | str, path: Path, what: str = "config") -> None:
    """Refuse JSON text nested deeper than the depth limit, without parsing it.

    NOTE: ``json.loads`` recurses once per level and a config walk several times more; a file
    nested a few thousand levels deep would end in a RecursionError instead of a refusal.
    """
    raw = data.encode() if isinstance(data, str) else data
    limit = MAX_CONFIG_DEPTH.value()
    depth = 0
    for match in _JSON_TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise MAX_CONFIG_DEPTH.refuse(path, f"its {what} nests lists and objects more than {limit} "
                                                    "levels deep")
        elif token in (b"]", b"}"):
            depth -= 1


def check_config_size(size: int, path: Path, what: str, note: str = "") -> None:
    """Refuse a stored config of ``size`` bytes over the limit; ``what`` says what it is ("keras_metadata.pb
    is", "config.json inflates to") and ``note`` adds to the number."""
    if size > MAX_CONFIG_BYTES.value():
        raise MAX_CONFIG_BYTES.refuse(path, f"its {what} {size:,} bytes{note}")


# --------------------------------------------------------------------------- SavedModel folders


def check_links_stay_inside(folder: Path) -> None:
    """Refuse a model folder with a symbolic link whose target is outside the folder (or missing).

    NOTE: TensorFlow follows such a link (say ``variables/`` -> weights elsewhere) and loads what
    it points at, but the model's cache key hashes the folder's own files: new weights behind the
    link would leave the pipeline's results ``cached`` and stale. A link within the folder is
    fine: what it points at is hashed where it is.
    """
    root = Path(folder).resolve()
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            item = Path(current) / name
            if not item.is_symlink():
                continue
            target = item.resolve()
            if target != root and root not in target.parents:
                shown = item.relative_to(root).as_posix()
                raise ModelFileLimit(
                    f"refusing to read model folder {folder}: {shown} is a link to {os.readlink(item)} "
                    f"({target}), outside the model's folder; the model's cache key would not see what it "
                    "points at. Copy what it points at into the folder instead of linking to it")
