"""The cache on a real S3-compatible server: commit protocol, verification, read-through copy, maintenance."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath

import pytest

from compressflow.errors import CacheError
from compressflow.cache.local import Cache
from compressflow.cache.open import is_remote, open_cache_at
from compressflow.cache.remote import RemoteCache, local_copy_dir

MODEL = bytes(range(256)) * 40           # 10240 bytes
NESTED = b"\x01\x02" * 3000


def make_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture
def messages() -> list[str]:
    return []


def open_remote(url: str, local: Path, messages: list[str]) -> RemoteCache:
    return RemoteCache(url, local_dir=local, log=messages.append)


def write_entry(cache: RemoteCache, key: str, stage: str = "pruned", model: bytes = MODEL) -> None:
    with cache.lock(key, stage=stage):
        with cache.writer(key, stage=stage, key_doc={"type": "prune", "stage": stage}) as out:
            (out / "model.keras").write_bytes(model)
            (out / "saved_model" / "variables").mkdir(parents=True)
            (out / "saved_model" / "variables" / "data").write_bytes(NESTED)
            (out / "saved_model" / "assets").mkdir()  # an empty directory survives the round trip


def uploads(cache: RemoteCache, key: str) -> set[str]:
    """Upload folders stored for ``key``."""
    return {name.split("/", 1)[0] for name in cache.store.list_files(cache._key_prefix(key)) if "/" in name}


def object_of(cache: RemoteCache, key: str, relative: str) -> str:
    manifest = json.loads(cache.store.read(cache._manifest_rel(key)))
    return f"{cache._key_prefix(key)}/{manifest['upload']}/{relative}"


class CountingDownloads:
    def __init__(self, cache: RemoteCache):
        self.count = 0
        original = cache.store.download

        def download(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        cache.store.download = download  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------- choosing


def test_urls_open_a_remote_cache_and_paths_a_local_one(tmp_path: Path, s3_url: str) -> None:
    assert isinstance(open_cache_at(s3_url, local_dir=tmp_path / "l"), RemoteCache)
    assert isinstance(open_cache_at(tmp_path / "c"), Cache)
    local = open_cache_at(f"file://{tmp_path}/c")
    assert isinstance(local, Cache) and local.root == tmp_path / "c"
    assert is_remote("s3://b/p") and is_remote("memory://x")
    assert not is_remote("/tmp/x") and not is_remote("file:///tmp/x")


def test_read_through_copy_lives_under_a_hash_of_the_url(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COMPRESSFLOW_LOCAL_CACHE", str(tmp_path / "copies"))
    first, second = local_copy_dir("s3://b/one"), local_copy_dir("s3://b/two")
    assert first.parent == second.parent == tmp_path / "copies"
    assert first != second
    assert local_copy_dir("s3://b/one/") == first


# ---------------------------------------------------------------------------------- round trip


def test_committed_entry_is_read_from_another_machine_and_downloaded_once(
        tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("round trip")
    writer = open_remote(s3_url, tmp_path / "machine-a", messages)
    assert writer.status(key) == "miss"
    write_entry(writer, key)
    assert writer.status(key) == "hit"

    reader = open_remote(s3_url, tmp_path / "machine-b", messages)
    downloads = CountingDownloads(reader)
    cheap = reader.lookup(key, stage="pruned")
    assert cheap is not None and cheap.key_doc == {"type": "prune", "stage": "pruned"}
    assert downloads.count == 0                       # a lookup without verify downloads nothing
    entry = reader.lookup(key, stage="pruned", verify=True)
    assert entry is not None
    assert entry.path == tmp_path / "machine-b" / "entries" / key[:2] / key
    assert (entry.path / "model.keras").read_bytes() == MODEL
    assert (entry.path / "saved_model" / "variables" / "data").read_bytes() == NESTED
    assert (entry.path / "saved_model" / "assets").is_dir()
    assert downloads.count == 2                       # the two stage files; key.json is rebuilt
    assert reader.entry_dir(key) == entry.path
    assert downloads.count == 2

    same_machine = open_remote(s3_url, tmp_path / "machine-b", messages)  # e.g. another process
    again = CountingDownloads(same_machine)
    assert same_machine.read_entry(key).files == entry.files
    assert again.count == 0
    assert messages == []


def test_entry_dir_downloads_a_committed_entry(tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("entry dir")
    write_entry(open_remote(s3_url, tmp_path / "a", messages), key)
    reader = open_remote(s3_url, tmp_path / "b", messages)
    assert (reader.entry_dir(key) / "model.keras").read_bytes() == MODEL
    missing = make_key("never written")
    assert not reader.entry_dir(missing).exists()
    with pytest.raises(CacheError, match="no cache entry"):
        reader.read_entry(missing)


# ---------------------------------------------------------------------------------- commit protocol


def test_partial_upload_is_never_a_hit_and_is_cleaned_by_the_next_writer(
        tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("partial")
    dying = open_remote(s3_url, tmp_path / "a", messages)
    original_create = dying.store.create

    def die_at_commit(rel: str, data: bytes):
        if rel.endswith("manifest.json"):
            raise KeyboardInterrupt("killed before the manifest was written")
        return original_create(rel, data)

    dying.store.create = die_at_commit  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        write_entry(dying, key)
    assert len(uploads(dying, key)) == 1              # every file of the upload is there ...

    other = open_remote(s3_url, tmp_path / "b", messages)
    assert other.status(key) == "miss"                # ... but without a manifest it is no entry
    assert other.lookup(key, stage="pruned", verify=True) is None
    assert other.entries() == []
    write_entry(other, key, model=b"recomputed")
    assert len(uploads(other, key)) == 1              # the dead writer's upload was removed
    assert (other.read_entry(key).path / "model.keras").read_bytes() == b"recomputed"


def test_first_commit_wins_and_the_loser_upload_is_discarded(tmp_path: Path, s3_url: str,
                                                             messages: list[str]) -> None:
    key = make_key("race")
    first = open_remote(s3_url, tmp_path / "a", messages)
    second = open_remote(s3_url, tmp_path / "b", messages)
    with first.writer(key, stage="pruned", key_doc={"type": "prune"}) as out:
        (out / "model.keras").write_bytes(b"first")
    # second wrote without the lock (e.g. its lease was taken over) and commits later
    with second.writer(key, stage="pruned", key_doc={"type": "prune"}) as out:
        (out / "model.keras").write_bytes(b"second")
    assert len(uploads(first, key)) == 1
    reader = open_remote(s3_url, tmp_path / "c", messages)
    assert (reader.read_entry(key).path / "model.keras").read_bytes() == b"first"

    with second.writer(key, stage="pruned", key_doc={"type": "prune"}, replace=True) as out:
        (out / "model.keras").write_bytes(b"forced")
    assert len(uploads(first, key)) == 1              # the replaced upload is deleted
    fresh = open_remote(s3_url, tmp_path / "d", messages)
    assert (fresh.read_entry(key).path / "model.keras").read_bytes() == b"forced"


def test_stage_failure_uploads_nothing(tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("failure")
    cache = open_remote(s3_url, tmp_path / "a", messages)
    with pytest.raises(RuntimeError):
        with cache.writer(key, stage="pruned", key_doc={"type": "prune"}) as out:
            (out / "model.keras").write_bytes(MODEL)
            raise RuntimeError("the stage failed")
    assert cache.store.list_files(cache._key_prefix(key)) == {}
    assert not cache.local.entry_dir(key).exists()


# ---------------------------------------------------------------------------------- damage


def test_truncated_object_is_damaged_reported_removed_and_recomputed(
        tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("truncated")
    cache = open_remote(s3_url, tmp_path / "a", messages)
    write_entry(cache, key)
    cache.store.put(object_of(cache, key, "model.keras"), MODEL[:1000])

    reader = open_remote(s3_url, tmp_path / "b", messages)
    assert reader.status(key) == "damaged"
    assert reader.lookup(key, stage="pruned") is None
    assert any("stage 'pruned'" in m and "model.keras is truncated (1000 of 10240 bytes)" in m for m in messages)
    assert reader.status(key) == "miss"
    assert not cache.local.entry_dir(key).exists() or reader.local_dir != cache.local_dir
    write_entry(reader, key)
    assert open_remote(s3_url, tmp_path / "c", messages).lookup(key, stage="pruned", verify=True) is not None


def test_same_size_change_is_caught_when_the_entry_is_consumed(
        tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("flipped")
    write_entry(open_remote(s3_url, tmp_path / "a", messages), key)
    reader = open_remote(s3_url, tmp_path / "b", messages)
    altered = bytearray(MODEL)
    altered[5000] ^= 0xFF
    reader.store.put(object_of(reader, key, "model.keras"), bytes(altered))

    assert reader.lookup(key, stage="pruned") is not None    # sizes still match: a cheap check passes
    assert reader.lookup(key, stage="pruned", verify=True) is None
    assert any("model.keras does not match its checksum" in m for m in messages)
    assert reader.status(key) == "miss"
    assert not reader.local.entry_dir(key).exists()


def test_damaged_local_copy_is_downloaded_again(tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    key = make_key("local damage")
    write_entry(open_remote(s3_url, tmp_path / "a", messages), key)
    first = open_remote(s3_url, tmp_path / "b", messages)
    local_model = first.read_entry(key).path / "model.keras"
    local_model.chmod(0o644)
    local_model.write_bytes(b"\0" * len(MODEL))

    second = open_remote(s3_url, tmp_path / "b", messages)
    entry = second.lookup(key, stage="pruned", verify=True)
    assert entry is not None
    assert (entry.path / "model.keras").read_bytes() == MODEL
    assert second.status(key) == "hit"                 # the store's entry was fine all along


# ---------------------------------------------------------------------------------- maintenance and refs


def test_refs_entries_verify_and_gc_work_on_the_store(tmp_path: Path, s3_url: str, messages: list[str]) -> None:
    cache = open_remote(s3_url, tmp_path / "a", messages)
    kept, dropped, broken = make_key("kept"), make_key("dropped"), make_key("broken")
    for key, stage in ((kept, "kept"), (dropped, "dropped"), (broken, "broken")):
        write_entry(cache, key, stage=stage)
    cache.set_ref("pipe", "kept", kept, {"type": "prune"})
    assert open_remote(s3_url, tmp_path / "b", messages).get_ref("pipe", "kept")["key"] == kept
    assert cache.get_ref("pipe", "unknown") is None

    altered = bytearray(MODEL)
    altered[0] ^= 1
    cache.store.put(object_of(cache, broken, "model.keras"), bytes(altered))
    listed = {info.key: info for info in cache.entries()}
    assert set(listed) == {kept, dropped, broken}
    assert listed[kept].stage == "kept" and listed[kept].size > len(MODEL) and not listed[kept].damaged
    problems = cache.verify_all()
    assert [(p.key, p.stage) for p in problems] == [(broken, "broken")]
    assert "does not match its checksum" in problems[0].message
    assert cache.verify_all(remove=True) and cache.status(broken) == "miss"

    removed, freed = cache.gc([kept])
    assert removed == 1 and freed >= len(MODEL)
    assert cache.status(kept) == "hit" and cache.status(dropped) == "miss"
    assert not cache.local.entry_dir(dropped).exists()
    assert [info.key for info in cache.entries()] == [kept]


def test_missing_bucket_is_a_clear_cache_error(tmp_path: Path, s3_endpoint: str, messages: list[str]) -> None:
    cache = open_remote("s3://no-such-bucket-here/cache", tmp_path / "a", messages)
    assert cache.status(make_key("x")) == "miss"
    with pytest.raises(CacheError, match="s3://no-such-bucket-here/cache"):
        with cache.lock(make_key("x"), stage="one"):
            pass


# ---------------------------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_cli_runs_plans_and_maintains_a_cache_on_s3(tmp_path: Path, s3_url: str) -> None:
    from helpers import TOY_PIPELINE, cli, runs, write

    pipeline = write(tmp_path / "toy.yaml", TOY_PIPELINE)
    log = tmp_path / "runs.log"
    first = cli("run", pipeline, "--cache", s3_url, "--jobs", "2", env={"TOY_RUN_LOG": str(log)})
    assert first.code == 0, first.text
    assert sorted(runs(log)) == ["one", "three", "total", "two"]

    changed = cli("plan", pipeline, "--cache", s3_url, "--set", "params.a=5")
    assert changed.code == 0, changed.text
    assert "config changed: value 1.0 -> 5.0" in changed.out     # the refs on the store explain it

    listed = cli("cache", "ls", "--cache", s3_url)
    assert listed.code == 0 and f"4 entries in {s3_url}" in listed.out, listed.text
    assert cli("cache", "verify", "--cache", s3_url).code == 0

    cache = RemoteCache(s3_url, local_dir=tmp_path / "copy")
    total = next(info for info in cache.entries() if info.stage == "total")
    cache.store.put(object_of(cache, total.key, "value.json"), b"9999")
    damaged = cli("cache", "verify", "--cache", s3_url)
    assert damaged.code == 1 and "DAMAGED" in damaged.out and "(stage total)" in damaged.out, damaged.text

    write(tmp_path / "toy.yaml", TOY_PIPELINE.replace("value: 2", "value: 3"))
    collected = cli("cache", "gc", "--scope", pipeline, "--cache", s3_url)  # forgets the old two and total
    assert collected.code == 0 and "removed 2 entries" in collected.out, collected.text  # two, and the damaged total
    assert {info.stage for info in cache.entries()} == {"one", "three"}


# ---------------------------------------------------------------------------------- storage options


class Quiet:
    def stage_started(self, name): ...
    def stage_finished(self, name, outcome): ...
    def stage_blocked(self, name, reason): ...
    def message(self, text): ...


def test_workers_reach_the_store_through_the_runs_storage_options_alone(tmp_path: Path, s3_url: str,
                                                                        s3_endpoint: str, monkeypatch) -> None:
    from helpers import TOY_PIPELINE, write

    from compressflow import api
    from compressflow.executor.plan import make_plan
    from compressflow.executor.runners import make_runner
    from compressflow.executor.scheduler import run_plan

    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the endpoint is known only to the options of this run
    monkeypatch.setenv("TOY_RUN_LOG", str(tmp_path / "runs.log"))
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    pipeline = api.load(write(tmp_path / "toy.yaml", TOY_PIPELINE))
    cache = open_cache_at(s3_url, local_dir=tmp_path / "copy", storage_options=options)
    plan = make_plan(pipeline, cache, verify=True)
    with make_runner(2) as runner:
        report = run_plan(plan, cache, runner, Quiet(), verify=True)
    assert report.ok, {name: outcome.error for name, outcome in report.outcomes.items()}
    assert report.count("ran") == 4
    ran = [line.split() for line in (tmp_path / "runs.log").read_text().splitlines()]
    assert len({pid for _name, pid in ran} - {str(os.getpid())}) >= 1  # computed by worker processes
    elsewhere = RemoteCache(s3_url, local_dir=tmp_path / "other-machine", storage_options=options)
    assert {elsewhere.status(item.key.key) for item in plan.stages.values()} == {"hit"}
    # the workers' read-through copy is the one the run asked for
    assert {entry.key for entry in Cache(tmp_path / "copy").entries()} == {i.key.key for i in plan.stages.values()}


def test_a_cache_spec_opens_the_same_cache_with_its_options(tmp_path: Path, s3_url: str, s3_endpoint: str) -> None:
    import pickle

    from compressflow.cache.open import CacheSpec, open_spec

    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    remote = RemoteCache(s3_url, local_dir=tmp_path / "copy", storage_options=options)
    remote.verify_reads = False
    spec = pickle.loads(pickle.dumps(remote.spec()))
    assert spec == CacheSpec(s3_url, storage_options=options, local_dir=str(tmp_path / "copy"), verify_reads=False)
    again = open_spec(spec)
    assert isinstance(again, RemoteCache) and again.local_dir == tmp_path / "copy" and not again.verify_reads
    assert RemoteCache(s3_url).spec().local_dir is None  # each machine keeps its own default copy
    local = open_spec(Cache(tmp_path / "local").spec())
    assert isinstance(local, Cache) and local.root == tmp_path / "local"


# ---------------------------------------------------------------------------------- metadata only


class CountingReads:
    """The store's file system, remembering the path of every object read."""

    def __init__(self, fs):
        self._fs = fs
        self.paths: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self._fs, name)

    def cat_file(self, path, *args, **kwargs):
        self.paths.append(str(path))
        return self._fs.cat_file(path, *args, **kwargs)

    def open(self, path, *args, **kwargs):
        self.paths.append(str(path))
        return self._fs.open(path, *args, **kwargs)

    async def _call_s3(self, method, *args, **kwargs):
        if method == "get_object":
            self.paths.append(str(kwargs.get("Key")))
        return await self._fs._call_s3(method, *args, **kwargs)


