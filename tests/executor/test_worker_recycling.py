"""A worker that holds more than ``--max-worker-memory`` after a stage is replaced, and nothing else changes.

Four TensorFlow stages run with ``--jobs 1`` (in the run's one worker process) twice: with a
limit below any TensorFlow process (1 MB), so every stage gets a fresh worker, and with the
default policy, which keeps the worker of the first stage for the next (its growth is measured
from there). Which process ran each stage is in the stage's events (``worker`` events); both runs
must give the same keys and write the same bytes.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

STAGES = ["base", "trained", "pruned", "float"]

MODELS = '''
import tf_keras


def net():
    """A small classifier of flat digits."""
    return tf_keras.Sequential([tf_keras.Input((64,)), tf_keras.layers.Dense(16, activation="relu"),
                                tf_keras.layers.Dense(10, activation="softmax")])
'''

PIPELINE = """\
version: 1
name: recycled
seed: 0
datasets:
  digits: {type: sklearn_digits, layout: flat, limit: 200}
stages:
  base: {type: load, builder: 'models:net'}
  trained: {type: fine_tune, model: base, data: digits, epochs: 1}
  pruned:
    type: prune
    model: trained
    data: digits
    epochs: 1
    schedule: {type: constant, target_sparsity: 0.5}
  float: {type: quantize, model: pruned, method: float32}
"""


def latest_record(folder: Path) -> dict:
    records = sorted((folder / ".compressflow" / "runs").glob("*/run.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(records[-1].read_text())


def worker_events(record: dict) -> dict[str, dict]:
    """The ``worker`` event of each stage of the run (which process ran it, what it kept)."""
    found = {}
    for name, stage in record["stages"].items():
        events = [json.loads(line) for line in Path(stage["events"]).read_text().splitlines()]
        [found[name]] = [event for event in events if event.get("event") == "worker"]
    return found


def entry_files(cache: Path, key: str) -> dict[str, bytes]:
    """The bytes of an entry's files (of a model file's members), without what records when it was written."""
    entry = cache / "entries" / key[:2] / key
    files = {}
    for path in sorted(entry.rglob("*")):
        name = str(path.relative_to(entry))
        if not path.is_file() or name == "manifest.json":  # NOTE: its file hashes are what the others give
            continue
        if zipfile.is_zipfile(path):  # a .keras file: its members hold the model, the zip dates the save
            with zipfile.ZipFile(path) as archive:
                files.update({f"{name}/{member}": archive.read(member) for member in archive.namelist()
                              if member != "metadata.json"})  # NOTE: metadata.json holds date_saved
        else:
            files[name] = path.read_bytes()
    return files


def test_a_worker_over_the_limit_is_replaced_and_the_run_gives_the_same_entries(tmp_path: Path):
    write(tmp_path / "models.py", MODELS)
    pipeline = write(tmp_path / "pipeline.yaml", PIPELINE)

    low = cli("run", pipeline, "--cache", tmp_path / "cache-low", "--max-worker-memory", "1M", "--quiet",
              cwd=tmp_path, timeout=900)
    assert low.code == 0, low.text
    recycled = latest_record(tmp_path)
    default = cli("run", pipeline, "--cache", tmp_path / "cache-default", "--quiet", cwd=tmp_path, timeout=900)
    assert default.code == 0, default.text
    kept = latest_record(tmp_path)

    low_workers = worker_events(recycled)
    assert sorted(low_workers) == sorted(STAGES)
    assert len({event["pid"] for event in low_workers.values()}) == len(STAGES), low_workers
    assert all(event["retired"] and event["rss_mb"] > 1 for event in low_workers.values()), low_workers
    default_workers = worker_events(kept)
    # NOTE: the default policy measures growth from the first stage, so that stage's worker runs the next
    assert len({event["pid"] for event in default_workers.values()}) < len(STAGES), default_workers
    assert not default_workers["base"]["retired"]

    for name in STAGES:
        key = recycled["stages"][name]["key"]
        assert kept["stages"][name]["key"] == key, name
        assert recycled["stages"][name]["status"] == "ran", name
        assert entry_files(tmp_path / "cache-low", key) == entry_files(tmp_path / "cache-default", key), name


def test_a_size_that_is_not_one_is_a_usage_error(tmp_path: Path):
    pipeline = write(tmp_path / "pipeline.yaml", PIPELINE)
    write(tmp_path / "models.py", MODELS)

    result = cli("run", pipeline, "--max-worker-memory", "lots", "--no-check", cwd=tmp_path)

    assert result.code == 2, result.text
    assert "--max-worker-memory 'lots'" in result.err and "Traceback" not in result.text
