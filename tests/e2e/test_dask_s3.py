"""Real runs on Dask clusters with the cache on a real S3-compatible server (both on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import remote_toy_stages  # noqa: F401  (registers toy_log in this process too)
from helpers import cli, runs, spawn_cli, write

import compressflow.api
from compressflow.cache.local import Cache
from compressflow.cache.remote import RemoteCache

pytestmark = pytest.mark.slow  # a local Dask cluster and an S3 server per module

PLUGINS = "toy_stages,remote_toy_stages"

SWEEP = """
version: 1
name: sweep
stages:
  base:  {type: toy_number, value: 1.5, sleep: 0.2}
  x2:    {type: toy_scale, model: base, factor: 2, sleep: 0.5}
  x3:    {type: toy_scale, model: base, factor: 3, sleep: 0.5}
  x4:    {type: toy_scale, model: base, factor: 4, sleep: 0.5}
  x5:    {type: toy_scale, model: base, factor: 5, sleep: 0.5}
  note:  {type: toy_log, message: hello from a worker}
  total: {type: toy_sum, inputs: [x2, x3, x4, x5, note]}
"""


def plan_keys(pipeline: Path, cache: str) -> dict[str, dict]:
    """``{stage: {"key", "action"}}`` of a plan made in this process."""
    plan = compressflow.api.plan(pipeline, cache_dir=cache)
    return {name: {"key": item.key.key, "action": item.action} for name, item in plan.stages.items()}


def entry_files(cache, key: str) -> dict[str, bytes]:
    entry = cache.read_entry(key)
    return {name: entry.file(name).read_bytes() for name in entry.files}


@pytest.fixture(scope="module")
def cluster(s3_endpoint: str, tmp_path_factory):
    """A LocalCluster of two worker processes (resource CPU=1 each) that the tests reach by address."""
    from distributed import Client, LocalCluster

    folder = tmp_path_factory.mktemp("cluster")
    saved = {name: os.environ.get(name) for name in ("TOY_RUN_LOG", "COMPRESSFLOW_PLUGINS", "COMPRESSFLOW_LOCAL_CACHE")}
    # Worker processes inherit this environment: where toy stages record runs, plugins, local copies.
    os.environ.update(TOY_RUN_LOG=str(folder / "runs.log"), COMPRESSFLOW_PLUGINS=PLUGINS,
                      COMPRESSFLOW_LOCAL_CACHE=str(folder / "worker-copies"))
    local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address="127.0.0.1:0", resources={"CPU": 1})
    client = Client(local)
    try:
        yield local.scheduler_address, client, folder / "runs.log"
    finally:
        client.close()
        local.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def cluster_log(cluster):
    """The run log of the cluster's workers, emptied for this test."""
    _address, _client, log = cluster
    log.write_text("")
    return log


# ---------------------------------------------------------------------------------- a local cluster


def test_sweep_on_a_local_cluster_equals_a_local_run_and_is_shared_through_s3(tmp_path: Path, s3_url: str,
                                                                             monkeypatch) -> None:
    pipeline = write(tmp_path / "sweep.yaml", SWEEP)
    local_log, dask_log, second_log = tmp_path / "local.log", tmp_path / "dask.log", tmp_path / "second.log"
    local_cache = tmp_path / "local-cache"
    env = {"COMPRESSFLOW_PLUGINS": PLUGINS}

    monkeypatch.setenv("TOY_RUN_LOG", str(local_log))
    assert compressflow.api.run(pipeline, cache_dir=local_cache, reporter=Quiet()).ok

    proc = spawn_cli("run", pipeline, "--cache", s3_url, "--executor", "dask", "--workers", "2",
                     env={**env, "TOY_RUN_LOG": str(dask_log), "COMPRESSFLOW_LOCAL_CACHE": str(tmp_path / "copy-a")})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "7 to run" in out and "7 ran" in out
    ran = [line.split() for line in dask_log.read_text().splitlines()]
    assert sorted(name for name, _pid in ran) == sorted(runs(local_log)) == sorted(
        ["base", "x2", "x3", "x4", "x5", "note", "total"])
    assert str(proc.pid) not in {pid for _name, pid in ran}          # every stage ran on a worker
    assert "[note] hello from a worker (pid" in out                  # its log line reached this terminal

    local_keys, remote_keys = plan_keys(pipeline, str(local_cache)), plan_keys(pipeline, s3_url)
    assert {n: s["key"] for n, s in remote_keys.items()} == {n: s["key"] for n, s in local_keys.items()}
    assert all(s["action"] == "cached" for s in remote_keys.values())
    local_store, remote_store = Cache(local_cache), RemoteCache(s3_url, local_dir=tmp_path / "check")
    for name, stage in local_keys.items():
        assert entry_files(remote_store, stage["key"]) == entry_files(local_store, stage["key"]), name

    second = cli("run", pipeline, "--cache", s3_url, "--executor", "dask", "--workers", "2",
                 env={**env, "TOY_RUN_LOG": str(second_log), "COMPRESSFLOW_LOCAL_CACHE": str(tmp_path / "copy-b")})
    assert second.code == 0, second.text
    assert "0 to run, 7 cached" in second.out and "0 ran, 7 cached" in second.out
    assert runs(second_log) == []