MODELS = """
version: 1
name: models
stages:
  base: {type: toy_file, path: data.txt}
  big:  {type: toy_scale, model: base, factor: 2, blob_kib: 64}
  more: {type: toy_scale, model: big, factor: 3, blob_kib: 64}
"""


def test_record_of_a_cached_run_reads_only_manifests_and_metadata(tmp_path: Path, s3_url: str) -> None:
    from helpers import write

    from compressflow import api
    from compressflow.executor.plan import make_plan
    from compressflow.executor.runners import make_runner
    from compressflow.executor.scheduler import run_plan
    from compressflow.runs.session import RunSession

    write(tmp_path / "data.txt", "twelve chars")
    pipeline = api.load(write(tmp_path / "models.yaml", MODELS))
    assert api.run(pipeline, cache_dir=s3_url, reporter=Quiet()).ok

    cache = RemoteCache(s3_url, local_dir=tmp_path / "fresh-machine")
    cache.verify_reads = False
    reads = CountingReads(cache.store.fs)
    cache.store.fs = reads
    plan = make_plan(pipeline, cache)
    assert {item.action for item in plan.stages.values()} == {"cached"}
    session = RunSession(pipeline, plan, cache, ["run"], Quiet(), origin="python")
    session.start()
    with make_runner(1) as runner:
        report = run_plan(plan, cache, runner, Quiet(), run_dir=session.dir)
    record = session.finish(report)

    assert record["status"] == "ok" and record["stages"]["big"]["status"] == "cached"
    assert record["stages"]["big"]["artifact"]["value"] == 24.0      # read from the store's artifact.json
    names = [PurePosixPath(path).name for path in reads.paths]
    assert "blob.bin" not in names and "value.json" not in names, reads.paths   # no model file was read
    assert names.count("artifact.json") == 3
    assert not (tmp_path / "fresh-machine" / "entries").exists()   # nothing was downloaded
