"""A process that runs one TensorFlow stage after another keeps no Keras state from the earlier ones.

The pipeline has three load stages of a builder beside it, each followed by a fine_tune stage, run
with ``--jobs 1`` (in one worker process, which is not replaced for such small stages) and with two
``--jobs`` workers (so each process runs several stages). Every time the builder is called it
records, in a file, what the process still holds of earlier stages: tf-keras' counter of auto-
generated names, the names its unnamed layers get, and the tf-keras models that are still in memory
(alive or awaiting collection). In a fresh process that is: counter 1, names ``dense``/``dense_1``,
no model; after a stage that left its state behind, the counter and names go up and the earlier
stages' models are still there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cli, write

pytestmark = pytest.mark.tf

CHAINS = 3

PROBE_MODELS = '''
import gc
import json

import tf_keras


def net(probe, tag=0):
    """A small classifier of flat digits; first records what this process holds of earlier stages."""
    held = sum(1 for item in gc.get_objects() if isinstance(item, tf_keras.Model))
    counter = tf_keras.backend.get_uid("probe")
    model = tf_keras.Sequential([tf_keras.Input((64,)), tf_keras.layers.Dense(16, activation="relu"),
                                 tf_keras.layers.Dense(10, activation="softmax")])
    with open(probe, "a") as fh:
        fh.write(json.dumps({"tag": tag, "counter": counter, "models_held": held,
                             "names": [layer.name for layer in model.layers]}) + "\\n")
    return model
'''


def pipeline_text(probe: Path) -> str:
    stages = []
    for i in range(CHAINS):
        stages.append(f"  base{i}: {{type: load, builder: 'probe_models:net', args: {{probe: '{probe}', tag: {i}}}}}")
        stages.append(f"  trained{i}: {{type: fine_tune, model: base{i}, data: digits, epochs: 1}}")
    return ("version: 1\nname: memory\nseed: 0\n"
            "datasets:\n  digits: {type: sklearn_digits, layout: flat, limit: 200}\n"
            "stages:\n" + "\n".join(stages) + "\n")


@pytest.mark.parametrize("jobs", ["1", pytest.param("2", marks=pytest.mark.slow)])
def test_each_stage_starts_without_the_keras_state_of_the_stages_before(tmp_path: Path, jobs: str):
    probe = tmp_path / "probe.jsonl"
    write(tmp_path / "probe_models.py", PROBE_MODELS)
    pipeline = write(tmp_path / "pipeline.yaml", pipeline_text(probe))

    result = cli("run", pipeline, "--jobs", jobs, "--quiet", cwd=tmp_path, timeout=1200)

    assert result.code == 0, result.text
    # NOTE: the check before the run builds the models too, in the run's process; the stages come after it.
    records = [json.loads(line) for line in probe.read_text().splitlines()][-CHAINS:]
    assert sorted(r["tag"] for r in records) == list(range(CHAINS))
    for record in records:
        assert record["counter"] == 1, record
        assert record["names"] == ["dense", "dense_1"], record
        assert record["models_held"] == 0, record
