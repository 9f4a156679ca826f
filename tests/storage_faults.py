"""Test-only plugin: writes under one folder fail, as on a full, read-only or forbidden disk.

Load it with ``COMPRESSFLOW_PLUGINS=...,storage_faults`` and set
``COMPRESSFLOW_TEST_STORAGE_FAULT=ERRNO:FOLDER`` (``ENOSPC``, ``EROFS`` or ``EACCES``):

* ``ENOSPC``: files under FOLDER open, but writing data to them fails, as the kernel
  reports a full disk (on ``write``, without a file name);
* ``EROFS`` / ``EACCES``: creating or opening for writing a file, or creating or renaming
  a directory, under FOLDER fails naming the path.

Reading is never affected. Nothing happens without the variable, so the plugin is inert
in every other process.
"""

from __future__ import annotations

import builtins
import errno
import io
import os

ENV = "COMPRESSFLOW_TEST_STORAGE_FAULT"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _setting() -> tuple[int, str] | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    name, _, folder = value.partition(":")
    return getattr(errno, name), os.path.realpath(folder)


def _under(path, folder: str) -> bool:
    if isinstance(path, int):
        return False
    try:
        full = os.path.realpath(os.fspath(path))
    except (TypeError, ValueError):
        return False
    return full == folder or full.startswith(folder + os.sep)


def _fail(number: int, path=None):
    if path is None:
        return OSError(number, os.strerror(number))
    return OSError(number, os.strerror(number), os.fspath(path))


class _FullDiskFile:
    """A file whose data never fits: every write fails with ENOSPC (close and reads work)."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        raise _fail(errno.ENOSPC)

    def writelines(self, lines):
        raise _fail(errno.ENOSPC)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._handle.close()

    def __iter__(self):
        return iter(self._handle)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def _install(number: int, folder: str) -> None:
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    real_rename, real_replace = os.rename, os.replace

    def open_(file, mode="r", *args, **kwargs):
        writing = any(flag in mode for flag in "wxa+")
        if writing and _under(file, folder):
            if number != errno.ENOSPC:
                raise _fail(number, file)
            return _FullDiskFile(real_open(file, mode, *args, **kwargs))
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS and number != errno.ENOSPC and _under(path, folder):
            raise _fail(number, path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if number != errno.ENOSPC and _under(path, folder):
            raise _fail(number, path)
        return real_mkdir(path, *args, **kwargs)

    def rename_with(real):
        def rename(source, target, *args, **kwargs):
            if number != errno.ENOSPC and (_under(source, folder) or _under(target, folder)):
                raise _fail(number, target)
            return real(source, target, *args, **kwargs)
        return rename

    builtins.open = io.open = open_
    os.open, os.mkdir = os_open, mkdir
    os.rename, os.replace = rename_with(real_rename), rename_with(real_replace)


_configured = _setting()
if _configured is not None:
    _install(*_configured)