class Quiet:
    def stage_started(self, name): ...
    def stage_finished(self, name, outcome): ...
    def stage_blocked(self, name, reason): ...
    def message(self, text): ...


# ---------------------------------------------------------------------------------- a running scheduler


KILL = """
version: 1
name: kill
stages:
  base: {type: toy_number, value: 2}
  slow: {type: toy_scale, model: base, factor: 10, sleep: 3}
  fast: {type: toy_scale, model: base, factor: 3}
  total: {type: toy_sum, inputs: [slow, fast]}
"""


def test_worker_killed_mid_stage_is_retried_and_the_cache_verifies(tmp_path: Path, s3_url: str, cluster,
                                                                   cluster_log: Path) -> None:
    address, client, _log = cluster
    pipeline = write(tmp_path / "kill.yaml", KILL)
    proc = spawn_cli("run", pipeline, "--cache", s3_url, "--executor", "dask", "--scheduler", address)

    deadline = time.monotonic() + 120
    while not any(line.startswith("slow ") for line in cluster_log.read_text().splitlines()):
        assert proc.poll() is None and time.monotonic() < deadline, "the slow stage never started"
        time.sleep(0.05)
    victim = int(next(line for line in cluster_log.read_text().splitlines() if line.startswith("slow ")).split()[1])
    worker_pids = client.run(os.getpid)                               # the scheduler's view of its workers
    assert victim in worker_pids.values()
    os.kill(victim, signal.SIGKILL)

    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    slow_runs = [int(line.split()[1]) for line in cluster_log.read_text().splitlines() if line.startswith("slow ")]
    assert len(slow_runs) == 2 and slow_runs[0] == victim and slow_runs[1] != victim
    assert sorted(runs(cluster_log)) == ["base", "fast", "slow", "slow", "total"]
    assert f"left by process {victim}" in out and "(dead)" in out     # the retry took over the lock

    verify = cli("cache", "verify", "--cache", s3_url)
    assert verify.code == 0 and "0 damaged" in verify.out, verify.text
    keys = plan_keys(pipeline, s3_url)
    cache = RemoteCache(s3_url, local_dir=tmp_path / "check")
    assert json.loads(cache.read_entry(keys["slow"]["key"]).file("value.json").read_text()) == 20.0
    assert json.loads(cache.read_entry(keys["total"]["key"]).file("value.json").read_text()) == 26.0
    prefix = cache._key_prefix(keys["slow"]["key"])
    assert len({name.split("/")[0] for name in cache.store.list_files(prefix) if "/" in name}) == 1


FAILING = """
version: 1
name: failing
stages:
  note: {type: toy_log, message: progress from far away}
  bad:  {type: toy_number, value: 1, fail: true}
  after: {type: toy_scale, model: bad}
"""


def test_failures_and_log_lines_of_remote_stages_reach_the_terminal(tmp_path: Path, s3_url: str, cluster,
                                                                    cluster_log: Path) -> None:
    address, _client, _log = cluster
    pipeline = write(tmp_path / "failing.yaml", FAILING)
    result = cli("run", pipeline, "--cache", s3_url, "--executor", "dask", "--scheduler", address,
                 "--keep-going", "--verbose")
    assert result.code == 1, result.text
    assert "[note] progress from far away (pid" in result.out
    assert "bad: FAILED" in result.out and "RuntimeError: bad failed on purpose" in result.out
    assert "Traceback" in result.out                                 # --verbose shows the worker's traceback
    assert "after: not run (an input failed)" in result.out
    assert f"compressflow run {pipeline}" in result.err               # how to resume
    assert sorted(runs(cluster_log)) == ["bad", "note"]


RESOURCES = """
version: 1
name: resources
stages:
  base: {type: toy_number, value: 1, resources: {CPU: 1}}
  big:  {type: toy_scale, model: base, resources: {GPU: 1}}
"""


