"""Measure one model artifact (Keras, TFLite or plain SavedModel) on a dataset: what ``evaluate`` reports per model.

A model quantized with LiteRT Quantizer, or by the TFLite converter (``int8``, ``int16x8``,
``dynamic``), carries a summary of its per-layer numerics (its output's error against the float
model and the worst layers first), which is passed on as ``numerics``.

Keras models run in TensorFlow (accuracy with ``predict``; latency of a traced
``tf.function`` call), TFLite models in LiteRT's interpreter. Sizes are those of
the artifact's file: a Keras model's ``.keras`` (or QAT ``.h5``) file is not a fair
size baseline for TFLite models; a ``quantize`` stage with ``method: float32`` is. A plain
SavedModel runs its serving signature in TensorFlow (:mod:`compressflow.stages.saved_model`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from compressflow.data.streams import first_samples, predict_all
from compressflow.stages.base import KERAS_MODEL, TFLITE_MODEL, Artifact
from compressflow.stages.measure import file_sizes, predicted_classes, time_calls, weight_statistics
from compressflow.stages.prediction_metrics import output_metrics, output_task, task_metrics, user_metrics
from compressflow.stages.saved_model import SAVED_MODEL


def model_label(artifact: Artifact) -> str:
    """Short description of a model for tables: ``keras``, ``keras qat``, ``tflite int8``, ``saved_model``..."""
    if artifact.kind == SAVED_MODEL:
        return "saved_model"
    if artifact.kind == KERAS_MODEL:
        return "keras qat" if artifact.meta.get("qat") else "keras"
    method = artifact.meta.get("method")
    if method == "int8" and artifact.meta.get("input", {}).get("dtype") == "int8":
        method = "int8 io"
    if method == "litert":
        method = f"litert {artifact.meta.get('recipe') or 'rules'}"
    return f"tflite {method}" if method else "tflite"


def measure_model(artifact: Artifact, x: np.ndarray, y: np.ndarray, *, top_k: list[int],
                  latency: Any | None, task: str | Callable[[np.ndarray], str] = "classification",
                  metrics=None) -> dict[str, Any]:
    """The task's metrics and ``metrics`` (specs) from the predictions, parameters, sparsity, sizes and
    (when ``latency`` is given) latency of a model.

    ``task`` may be a function of the predictions that gives it (decided from the first model's outputs).
    """
    if artifact.kind == KERAS_MODEL:
        scores, tensors, timing = _keras(artifact, x, latency)
    elif artifact.kind == TFLITE_MODEL:
        scores, tensors, timing = _tflite(artifact, x, latency)
    elif artifact.kind == SAVED_MODEL:
        from compressflow.stages import saved_model_run

        scores, tensors, timing = saved_model_run.measure(artifact, x, latency)
    else:
        raise ValueError(f"stage {artifact.stage!r} gives {artifact.kind}, not a model")
    result: dict[str, Any] = {"kind": artifact.kind, "label": model_label(artifact),
                              "file": artifact.file().name, "samples": _count(x)}
    from_logits = artifact.meta.get("from_logits")
    if isinstance(scores, dict):  # NOTE: several outputs: each output's metrics, keyed <output>/<metric>
        if not isinstance(y, dict):
            raise ValueError(f"the model has outputs {sorted(scores)}; the labels must be a dict by those names")
        result.update(output_metrics(lambda name, s, labels: output_task(s, labels), scores, y,
                                     top_k=top_k, from_logits=from_logits))
        result.update(weight_statistics(tensors))
        result.update(file_sizes(artifact.file()))
        result.update(timing)
        return result
    task = task(scores) if callable(task) else task
    measured = task_metrics(task, scores, y, top_k=top_k, from_logits=from_logits)
    result.update(measured)
    extra = [spec for spec in metrics or () if _key(spec) not in measured]
    result.update(user_metrics(extra, scores, y, task=task, from_logits=from_logits))
    if task == "classification":
        result.update(predicted_classes(scores))
    result.update(weight_statistics(tensors))
    result.update(file_sizes(artifact.file()))
    result.update(timing)
    if artifact.meta.get("numerics"):
        result["numerics"] = artifact.meta["numerics"]  # NOTE: per-layer errors against the float model
    return result


def _keras(artifact: Artifact, x: np.ndarray, latency):
    from compressflow.stages.keras_artifacts import keras_parameters, load_keras_artifact
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    model = load_keras_artifact(artifact)
    names = list(model.output_names)

    def predict(batch):
        scores = model.predict(batch, batch_size=256, verbose=0)
        return dict(zip(names, scores)) if isinstance(scores, (list, tuple)) else scores

    scores = predict_all(predict, x) if not isinstance(x, dict) else predict(x)
    timing = {}
    if latency is not None:
        sample = tf.nest.map_structure(tf.constant, _first(x))
        call = tf.function(lambda batch: model(batch, training=False))
        call(sample)  # NOTE: tracing is compilation, not inference: never timed
        timing = time_calls(lambda: call(sample).numpy(), warmup=latency.warmup, runs=latency.runs)
    return scores, keras_parameters(model), timing


def _tflite(artifact: Artifact, x: np.ndarray, latency):
    from compressflow.stages.litert_runner import LiteRTModel
    from compressflow.stages.tflite_weights import read_parameters

    path = artifact.file()
    model = LiteRTModel(path)
    scores = model.predict(x) if isinstance(x, dict) else predict_all(model.predict, x)
    timing = {}
    if latency is not None:
        runner = LiteRTModel(path, threads=latency.threads)
        first = _first(x)
        sample = {name: value[0] for name, value in first.items()} if isinstance(first, dict) else first[0]
        timing = time_calls(runner.single_sample_call(sample), warmup=latency.warmup, runs=latency.runs)
        timing["latency_threads"] = latency.threads
    return scores, read_parameters(path), timing


def _first(x):
    """The first input of arrays, a stream, or a dict of arrays by input name."""
    if isinstance(x, dict):
        return {name: np.asarray(value)[:1] for name, value in x.items()}
    return first_samples(x)


def _count(x) -> int:
    return int(len(next(iter(x.values())))) if isinstance(x, dict) else int(len(x))


def _key(spec) -> str:
    from compressflow.stages.losses import metric_key

    return metric_key(spec)


def compare(model: dict[str, Any], baseline: dict[str, Any], metrics: list[str] | None = None) -> dict[str, Any]:
    """A model's figures against the baseline's: ``<metric>_delta`` of each of ``metrics`` (default: accuracy)
    both have, size ratios, speed-up."""
    def ratio(numerator, denominator):
        return numerator / denominator if numerator is not None and denominator else None

    deltas = {f"{name}_delta": model[name] - baseline[name] for name in (metrics or ["accuracy"])
              if model.get(name) is not None and baseline.get(name) is not None}
    return {
        **deltas,
        "compression": ratio(baseline["file_bytes"], model["file_bytes"]),
        "gzip_compression": ratio(baseline["gzip_bytes"], model["gzip_bytes"]),
        "speedup": ratio(baseline.get("latency_ms_median"), model.get("latency_ms_median")),
    }
