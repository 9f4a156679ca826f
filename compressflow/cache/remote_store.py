"""Objects under one fsspec URL, addressed by relative POSIX paths, with conditional writes.

The remote cache needs two primitives beyond plain reads and writes:

* ``create``: write an object only if none exists (S3 ``PutObject`` with ``If-None-Match: *``),
* ``replace``: overwrite an object only if it is still the version we read
  (S3 ``PutObject`` / ``DeleteObject`` with ``If-Match: <ETag>``),

and reads that return an object's bytes together with the version tag (ETag) of those
very bytes. On S3 and S3-compatible stores (``s3://``) all three are atomic on the
server. Other fsspec stores get a check-then-write emulation that is atomic within one
process only; :attr:`ObjectStore.atomic` says which one is in force.

fsspec and the protocol's implementation (s3fs for ``s3://``) are imported here, lazily:
the core of compressflow does not need them.
"""

from __future__ import annotations

import errno
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressflow.errors import UsageError
from compressflow.cache.local_fs import FileDigest

_CHUNK = 1 << 20
#: Protocols whose conditional writes are atomic on the server.
ATOMIC_PROTOCOLS = frozenset({"s3", "s3a"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
#: What servers answer a conditional request they do not implement.
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "501"})


@dataclass(frozen=True)
class Tagged:
    """An object's bytes and the version tag (ETag) of exactly those bytes."""

    data: bytes
    tag: str


def install_hint(protocol: str) -> str:
    extra = "s3" if protocol in ("s3", "s3a") else None
    if extra:
        return f"install the [{extra}] extra: pip install 'compressflow[{extra}]'"
    return f"install fsspec and the package that implements {protocol}:// (see the fsspec documentation)"


def open_store(url: str, storage_options: dict[str, Any] | None = None) -> "ObjectStore":
    """The store at ``url`` (``s3://bucket/prefix``, ``memory://x``...); UsageError if unusable here."""
    protocol = url.split("://", 1)[0].lower() if "://" in url else "file"
    try:
        import fsspec
    except ImportError:
        raise UsageError(f"the cache {url} needs fsspec; {install_hint(protocol)}") from None
    options = {"use_listings_cache": False, **(storage_options or {})}
    try:
        fs, root = fsspec.url_to_fs(url, **options)
    except ImportError as exc:
        raise UsageError(f"the cache {url} needs a package that is not installed ({exc}); "
                         f"{install_hint(protocol)}") from None
    except ValueError as exc:
        raise UsageError(f"cannot use the cache {url}: {exc}") from None
    return ObjectStore(url.rstrip("/"), fs, root.rstrip("/"), protocol)


