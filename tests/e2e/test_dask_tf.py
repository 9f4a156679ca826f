"""A small real TensorFlow sweep on a local Dask cluster, cache on an S3 server: same keys and TFLite bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli, write

import compressflow.api
from compressflow.cache.local import Cache
from compressflow.cache.remote import RemoteCache
from compressflow.stages.base import Artifact

pytestmark = pytest.mark.tf

SWEEP = """
version: 1
name: tfsweep
seed: 5
datasets:
  digits: {type: sklearn_digits, limit: 400}
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {filters: [4, 8], dense: 16}
  trained: {type: fine_tune, model: base, data: digits, epochs: 1}
  f32: {type: quantize, model: trained, method: float32}
  dyn: {type: quantize, model: trained, method: dynamic}
  f16: {type: quantize, model: trained, method: float16}
"""
VARIANTS = ("f32", "dyn", "f16")


def tflite_bytes(cache, key: str) -> bytes:
    """The bytes of the TFLite model a quantize stage stored under ``key``."""
    entry = cache.read_entry(key)
    return Artifact.read("variant", key, entry.path).file().read_bytes()


def test_tensorflow_sweep_on_dask_and_s3_equals_a_local_run(tmp_path: Path, s3_url: str) -> None:
    pipeline = write(tmp_path / "sweep.yaml", SWEEP)
    local = cli("run", pipeline, "--cache", tmp_path / "local-cache")
    assert local.code == 0, local.text
    remote = cli("run", pipeline, "--cache", s3_url, "--executor", "dask", "--workers", "2")
    assert remote.code == 0, remote.text
    assert "5 ran" in remote.out

    local_plan = compressflow.api.plan(pipeline, cache_dir=tmp_path / "local-cache")
    remote_plan = compressflow.api.plan(pipeline, cache_dir=s3_url)
    assert {n: s.key.key for n, s in remote_plan.stages.items()} == {n: s.key.key for n, s in local_plan.stages.items()}
    assert all(s.action == "cached" for s in remote_plan.stages.values())
    local_cache, remote_cache = Cache(tmp_path / "local-cache"), RemoteCache(s3_url, local_dir=tmp_path / "copy")
    for name in VARIANTS:
        key = local_plan.stages[name].key.key
        assert tflite_bytes(remote_cache, key) == tflite_bytes(local_cache, key), name
