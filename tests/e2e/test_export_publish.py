"""Two runs exporting to one target at once: the model and its sidecar are published as one unit.

Real processes publish two different exports (the code path every export stage's publish takes)
to the same target, released together by a barrier, round after round. After each round the file
and the sidecar beside it come from the same export (the sidecar's sha256 is the file's), and a
reader that takes ``<target>.lock`` shared while the writes go on never sees a mixed pair.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from compressflow.errors import CacheError
from compressflow.fingerprints import tree_sha256
from compressflow.stages.publish import content_sha256, publish_export, read_published, sidecar_path

ROUNDS = 40
MAX_READS = 200_000
FORK = multiprocessing.get_context("fork")


def make_export(folder: Path, run: str, size: int) -> tuple[Path, Path]:
    """A cache entry's export as the export stage leaves it: a model file and its sidecar naming its sha256."""
    folder.mkdir(parents=True)
    model = folder / "model.tflite"
    model.write_bytes(run.encode() + os.urandom(size))
    sidecar = folder / "sidecar.json"
    sidecar.write_text(json.dumps({"format": "tflite", "run": run,
                                   "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}))
    return model, sidecar


def pair_at(target: Path) -> tuple[str, bytes, dict]:
    """(sha256 of the file, its first byte, the sidecar) as they are on disk now."""
    data = target.read_bytes()
    return hashlib.sha256(data).hexdigest(), data[:1], json.loads(sidecar_path(target).read_text())


def consistent(pair: tuple[str, bytes, dict]) -> bool:
    sha256, first, sidecar = pair
    return sidecar["sha256"] == sha256 and sidecar["run"].encode() == first


def publisher(barrier, model: Path, sidecar: Path, target: Path) -> None:
    for _ in range(ROUNDS):
        barrier.wait()
        publish_export(model, sidecar, target)
        barrier.wait()


def locked_reader(target: Path, stop, results) -> None:
    """Read the pair holding ``<target>.lock`` shared (the documented protocol) until told to stop."""
    reads = mixed = 0
    while reads < MAX_READS and not stop.is_set():
        fd = os.open(f"{target}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            pair = pair_at(target)
        finally:
            os.close(fd)
        reads += 1
        mixed += not consistent(pair)
    results.put((reads, mixed))


def test_concurrent_exports_to_one_target_leave_a_matching_pair(tmp_path: Path):
    target = tmp_path / "project" / "out" / "model.tflite"
    exports = [make_export(tmp_path / "cache" / "a", "a", 1 << 20), make_export(tmp_path / "cache" / "b", "b", 3 << 19)]
    publish_export(*exports[0], target)  # something to read from the start
    barrier, stop, results = FORK.Barrier(3), FORK.Event(), FORK.Queue()
    reader = FORK.Process(target=locked_reader, args=(target, stop, results))
    writers = [FORK.Process(target=publisher, args=(barrier, model, sidecar, target)) for model, sidecar in exports]
    reader.start()
    for writer in writers:
        writer.start()

    mismatched, winners = 0, set()
    try:
        for _ in range(ROUNDS):
            barrier.wait(timeout=120)  # both publish ...
            barrier.wait(timeout=120)  # ... and are done
            pair = pair_at(target)
            mismatched += not consistent(pair)
            winners.add(pair[2]["run"])
    finally:
        stop.set()
        reads, mixed = results.get(timeout=120)
        for process in (*writers, reader):
            process.join(timeout=120)

    assert mismatched == 0, f"{mismatched} of {ROUNDS} rounds left a model and a sidecar of different exports"
    assert reads > 0 and mixed == 0, f"the locked reader saw {mixed} mixed pairs in {reads} reads"
    assert [w.exitcode for w in writers] == [0, 0] and reader.exitcode == 0
    assert winners <= {"a", "b"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.tflite", "model.tflite.json",
                                                               "model.tflite.lock"]


def test_a_published_sidecar_names_the_sha256_of_its_export(tmp_path: Path):
    model, sidecar = make_export(tmp_path / "entry", "a", 4096)
    target = tmp_path / "out" / "model.tflite"
    publish_export(model, sidecar, target)
    published = read_published(target)
    assert published.consistent and published.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert sidecar_path(target).read_bytes() == sidecar.read_bytes()  # the entry's sidecar, byte for byte

    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    assert content_sha256(folder) == tree_sha256(folder)  # what the export stage records for a folder


def test_a_sidecar_naming_another_file_is_refused_and_nothing_changes(tmp_path: Path):
    target = tmp_path / "out" / "model.tflite"
    publish_export(*make_export(tmp_path / "old", "a", 4096), target)
    before = pair_at(target)
    model, sidecar = make_export(tmp_path / "damaged", "b", 4096)
    model.write_bytes(b"b" + os.urandom(4096))  # the file no longer matches its sidecar

    with pytest.raises(CacheError, match=r"does not match its sidecar .* cache verify --remove"):
        publish_export(model, sidecar, target)

    assert pair_at(target) == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.tflite", "model.tflite.json",
                                                               "model.tflite.lock"]


def test_when_the_sidecar_cannot_be_replaced_the_previous_pair_stays(tmp_path: Path):
    target = tmp_path / "out" / "model.tflite"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"previous model")
    (sidecar_path(target) / "in-the-way").mkdir(parents=True)  # a folder where the sidecar goes

    with pytest.raises(OSError):
        publish_export(*make_export(tmp_path / "new", "b", 4096), target)

    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.tflite", "model.tflite.json",
                                                               "model.tflite.lock"]
