"""Losses, metrics, tasks and metric gates: names checked without TensorFlow, in sync with tf-keras."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli, write
from pydantic import ValidationError

from compressflow.stages import keras_names
from compressflow.stages.evaluate import Requirements
from compressflow.stages.fine_tune import FineTuneStage
from compressflow.stages.gates import MetricBound, bound_problems, unmet_requirements
from compressflow.stages.losses import check_loss, check_metric, metric_key
from compressflow.stages.prediction_metrics import multilabel_metrics, regression_metrics
from compressflow.stages.select import SelectStage
from compressflow.stages.tasks import CLASSIFICATION, MULTILABEL, REGRESSION, infer_task, metric_name

# --------------------------------------------------------------------------- the tables against tf-keras


def _public(module, kind) -> set[str]:
    return {name for name in dir(module) if not name.startswith("_") and kind(getattr(module, name))}


@pytest.mark.tf
def test_every_loss_spelling_resolves_in_tf_keras_to_its_class():
    from compressflow.stages.tfutil import keras

    k = keras()
    for cls, spellings in keras_names.LOSSES.items():
        loss_class = getattr(k.losses, cls)
        for spelling in (cls, *spellings):
            resolved = k.losses.get(spelling)
            same = isinstance(resolved, loss_class) or resolved is loss_class().fn
            assert same, f"tf-keras resolves loss {spelling!r} to {resolved!r}, not {cls}"


@pytest.mark.tf
def test_every_public_tf_keras_loss_is_in_the_table():
    from compressflow.stages.tfutil import keras

    k = keras()
    classes = _public(k.losses, inspect.isclass) - {"Loss", "Reduction"}
    functions = _public(k.losses, inspect.isfunction) - {"get", "serialize", "deserialize"}
    assert classes == set(keras_names.LOSSES)
    assert functions <= {spelling for spellings in keras_names.LOSSES.values() for spelling in spellings}


@pytest.mark.tf
def test_every_metric_spelling_resolves_in_tf_keras_to_its_class():
    from compressflow.stages.tfutil import keras

    k = keras()
    rng = np.random.default_rng(0)
    scores = rng.dirichlet(np.ones(6), size=8).astype("float32")
    classes = rng.integers(0, 6, size=8)
    one_hot = np.eye(6, dtype="float32")[classes]
    for entry in keras_names.METRICS.values():
        metric_class = getattr(k.metrics, entry.cls)
        for spelling in entry.names:
            if entry.required:  # tf-keras' get() instantiates the class, which needs the arguments
                assert getattr(k.metrics, spelling) is metric_class
                continue
            resolved = k.metrics.get(spelling)
            if isinstance(resolved, str):  # NOTE: get() leaves some of tf-keras' own function names unresolved
                resolved = getattr(k.metrics, spelling)
            if inspect.isfunction(resolved):  # a function: the class must average the same values
                labels = classes if spelling.startswith("sparse") else one_hot
                metric = metric_class()
                metric.update_state(labels, scores)
                expected = float(np.mean(resolved(labels, scores)))
                assert float(metric.result()) == pytest.approx(expected, rel=1e-5), f"{spelling!r}: {entry.cls}"
            else:
                assert isinstance(resolved, metric_class), f"tf-keras resolves metric {spelling!r} to {resolved!r}"
    for spelling in keras_names.ACCURACY_SPELLINGS:
        assert k.metrics.get(spelling) is not None


@pytest.mark.tf
def test_every_public_tf_keras_metric_is_in_the_table_with_its_required_arguments():
    from compressflow.stages.tfutil import keras

    k = keras()
    classes = _public(k.metrics, inspect.isclass) - keras_names.NOT_NAMEABLE_METRICS - {"Accuracy"}
    assert classes == set(keras_names.METRICS)
    spelled = {spelling for entry in keras_names.METRICS.values() for spelling in entry.names}
    functions = _public(k.metrics, inspect.isfunction) - {"get", "serialize", "deserialize", "accuracy"}
    assert functions - spelled == keras_names.FUNCTION_ONLY_METRICS
    for entry in keras_names.METRICS.values():
        parameters = inspect.signature(getattr(k.metrics, entry.cls).__init__).parameters.values()
        required = {p.name for p in parameters if p.default is inspect.Parameter.empty
                    and p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        assert required == set(entry.required), entry.cls


def test_report_names_are_unique():
    keys = [entry.key for entry in keras_names.METRICS.values()]
    assert len(keys) == len(set(keys))


# --------------------------------------------------------------------------- checking names (no TensorFlow)


@pytest.mark.parametrize("spelling", ["mse", "MSE", "mean_squared_error", "MeanSquaredError"])
def test_every_spelling_of_a_loss_is_accepted(spelling):
    assert keras_names.loss_class(spelling) == "MeanSquaredError"
    assert FineTuneStage(model="m", data="d", loss=spelling).loss == spelling


def test_a_misspelt_loss_says_what_it_is_close_to():
    with pytest.raises(ValidationError) as caught:
        FineTuneStage(model="m", data="d", loss="mean_sqared_error")
    assert "did you mean 'mean_squared_error'?" in str(caught.value)


def test_metric_forms_and_the_names_they_report_under():
    assert [metric_key(check_metric(name)) for name in ("mae", "mean_absolute_error", "MeanAbsoluteError")] == [
        "mae"] * 3
    assert metric_key("acc") == "accuracy"
    assert metric_key("mymetrics:max_error") == "max_error"
    stage = FineTuneStage(model="m", data="d", loss={"name": "Huber", "delta": 2.0},
                          metrics=["mae", {"name": "MeanIoU", "num_classes": 3}])
    assert stage.key_config()["loss"] == {"name": "Huber", "delta": 2.0}


@pytest.mark.parametrize("metrics, message", [
    (["maee"], "did you mean 'mae'?"),
    (["MeanIoU"], "needs num_classes"),
    (["mae", "mean_absolute_error"], "both reported as 'mae'"),
    ([{"name": "mymetrics:max_error", "scale": 2}], "arguments (scale) go with tf-keras classes only"),
])
def test_bad_metrics_are_refused_with_the_reason(metrics, message):
    with pytest.raises(ValidationError) as caught:
        FineTuneStage(model="m", data="d", metrics=metrics)
    assert message in str(caught.value)


def test_checking_names_imports_no_tensorflow():
    code = ("import sys; from compressflow.stages.losses import check_loss, check_metric; "
            "check_loss('mse'); check_metric('RootMeanSquaredError'); "
            "import compressflow.stages.evaluate, compressflow.stages.select; "
            "print('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_check_loss_accepts_a_function_and_refuses_unknown_names():
    assert check_loss("mylosses:smape") == "mylosses:smape"
    with pytest.raises(ValueError, match="unknown loss 'hubber'"):
        check_loss("hubber")


# --------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("labels, units, task", [
    (np.array([0, 2, 1]), 3, CLASSIFICATION),
    (np.array([0.0, 2.0, 1.0]), 3, CLASSIFICATION),
    (np.array([0.0, 2.0, 1.0]), 1, REGRESSION),
    (np.array([0.5, 2.25, 1.0]), None, REGRESSION),
    (np.array([[0, 1, 0], [1, 0, 0]]), 3, CLASSIFICATION),
    (np.array([[0, 1, 1], [1, 0, 0]]), 3, MULTILABEL),
    (np.array([[0.3, 1.5], [1.0, 0.0]]), 2, REGRESSION),
])
def test_the_task_is_inferred_from_the_labels_and_the_output_width(labels, units, task):
    assert infer_task(labels, units).task == task


def test_regression_metrics_agree_with_scikit_learn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(0)
    targets = rng.normal(size=50)
    predictions = (targets + rng.normal(scale=0.3, size=50))[:, None]  # a one-unit model's (n, 1) output
    found = regression_metrics(predictions, targets)
    assert found["mae"] == pytest.approx(mean_absolute_error(targets, predictions[:, 0]))
    assert found["mse"] == pytest.approx(mean_squared_error(targets, predictions[:, 0]))
    assert found["r2"] == pytest.approx(r2_score(targets, predictions[:, 0]))


def test_multilabel_metrics_agree_with_scikit_learn():
    from sklearn.metrics import f1_score

    labels = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    scores = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3], [0.7, 0.1, 0.6], [0.2, 0.3, 0.9]])
    found = multilabel_metrics(scores, labels)
    assert found["binary_accuracy"] == pytest.approx(np.mean((scores > 0.5) == labels))
    assert found["f1"] == pytest.approx(f1_score(labels, scores > 0.5, average="micro"))


# --------------------------------------------------------------------------- gates on any metric


MODELS = {"float": {"mae": 0.40, "r2": 0.50, "gzip_bytes": 4000},
          "int8": {"mae": 0.43, "r2": 0.46, "gzip_bytes": 2000}}


def test_a_relative_rise_of_mae_within_its_bound_passes_and_beyond_it_fails():
    assert bound_problems("int8", "mae", MODELS["int8"], MetricBound(max_increase=0.1, relative=True),
                          MODELS["float"], "float") == []
    problems = bound_problems("int8", "mae", MODELS["int8"], MetricBound(max_increase=0.05, relative=True),
                              MODELS["float"], "float")
    assert problems == ["model 'int8': mae 0.43 is 7.50% above baseline 'float' (0.4); max_increase allows 5%"]


def test_drops_and_absolute_bounds():
    base = MODELS["float"]
    assert bound_problems("int8", "r2", MODELS["int8"], MetricBound(max_drop=0.05), base, "float") == []
    assert len(bound_problems("int8", "r2", MODELS["int8"], MetricBound(max_drop=0.01), base, "float")) == 1
    assert len(bound_problems("int8", "mae", MODELS["int8"], MetricBound(max=0.42, min=0.1), base, "float")) == 1
    assert bound_problems("int8", "rmse", MODELS["int8"], MetricBound(max=1), base, "float") == [
        "model 'int8': no rmse measured"]


def test_gates_take_any_spelling_of_a_metric_and_refuse_the_wrong_direction():
    require = Requirements(metrics={"mean_absolute_error": {"max_increase": 0.05, "relative": True}})
    assert list(require.metrics) == ["mae"]
    assert len(unmet_requirements(require, MODELS, "float")) == 1
    with pytest.raises(ValidationError, match="mae is better when lower: bound its rise with max_increase"):
        Requirements(metrics={"mae": {"max_drop": 0.1}})
    with pytest.raises(ValidationError, match="'relative' goes with max_increase or max_drop"):
        Requirements(metrics={"mae": {"max": 1, "relative": True}})
    assert metric_name("gzip_size") == "gzip_bytes"


def test_select_ranks_by_any_metric_in_the_direction_it_is_better():
    assert SelectStage(candidates=["a"], evaluation="e", metric="mae").ranking().goal == "minimize"
    assert SelectStage(candidates=["a"], evaluation="e", metric="r2").ranking().goal == "maximize"
    assert SelectStage(candidates=["a"], evaluation="e", metric="max_error", goal="minimize").ranking().key == \
        "max_error"


# --------------------------------------------------------------------------- located errors before anything runs


PIPELINE = """
version: 1
name: losses
datasets:
  diabetes: {type: sklearn_diabetes, task: regression}
