"""A fully cached run on the S3 test server reads manifests, refs and the entries' small metadata files,
never an entry's other files, whether the read-through copy is there (the same machine) or not
(another machine): the server itself counts every object it serves."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from compressflow.cache.manifest import KEY_DOC_NAME, MANIFEST_NAME

# What a record reads of a cached stage's entry (``runs.records.stage_results``), plus the entry's
# own description: its manifest and key document.
METADATA = {MANIFEST_NAME, KEY_DOC_NAME, "artifact.json", "metrics.json", "selection.json"}

PIPELINE = """
version: 1
name: models
stages:
  base: {type: toy_file, path: data.txt}
  big:  {type: toy_scale, model: base, factor: 2, blob_kib: 64}
  more: {type: toy_scale, model: big, factor: 3, blob_kib: 64}
"""


class Quiet:
    def stage_started(self, name): ...
    def stage_finished(self, name, outcome): ...
    def stage_blocked(self, name, reason): ...
    def message(self, text): ...


@pytest.fixture
def served(monkeypatch, s3_endpoint: str) -> list[tuple[str, str]]:
    """(bucket, object key) of every GET of an object the test server answers, from any client."""
    from moto.s3.responses import S3Response

    seen: list[tuple[str, str]] = []
    original = S3Response.get_object

    def get_object(self):
        seen.append((self.bucket_name, self.parse_key_name()))
        return original(self)

    monkeypatch.setattr(S3Response, "get_object", get_object)
    return seen


def entry_reads(served: list[tuple[str, str]], bucket: str) -> tuple[list[str], list[str]]:
    """(metadata objects read, other objects read) inside the entries of the cache in ``bucket``."""
    inside = [key for name, key in served if name == bucket and key.startswith("cache/entries/")]
    metadata = [key for key in inside if PurePosixPath(key).name in METADATA]
    return metadata, [key for key in inside if PurePosixPath(key).name not in METADATA]


@pytest.mark.parametrize("machine", ["same", "another"])
def test_a_fully_cached_run_reads_no_entry_file(tmp_path: Path, s3_url: str, served, monkeypatch,
                                                machine: str) -> None:
    from helpers import write

    from compressflow import api

    write(tmp_path / "data.txt", "twelve chars")
    pipeline = api.load(write(tmp_path / "models.yaml", PIPELINE))
    monkeypatch.setenv("COMPRESSFLOW_LOCAL_CACHE", str(tmp_path / "machine-a"))
    first = api.run(pipeline, cache_dir=s3_url, reporter=Quiet(), echo=None)
    assert first.ok and first.record["stages"]["more"]["status"] == "ran"

    if machine == "another":
        monkeypatch.setenv("COMPRESSFLOW_LOCAL_CACHE", str(tmp_path / "machine-b"))
    bucket = s3_url.split("/")[2]
    served.clear()
    again = api.run(pipeline, cache_dir=s3_url, reporter=Quiet(), echo=None)

    assert again.ok
    assert {name: stage["status"] for name, stage in again.record["stages"].items()} == \
        {"base": "cached", "big": "cached", "more": "cached"}
    assert again.record["stages"]["more"]["artifact"]["value"] == 72.0    # read from the store's artifact.json
    metadata, others = entry_reads(served, bucket)
    print(f"{machine} machine: {len(metadata)} metadata objects read, {len(others)} other entry objects read")
    assert others == []
    assert {key.split("/")[3] for key in metadata if key.endswith(f"/{MANIFEST_NAME}")} == \
        {item["key"] for item in again.record["stages"].values()}            # every stage's manifest was read
    if machine == "another":
        assert not (tmp_path / "machine-b" / "entries").exists()           # nothing was downloaded


def test_a_damaged_input_of_a_stage_that_runs_is_caught_by_the_plan(tmp_path: Path, s3_url: str,
                                                                   monkeypatch) -> None:
    from helpers import write

    from compressflow import api
    from compressflow.cache.remote import RemoteCache

    write(tmp_path / "data.txt", "twelve chars")
    monkeypatch.setenv("COMPRESSFLOW_LOCAL_CACHE", str(tmp_path / "machine-a"))
    assert api.run(api.load(write(tmp_path / "models.yaml", PIPELINE)), cache_dir=s3_url, reporter=Quiet(),
                   echo=None).ok
    cache = RemoteCache(s3_url, local_dir=tmp_path / "inspect")
    big = next(info.key for info in cache.entries() if info.stage == "big")
    manifest = cache.store.read(cache._manifest_rel(big)).decode()
    upload = manifest.split('"upload": "')[1].split('"')[0]
    blob = f"{cache._key_prefix(big)}/{upload}/blob.bin"
    data = bytearray(cache.store.read(blob))
    data[0] ^= 0xFF
    cache.store.put(blob, bytes(data))                      # same size: only a rehash sees it

    monkeypatch.setenv("COMPRESSFLOW_LOCAL_CACHE", str(tmp_path / "machine-b"))
    changed = api.load(write(tmp_path / "models.yaml", PIPELINE.replace("factor: 3", "factor: 4")))
    again = api.run(changed, cache_dir=s3_url, reporter=Quiet(), echo=None)

    assert again.ok
    assert {name: stage["status"] for name, stage in again.record["stages"].items()} == \
        {"base": "cached", "big": "ran", "more": "ran"}
    assert again.record["stages"]["more"]["artifact"]["value"] == 96.0
