"""A dataset's ``preprocess:`` (every split) and ``augment:`` (training only): what a model sees, keys, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from compressflow.data.datasets import SklearnDigits
from compressflow.data.preprocessing import FunctionStep
from compressflow.stages.base import Environment

from helpers import cli, write

STEPS = '''
def negate(x, y):
    return -x, y


def shift(x, y, by=0.0):
    return x + by, y


def zero(x, y):
    return x * 0.0, y
'''

STREAMS = '''
def splits():
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.images[..., None].astype("float32") / 16, digits.target.astype("int64")
    return {"train": tf.data.Dataset.from_tensor_slices((x[:1400], y[:1400])).batch(64),
            "validation": tf.data.Dataset.from_tensor_slices((x[1400:], y[1400:]))}
'''

COUNT_PLUGIN = '''
from typing import ClassVar, Literal

from compressflow.stages.base import DatasetName, Stage
from compressflow.stages.registry import register_stage


@register_stage
class Count(Stage):
    """How many samples a dataset has (read without TensorFlow)."""

    produces: ClassVar[str] = "number"
    type: Literal["pp_count"] = "pp_count"
    data: DatasetName

    def run(self, ctx):
        x, _ = ctx.dataset(self.data).load_arrays(ctx.env)
        ctx.write_json("value.json", len(x))
        ctx.set_output("number", "value.json")
'''


def _project(tmp_path: Path, datasets: str, stages: str) -> Path:
    write(tmp_path / "steps.py", STEPS)
    write(tmp_path / "digits_stream.py", STREAMS)
    return write(tmp_path / "p.yaml", f"version: 1\nname: pp\nseed: 0\ndatasets:\n{datasets}\nstages:\n{stages}\n")


# --------------------------------------------------------------------------- config, keys, errors (no TensorFlow)


def test_a_dataset_without_them_dumps_and_fingerprints_as_before(tmp_path):
    digits = SklearnDigits()
    assert digits.model_dump(mode="json") == {"type": "sklearn_digits", "validation_fraction": 0.2, "task": None,
                                              "layout": "image", "scale": 1 / 16, "shuffle": True, "limit": None}
    env = Environment(pipeline_dir=tmp_path)
    assert digits.key_fingerprint(env) == digits.fingerprint(env)


def test_both_forms_of_a_function_validate_to_one_step():
    short = SklearnDigits(preprocess="steps:negate", augment="steps:zero")
    assert short.preprocess == FunctionStep(function="steps:negate")
    assert short.augment == FunctionStep(function="steps:zero")
    full = SklearnDigits(preprocess={"function": "steps:shift", "args": {"by": 2}, "batched": True})
    assert full.preprocess.batched and full.preprocess.args == {"by": 2}
    assert full.model_dump(mode="json")["preprocess"] == {"function": "steps:shift", "args": {"by": 2},
                                                          "batched": True}
    layers = SklearnDigits(augment=[{"random_flip": "horizontal"}, {"random_translation": [0.1, 0.1]}])
    assert layers.augment == [{"random_flip": "horizontal"}, {"random_translation": [0.1, 0.1]}]


def test_the_module_source_is_in_the_key_of_the_stages_reading_the_dataset_only(tmp_path):
    write(tmp_path / "plugins" / "pp_count_plugin.py", COUNT_PLUGIN)
    env = {"COMPRESSFLOW_PLUGINS": "toy_stages,pp_count_plugin",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), os.environ["PYTHONPATH"]]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    pipeline = _project(tmp_path, "  plain: {type: sklearn_digits}\n"
                                  "  negated: {type: sklearn_digits, preprocess: steps:negate}\n"
                                  "  flipped: {type: sklearn_digits, augment: {function: steps:zero}}",
                        "  plain_count: {type: pp_count, data: plain}\n"
                        "  negated_count: {type: pp_count, data: negated}\n"
                        "  flipped_count: {type: pp_count, data: flipped}\n"
                        "  other: {type: toy_number, value: 4}")
    first = cli("run", pipeline, env=env, fresh=True)
    assert first.code == 0, first.text

    steps = tmp_path / "steps.py"
    steps.write_text(steps.read_text().replace("return -x, y", "return -2.0 * x, y"))
    result = cli("plan", pipeline, "--json", env=env, fresh=True)
    assert result.code == 0, result.text
    plan = json.loads(result.out)
    assert {name: item["action"] for name, item in plan.items()} == {
        "plain_count": "cached", "negated_count": "run", "flipped_count": "run", "other": "cached"}
    assert plan["negated_count"]["reasons"] == ["data changed: data (fingerprint: preprocess)"]
    assert plan["flipped_count"]["reasons"] == ["data changed: data (fingerprint: augment)"]

    text = cli("plan", pipeline, env=env, fresh=True)
    assert "data changed: data (fingerprint: preprocess)" in text.out, text.text


@pytest.mark.parametrize(("entry", "message"), [
    ("augment: [{random_flip: horizontal}, {random_rotaton: 0.1}]",
     "unknown augment layer 'random_rotaton'; did you mean 'random_rotation'?"),
    ("augment: [{random_zoom: {hieght_factor: 0.1}}]",
     "augment layer 'random_zoom' takes no argument 'hieght_factor'; did you mean 'height_factor'?"),
    ("augment: [{random_rotation: {factor: 0.1, seed: 3}}]", "the seed comes from the stage's"),
    ("augment: [{random_flip: sideways}]", "random_flip mode 'sideways' is not one of"),
    ("preprocess: [{random_flip: horizontal}]", "give `module:function` or {function: module:function"),
    ("preprocess: stepz:negate", "preprocess function 'stepz:negate': no module 'stepz'"),
    ("preprocess: {function: steps:negat}", "preprocess function 'steps:negat': module 'steps'"),
    ("augment: steps:zer0", "augment function 'steps:zer0': module 'steps'"),
])
def test_a_misspelled_layer_or_missing_function_is_a_located_error(tmp_path, entry, message):
    pipeline = _project(tmp_path, f"  digits:\n    type: sklearn_digits\n    {entry}",
                        "  base: {type: load, builder: compressflow.models:small_cnn}\n"
                        "  trained: {type: fine_tune, model: base, data: digits, epochs: 1}")
    result = cli("validate", pipeline)
    assert result.code == 2, result.text
    assert message in result.err
    assert f"{pipeline}:7:" in result.err  # the line of the entry at fault
    assert "Traceback" not in result.text


def test_a_close_function_name_gets_a_did_you_mean(tmp_path):
    pipeline = _project(tmp_path, "  digits: {type: sklearn_digits, preprocess: steps:negat}",
                        "  base: {type: load, builder: compressflow.models:small_cnn}\n"
                        "  trained: {type: fine_tune, model: base, data: digits, epochs: 1}")
    result = cli("validate", pipeline)
    assert result.code == 2 and "did you mean 'negate'?" in result.err, result.text


# --------------------------------------------------------------------------- what a model sees (TensorFlow)


def _load(tmp_path: Path, **fields):
    from compressflow.data.datasets import PythonDataset, load_splits

    kind = fields.pop("kind", "digits")
    dataset = (PythonDataset(function="digits_stream:splits", **fields) if kind == "stream"
               else SklearnDigits(**fields))
    return load_splits(dataset, Environment(pipeline_dir=tmp_path, datasets={"d": dataset}), "d")


@pytest.fixture
def beside(tmp_path, monkeypatch):
    """The test's folder holds the modules and is on the import path, as a pipeline's folder is for a stage."""
    import sys

    write(tmp_path / "steps.py", STEPS)
    write(tmp_path / "digits_stream.py", STREAMS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("steps", "digits_stream"):
        sys.modules.pop(name, None)


def _inputs(batches):
    import numpy as np

    return np.concatenate([np.asarray(x) for x, _ in batches])


@pytest.mark.tf
def test_preprocess_goes_over_every_split_of_an_array_dataset(beside):
    import numpy as np

    plain = _load(beside)
    negated = _load(beside, preprocess="steps:negate")
    assert plain.x_train.max() > 0
    np.testing.assert_allclose(negated.x_train, -plain.x_train)
    np.testing.assert_allclose(negated.x_val, -plain.x_val)
    np.testing.assert_array_equal(negated.y_train, plain.y_train)
    shifted = _load(beside, preprocess={"function": "steps:shift", "args": {"by": 2.0}, "batched": True})
    np.testing.assert_allclose(shifted.x_val, plain.x_val + 2.0)
    assert shifted.x_train.dtype == np.float32


@pytest.mark.tf
def test_preprocess_goes_over_every_split_of_a_stream(beside):
    import numpy as np

    plain = _load(beside, kind="stream")
    negated = _load(beside, kind="stream", preprocess="steps:negate")
    assert negated.streaming
    np.testing.assert_allclose(negated.calibration_samples(50), -plain.calibration_samples(50))
    np.testing.assert_allclose(negated.validation_samples(50), -plain.validation_samples(50))
    np.testing.assert_allclose(_inputs(negated.split_stream("train")), -_inputs(plain.split_stream("train")))
    shifted = _load(beside, kind="stream", preprocess={"function": "steps:shift", "args": {"by": 1.0},
                                                         "batched": True})
    np.testing.assert_allclose(shifted.validation_samples(50), plain.validation_samples(50) + 1.0)
    assert shifted.count("validation") == plain.count("validation")


@pytest.mark.tf
def test_augment_reaches_the_training_batches_only(beside):
    import numpy as np

    plain = _load(beside)
    zeroed = _load(beside, augment="steps:zero")
    np.testing.assert_array_equal(zeroed.x_train, plain.x_train)  # what evaluate and calibration read
    np.testing.assert_array_equal(zeroed.x_val, plain.x_val)
    assert not _inputs(zeroed.training_batches(64, seed=1)).any()
    assert _inputs(plain.training_batches(64, seed=1)).any()

    stream = _load(beside, kind="stream", augment={"function": "steps:zero", "batched": True})
    assert not _inputs(stream.train_stream(64, augment_seed=1)).any()
    assert _inputs(stream.split_stream("train")).any()
    assert stream.validation_samples(20).any() and stream.calibration_samples(20).any()


@pytest.mark.tf
def test_a_function_or_layer_that_cannot_work_fails_saying_which_and_why(beside):
    from compressflow.errors import StageFailed

    write(beside / "bad_steps.py", "def inputs_only(x, y):\n    return x\n")
    with pytest.raises(StageFailed, match="preprocess function bad_steps:inputs_only returned a .*; it must return"):
        _load(beside, preprocess="bad_steps:inputs_only")
    flat = _load(beside, layout="flat", augment=[{"random_flip": "horizontal"}])
    with pytest.raises(StageFailed, match=r"layer 'random_flip' works on images .* shape \(64,\)"):
        flat.training_batches(32, seed=0)
    noisy = _load(beside, layout="flat", augment=[{"gaussian_noise": 0.1}])
    assert _inputs(noisy.training_batches(32, seed=0)).shape == noisy.x_train.shape


@pytest.mark.tf
def test_built_in_layers_are_seeded(beside):
    import numpy as np

    layers = [{"random_flip": "horizontal"}, {"random_rotation": 0.1}, {"random_translation": [0.1, 0.1]},
              {"random_zoom": {"height_factor": 0.1}}, {"random_contrast": 0.2}, {"gaussian_noise": 0.05}]
    plain = _load(beside)
    augmented = _load(beside, augment=layers)
    first = _inputs(augmented.training_batches(128, seed=7))
    assert np.array_equal(first, _inputs(augmented.training_batches(128, seed=7)))  # layers built anew
    assert not np.array_equal(first, _inputs(augmented.training_batches(128, seed=8)))
    unaugmented = _inputs(plain.training_batches(128, seed=7))
    assert first.shape == unaugmented.shape and not np.allclose(first, unaugmented)


@pytest.mark.tf
def test_every_built_in_layer_is_a_tf_keras_layer_taking_its_arguments_and_a_seed():
    import inspect

    from compressflow.data.preprocessing import LAYERS
    from compressflow.stages.tfutil import keras

    for name, layer in LAYERS.items():
        parameters = inspect.signature(getattr(keras().layers, layer.cls).__init__).parameters
        assert set(layer.arguments) | {"seed"} <= set(parameters), name


PIPELINE_DATASETS = """\
  digits: {type: sklearn_digits}
  zeroed: {type: sklearn_digits, augment: steps:zero}
  negated: {type: sklearn_digits, preprocess: steps:negate}
  flipped: {type: sklearn_digits, augment: [{random_translation: [0.1, 0.1]}]}
  stream: {type: python, function: digits_stream:splits, preprocess: steps:negate,
           augment: [{random_rotation: 0.05}]}"""

PIPELINE_STAGES = """\
  base: {type: load, builder: compressflow.models:small_cnn}
  trained: {type: fine_tune, model: base, data: digits, epochs: 4}
  blind: {type: fine_tune, model: base, data: zeroed, epochs: 4}
  shifted: {type: fine_tune, model: base, data: flipped, epochs: 4}
  streamed: {type: fine_tune, model: base, data: stream, epochs: 2}
  check: {type: evaluate, models: [trained, blind, shifted], data: digits}
  check_zeroed: {type: evaluate, models: [trained], data: zeroed}
  check_negated: {type: evaluate, models: [trained], data: negated}
  check_stream: {type: evaluate, models: [streamed], data: stream}"""


@pytest.mark.tf
@pytest.mark.slow
def test_a_pipeline_trains_on_augmented_batches_and_evaluates_on_plain_ones(tmp_path):
    pipeline = _project(tmp_path, PIPELINE_DATASETS, PIPELINE_STAGES)
    result = cli("run", pipeline, timeout=900)
    assert result.code == 0, result.text
    plan = json.loads(cli("plan", pipeline, "--json").out)

    def accuracy(stage: str, model: str) -> float:
        key = plan[stage]["key"]
        metrics = json.loads((tmp_path / ".compressflow/cache/entries" / key[:2] / key / "metrics.json").read_text())
        return metrics["models"][model]["accuracy"]

    assert accuracy("check", "trained") > 0.8
    assert accuracy("check", "blind") < 0.3  # it only ever saw zeros: augment ran on its training batches
    assert accuracy("check", "shifted") > 0.5
    # NOTE: augment never reaches evaluation; preprocess does
    assert accuracy("check_zeroed", "trained") == accuracy("check", "trained")
    assert accuracy("check_negated", "trained") < accuracy("check", "trained") - 0.3
    assert accuracy("check_stream", "streamed") > 0.5



@pytest.mark.tf
def test_the_docs_example_validates_loads_and_augments(beside):
    import re

    import numpy as np
    import yaml

    from compressflow.data.datasets import load_splits
    from compressflow.dsl.schema import pipeline_model

    doc = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text()
    section = doc.split("## Preprocessing and augmentation")[1].split("\n## ")[0]
    (python,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    (snippet,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    common = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)[0])
    write(beside / "steps.py", python)
    document = {**common, "datasets": yaml.safe_load(snippet)["datasets"]}
    pipeline = write(beside / "p.yaml", yaml.safe_dump(document, sort_keys=False))
    result = cli("validate", pipeline)
    assert result.code == 0, result.text

    datasets = pipeline_model().model_validate(document).datasets
    splits = load_splits(datasets["digits"], Environment(pipeline_dir=beside, datasets=dict(datasets)), "digits")
    plain = load_splits(SklearnDigits(), Environment(pipeline_dir=beside), "digits")
    np.testing.assert_allclose(splits.x_val, plain.x_val - 0.5)
    batches = _inputs(splits.training_batches(64, seed=0))
    assert batches.shape == splits.x_train.shape and not np.allclose(np.sort(batches, axis=None),
                                                                     np.sort(splits.x_train, axis=None))


RERUN_STAGES = """\
  base: {type: load, builder: compressflow.models:small_cnn}
  plain: {type: fine_tune, model: base, data: digits, epochs: 2}
  shifted: {type: fine_tune, model: base, data: flipped, epochs: 2}"""


@pytest.mark.tf
@pytest.mark.slow
def test_a_rerun_trains_on_the_same_augmented_batches(tmp_path):
    histories = []
    for name in ("first", "second"):  # NOTE: two caches, so the second run trains again in a process of its own
        pipeline = _project(tmp_path / name, PIPELINE_DATASETS, RERUN_STAGES)
        result = cli("run", pipeline, timeout=900)
        assert result.code == 0, result.text
        plan = json.loads(cli("plan", pipeline, "--json").out)
        histories.append({stage: json.loads((tmp_path / name / ".compressflow/cache/entries" / key[:2] / key
                                             / "metrics.json").read_text())["history"]
                          for stage, key in ((s, plan[s]["key"]) for s in ("plain", "shifted"))})
    first, second = histories
    assert first["shifted"] == second["shifted"]
    assert first["shifted"]["loss"] != first["plain"]["loss"]