stages:
  base: {type: load, builder: "compressflow.models:mlp_regressor"}
  trained: {type: fine_tune, model: base, data: diabetes, loss: mean_sqared_error}
  check:
    type: evaluate
    models: [base, trained]
    baseline: base
    data: diabetes
    require: {max_accuracy_drop: 0.01, metrics: {maee: {max: 1}}}
  pick: {type: select, candidates: [trained], evaluation: check, metric: accuracy}
"""


def test_validate_locates_a_misspelt_loss_and_gates_on_metrics_a_regression_does_not_measure(tmp_path):
    pipeline = write(tmp_path / "losses.yaml", PIPELINE)
    result = cli("validate", pipeline)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert ("losses.yaml:7:65: error: unknown loss 'mean_sqared_error': not a tf-keras loss name nor a "
            "module:function; did you mean 'mean_squared_error'?") in result.text
    assert ("'max_accuracy_drop' needs accuracy, which evaluate on dataset 'diabetes', a regression does not "
            "measure") in result.text
    assert "'metrics' names 'maee', which evaluate on dataset 'diabetes', a regression does not measure; " \
           "did you mean 'mae'?" in result.text


def test_validate_refuses_a_loss_function_whose_module_is_nowhere(tmp_path):
    pipeline = write(tmp_path / "p.yaml", PIPELINE.replace("mean_sqared_error", "mylosses:smape")
                     .replace("max_accuracy_drop: 0.01, metrics: {maee: {max: 1}}", "metrics: {mae: {max: 1}}"))
    result = cli("validate", pipeline)
    assert result.code == 2, result.text
    assert "loss 'mylosses:smape': no module 'mylosses' (not beside the pipeline" in result.text
    write(tmp_path / "mylosses.py", "def smape(y_true, y_pred):\n    return abs(y_true - y_pred)\n")
    result = cli("validate", pipeline)
    assert result.code == 0, result.text
    assert json.loads(cli("plan", pipeline, "--json").out)["trained"]["action"] == "run"


# --------------------------------------------------------------------------- the report of a regression


def test_the_report_of_a_regression_shows_its_mae_not_an_accuracy():
    from compressflow.report.markdown import render_markdown

    models = {"float": {"kind": "tflite_model", "label": "tflite float32", "mae": 0.40, "mse": 0.3, "r2": 0.4,
                        "params": 10, "gzip_bytes": 4000},
              "int8": {"kind": "tflite_model", "label": "tflite int8", "mae": 0.42, "mae_delta": 0.02, "mse": 0.3,
                       "r2": 0.38, "params": 10, "gzip_bytes": 2000, "gzip_compression": 2.0}}
    record = {"status": "ok", "pipeline": {"name": "r"}, "stages": {"check": {"status": "ran", "metrics": {
        "task": "regression", "baseline": "float", "models": models, "data": {"samples": 88}}}}}
    text = render_markdown(record)
    assert "| model | format | mae | Δ |" in text
    assert "| **int8** | tflite int8 | 0.42 | +5.0% |" in text