class ObjectStore:
    """Read and write objects below ``root`` of the fsspec file system ``fs``."""

    def __init__(self, url: str, fs: Any, root: str, protocol: str):
        self.url = url
        self.fs = fs
        self.root = root
        self.protocol = protocol
        self.atomic = protocol in ATOMIC_PROTOCOLS
        # False once the server refused a conditional DELETE: deletes then read, compare and delete.
        self.conditional_delete = True
        # NOTE: the emulated conditional writes check and write in two steps; this lock makes
        # them atomic at least among the threads of this process (e.g. the in-memory store).
        self._emulation_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def url_of(self, rel: str) -> str:
        return f"{self.url}/{rel}" if rel else self.url

    # ------------------------------------------------------------------ plain operations

    def read(self, rel: str) -> bytes:
        """The object's bytes; FileNotFoundError if absent."""
        return self.fs.cat_file(self.full(rel))

    def put(self, rel: str, data: bytes) -> None:
        """Write ``data`` (the object is replaced whole: readers see the old or the new bytes)."""
        self.fs.pipe_file(self.full(rel), data)

    def upload(self, local: Path, rel: str) -> None:
        self.fs.put_file(str(local), self.full(rel))

    def download(self, rel: str, local: Path) -> FileDigest:
        """Copy the object to the local file ``local`` (created); return its sha256 and size."""
        digest = hashlib.sha256()
        size = 0
        with self.fs.open(self.full(rel), "rb") as source, open(local, "xb") as target:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                target.write(chunk)
        return FileDigest(digest.hexdigest(), size)

    def hash(self, rel: str) -> FileDigest:
        """sha256 and size of the object's bytes, streamed."""
        digest = hashlib.sha256()
        size = 0
        with self.fs.open(self.full(rel), "rb") as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return FileDigest(digest.hexdigest(), size)

    def list_files(self, rel_prefix: str) -> dict[str, int]:
        """``{path relative to rel_prefix: size}`` of every object below ``rel_prefix``."""
        base = self.full(rel_prefix).rstrip("/")
        try:
            found = self.fs.find(base, detail=True, withdirs=False)
        except FileNotFoundError:
            return {}
        out = {}
        for name, info in found.items():
            name = name.rstrip("/")
            if name.startswith(base + "/") and info.get("type", "file") == "file":
                out[name[len(base) + 1:]] = int(info.get("size") or 0)
        return out

    def remove_prefix(self, rel_prefix: str) -> int:
        """Delete every object below ``rel_prefix``; return the bytes freed."""
        files = self.list_files(rel_prefix)
        if files:
            self.fs.rm([self.full(f"{rel_prefix}/{name}") for name in files])
        return sum(files.values())

    def delete(self, rel: str) -> None:
        """Delete one object; absent is fine."""
        try:
            self.fs.rm_file(self.full(rel))
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ conditional operations

    def read_tagged(self, rel: str) -> Tagged | None:
        """The object's bytes and their version tag; None if absent."""
        if self.atomic:
            return self._s3_get_tagged(rel)
        for _attempt in range(5):
            before = self._tag_of(rel)
            if before is None:
                return None
            try:
                data = self.read(rel)
            except FileNotFoundError:
                continue
            if self._tag_of(rel) == before:
                return Tagged(data, before)
        return None

    def create(self, rel: str, data: bytes) -> str | None:
        """Write the object only if it does not exist; its new tag, or None if it existed."""
        if self.atomic:
            try:
                response = self._s3_call("put_object", rel, Body=data, IfNoneMatch="*")
            except OSError as exc:
                if isinstance(exc, FileExistsError) or _is_precondition_failure(exc):
                    return None
                raise
            return str(response["ETag"])
        with self._emulation_lock:
            if self.fs.exists(self.full(rel)):
                return None
            self.put(rel, data)
            return self._tag_of(rel)

    def replace(self, rel: str, data: bytes, tag: str) -> str | None:
        """Overwrite the object only if its tag is still ``tag``; the new tag, or None if it changed."""
        if self.atomic:
            try:
                response = self._s3_call("put_object", rel, Body=data, IfMatch=tag)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if _is_precondition_failure(exc):
                    return None
                raise
            return str(response["ETag"])
        with self._emulation_lock:
            if self._tag_of(rel) != tag:
                return None
            self.put(rel, data)
            return self._tag_of(rel)

    def delete_if(self, rel: str, tag: str) -> bool:
        """Delete the object only if its tag is still ``tag``; whether it was deleted.

        On a server without conditional DELETE (:attr:`conditional_delete` turns False at its first
        refusal) the object's tag is read and the object deleted if it still matches: atomic no more,
        but a lease or an entry still only goes when it is the version we hold.
        """
        if self.atomic and self.conditional_delete:
            try:
                self._s3_call("delete_object", rel, IfMatch=tag)
            except FileNotFoundError:
                return False
            except OSError as exc:
                if _is_precondition_failure(exc):
                    return False
                if _error_code(exc) not in _UNSUPPORTED_CODES:
                    raise
                self.conditional_delete = False
            else:
                return True
        with self._emulation_lock:
            if self._tag_of(rel) != tag:
                return False
            self.delete(rel)
            return True

    def _tag_of(self, rel: str) -> str | None:
        try:
            info = self.fs.info(self.full(rel))
        except FileNotFoundError:
            return None
        for name in ("ETag", "etag", "generation", "version_id"):
            if info.get(name):
                return str(info[name])
        return f"{info.get('size')}:{info.get('mtime') or info.get('LastModified') or info.get('created')}"

    # ------------------------------------------------------------------ S3

    def _s3_call(self, operation: str, rel: str, **kwargs: Any) -> dict[str, Any]:
        bucket, key, _version = self.fs.split_path(self.full(rel))
        return self.fs.call_s3(operation, Bucket=bucket, Key=key, **kwargs)

    def _s3_get_tagged(self, rel: str) -> Tagged | None:
        from fsspec.asyn import sync

        bucket, key, _version = self.fs.split_path(self.full(rel))
        fs = self.fs

        async def get() -> Tagged:
            response = await fs._call_s3("get_object", Bucket=bucket, Key=key)
            try:
                return Tagged(await response["Body"].read(), str(response["ETag"]))
            finally:
                response["Body"].close()

        try:
            return sync(fs.loop, get)
        except FileNotFoundError:
            return None


def _error_code(exc: BaseException) -> str | None:
    cause = exc.__cause__ or exc.__context__
    response = getattr(cause, "response", None) or getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = error.get("Code")
        return str(code) if code is not None else None
    return None


def _is_precondition_failure(exc: OSError) -> bool:
    code = _error_code(exc)
    if code is not None:
        return code in _PRECONDITION_CODES
    return exc.errno == errno.EINVAL and "condition" in str(exc).lower()
