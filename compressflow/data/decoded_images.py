"""Decoded images kept beside the cache, so a folder of images is decoded once per machine, not once per stage.

The first stage of a run that reads an ``image_directory`` decodes its splits (in their order) into
``<local cache>/datasets/<key>/``: one file per split of fixed-length float32 records, written into
a temporary folder and renamed into place (its ``info.json``, written last, is the commit point).
Every later stage, and every later run on the machine, streams those files. The key holds what
decides the decoded values: the folder's fingerprint (the sha256 of its files, the one in the stage
keys), ``image_size``, ``color_mode``, the order of each split's files, the source of the decoding
modules and the TensorFlow version. A lock per key makes a second process wait for the first one's
copy instead of decoding too.

``COMPRESSFLOW_DECODE_LOG``, when set, names a file that gets one line per image decoded
(``dataset<TAB>file``): how tests count decodes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from compressflow.data.image_folder import (CHANNELS, DECODE_BATCH, FolderSplit, decode_stream,
                                            undecodable_file)
from compressflow.errors import StageFailed

DECODE_LOG_ENV = "COMPRESSFLOW_DECODE_LOG"
FOLDER = "datasets"  # under the local cache root
INFO = "info.json"
FORMAT = 1
SPLITS = ("train", "validation")


def decoded_key(fingerprint: str, folder: FolderSplit, image_size: tuple[int, int], color_mode: str) -> str:
    """The key of a folder's decoded splits (see the module's docstring for what it holds)."""
    import numpy as np

    from compressflow.fingerprints import distribution_version

    doc = {"format": FORMAT, "fingerprint": fingerprint, "image_size": list(image_size), "color_mode": color_mode,
           "splits": {split: hashlib.sha256("\0".join(folder.files(split)).encode()).hexdigest() for split in SPLITS},
           "labels": {split: hashlib.sha256(np.asarray(folder.labels(split), np.int32).tobytes()).hexdigest()
                      for split in SPLITS},
           "code": {module: _source_sha256(module) for module in ("image_folder", "decoded_images")},
           "tensorflow": distribution_version("tensorflow")}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _source_sha256(module: str) -> str:
    return hashlib.sha256((Path(__file__).parent / f"{module}.py").read_bytes()).hexdigest()


def decoded_streams(cache_root: Path, key: str, folder: FolderSplit, image_size: tuple[int, int],
                    color_mode: str, name: str) -> dict:
    """Split name -> a tf.data stream of ``(image, label)`` read from the decoded copy (made first if missing)."""
    entry = Path(cache_root) / FOLDER / key
    if not _complete(entry):
        with _locked(entry.with_name(f"{key}.lock")):
            if not _complete(entry):
                shutil.rmtree(entry, ignore_errors=True)  # NOTE: a damaged copy is decoded again
                _write(entry, folder, image_size, color_mode, name)
    return {split: _read(entry, folder, split, image_size, color_mode) for split in SPLITS}


def _record_bytes(image_size: tuple[int, int], color_mode: str) -> int:
    return image_size[0] * image_size[1] * CHANNELS[color_mode] * 4


def _complete(entry: Path) -> bool:
    try:
        info = json.loads((entry / INFO).read_text())
        return all((entry / f"{split}.f32").stat().st_size == info["bytes"][split] for split in SPLITS)
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # NOTE: released by the kernel if this process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(entry: Path, folder: FolderSplit, image_size, color_mode: str, name: str) -> None:
    import numpy as np

    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    temp = entry.with_name(f".tmp-{entry.name}-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    log_path = os.environ.get(DECODE_LOG_ENV)
    started, sizes = time.perf_counter(), {}
    try:
        for split in SPLITS:
            files = folder.files(split)
            stream = decode_stream(folder.root, files, image_size, color_mode).batch(DECODE_BATCH).prefetch(2)
            done = 0
            with open(temp / f"{split}.f32", "wb") as out:
                try:
                    for batch in stream:
                        out.write(np.asarray(batch, dtype="<f4").tobytes())
                        if log_path:
                            _log_decoded(log_path, name, files[done:done + int(batch.shape[0])])
                        done += int(batch.shape[0])
                except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError) as exc:
                    bad = undecodable_file(folder.root, files[done:done + DECODE_BATCH], image_size, color_mode)
                    reason = str(getattr(exc, "message", exc)).strip().splitlines()[0]
                    raise StageFailed(f"dataset {name!r}: {folder.root / (bad or files[done])} is not an image "
                                      f"TensorFlow can decode ({reason}); remove or replace it") from None
                out.flush()
                os.fsync(out.fileno())
            sizes[split] = done * _record_bytes(image_size, color_mode)
        info = {"format": FORMAT, "dataset": name, "folder": str(folder.root), "bytes": sizes,
                "images": {split: len(folder.files(split)) for split in SPLITS},
                "image_shape": [*image_size, CHANNELS[color_mode]], "seconds": time.perf_counter() - started}
        (temp / INFO).write_text(json.dumps(info, indent=2))
        os.rename(temp, entry)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _log_decoded(log_path: str, name: str, files) -> None:
    with open(log_path, "a") as handle:
        handle.write("".join(f"{name}\t{file}\n" for file in files))


def _read(entry: Path, folder: FolderSplit, split: str, image_size, color_mode: str):
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    shape = (*image_size, CHANNELS[color_mode])
    images = tf.data.FixedLengthRecordDataset(str(entry / f"{split}.f32"), _record_bytes(image_size, color_mode),
                                              buffer_size=1 << 20)
    images = images.map(lambda record: tf.reshape(tf.io.decode_raw(record, tf.float32, little_endian=True), shape),
                        num_parallel_calls=tf.data.AUTOTUNE)
    labels = tf.data.Dataset.from_tensor_slices(tf.constant(folder.labels(split), dtype=tf.int32))
    return tf.data.Dataset.zip((images, labels))