def test_stage_resources_map_to_worker_resources_without_changing_keys(tmp_path: Path, s3_url: str, cluster,
                                                                      cluster_log: Path) -> None:
    address, _client, _log = cluster
    pipeline = write(tmp_path / "resources.yaml", RESOURCES)
    refused = cli("run", pipeline, "--cache", s3_url, "--executor", "dask", "--scheduler", address)
    assert refused.code == 2, refused.text
    assert "stage 'big' needs worker resources GPU=1" in refused.err and "workers offer: CPU=1" in refused.err
    assert "Traceback" not in refused.text
    assert runs(cluster_log) == []

    ok = cli("run", pipeline, "--cache", s3_url, "--executor", "dask", "--scheduler", address, "--until", "base")
    assert ok.code == 0, ok.text
    assert runs(cluster_log) == ["base"]
    plain = write(tmp_path / "plain.yaml", RESOURCES.replace(", resources: {CPU: 1}", "")
                  .replace(", resources: {GPU: 1}", ""))
    assert plan_keys(plain, s3_url)["big"]["key"] == plan_keys(pipeline, s3_url)["big"]["key"]


def test_python_api_runs_on_a_dask_cluster(tmp_path: Path, s3_url: str, cluster, cluster_log: Path) -> None:
    address, _client, _log = cluster
    pipeline = write(tmp_path / "kill.yaml", KILL.replace("sleep: 3", "sleep: 0"))
    report = compressflow.api.run(pipeline, cache_dir=s3_url, executor="dask", scheduler=address, reporter=Quiet())
    assert report.ok and report.count("ran") == 4
    assert sorted(runs(cluster_log)) == ["base", "fast", "slow", "total"]


def test_dask_workers_reach_the_store_through_the_runs_storage_options_alone(tmp_path: Path, s3_url: str,
                                                                             s3_endpoint: str, monkeypatch) -> None:
    from compressflow.cache.open import open_cache_at
    from compressflow.executor.dask_runner import DaskRunner
    from compressflow.executor.plan import make_plan
    from compressflow.executor.scheduler import run_plan

    # NOTE: the cluster's workers start without the endpoint: only this run's storage options know it.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("TOY_RUN_LOG", str(tmp_path / "runs.log"))
    monkeypatch.setenv("COMPRESSFLOW_PLUGINS", PLUGINS)
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    pipeline = compressflow.api.load(write(tmp_path / "kill.yaml", KILL.replace("sleep: 3", "sleep: 0")))
    cache = open_cache_at(s3_url, storage_options=options)
    plan = make_plan(pipeline, cache, verify=True)
    with DaskRunner(workers=1) as runner:
        report = run_plan(plan, cache, runner, Quiet(), verify=True)
    assert report.ok, {name: outcome.error for name, outcome in report.outcomes.items()}
    assert sorted(runs(tmp_path / "runs.log")) == ["base", "fast", "slow", "total"]
    elsewhere = RemoteCache(s3_url, local_dir=tmp_path / "check", storage_options=options)
    assert {elsewhere.status(item.key.key) for item in plan.stages.values()} == {"hit"}


# ---------------------------------------------------------------------------------- usage errors


def run_main(capsys, *argv: str) -> tuple[int, str]:
    """``compressflow ARGV`` in this process: exit status and what it printed to stderr."""
    from compressflow.cli.parser import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_a_local_cache_folder_is_refused_for_a_remote_scheduler(tmp_path: Path, capsys) -> None:
    pipeline = write(tmp_path / "kill.yaml", KILL)
    code, err = run_main(capsys, "run", pipeline, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert code == 2
    assert "which the workers of the Dask cluster at tcp://127.0.0.1:9 cannot reach" in err
    assert "--cache s3://" in err


def test_dask_executor_without_dask_installed_says_how_to_install_it(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an install without the extra looks like
    pipeline = write(tmp_path / "kill.yaml", KILL)
    code, err = run_main(capsys, "run", pipeline, "--executor", "dask", "--workers", "1")
    assert code == 2
    assert "pip install 'compressflow[dask]'" in err


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers applies to --executor dask"),
    (["--executor", "dask", "--jobs", "2"], "use --workers N"),
    (["--executor", "dask", "--worker-resources", "GPU"], "bad worker resource 'GPU'"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], "cannot be combined"),
])
def test_executor_option_mistakes_are_usage_errors(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    pipeline = write(tmp_path / "kill.yaml", KILL)
    code, err = run_main(capsys, "run", pipeline, "--cache", tmp_path / "cache", *args)
    assert code == 2 and message in err, err
