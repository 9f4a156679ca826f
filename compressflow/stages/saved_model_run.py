"""Converting and running a plain SavedModel artifact (see :mod:`compressflow.stages.saved_model`).

Imports TensorFlow inside: call from a stage's ``run``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from compressflow.stages.saved_model import first_line, serving_function, signature_tensors

PREDICT_BATCH = 256


def check_samples_fit(artifact, x: np.ndarray, data_name: str) -> None:
    """Fail clearly when a dataset's samples do not have the SavedModel's input shape."""
    from compressflow.errors import StageFailed

    expected = (artifact.meta.get("input") or {}).get("shape")
    if expected is None:
        return
    got = tuple(x.shape[1:])
    if len(expected) - 1 != len(got) or any(e not in (None, g) for e, g in zip(expected[1:], got)):
        raise StageFailed(f"dataset {data_name!r} gives samples of shape {got} but SavedModel "
                          f"{artifact.stage!r} expects {tuple(expected[1:])}")


def converter_for(artifact, data_name: str | None) -> Callable[..., bytes]:
    """A ``convert(method, samples=..., int8_io=...)`` for a ``saved_model`` artifact (see tflite_convert);
    calibration samples must fit its input (they come from dataset ``data_name``)."""
    from compressflow.stages import tflite_convert

    def convert(method: str, *, samples=None, int8_io: bool = False) -> bytes:
        from compressflow.errors import StageFailed

        if samples is not None:
            check_samples_fit(artifact, samples, data_name or "")
        try:
            return tflite_convert.convert_saved_model(artifact.file(), method, signature=artifact.meta["signature"],
                                                      samples=samples, int8_io=int8_io)
        except StageFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - the converter's errors come in many types
            raise StageFailed(f"the TFLite converter cannot convert SavedModel {artifact.stage!r} ({method}): "
                              f"{type(exc).__name__}: {first_line(exc)}") from exc

    return convert


class SavedModelRunner:
    """The serving signature of a ``saved_model`` artifact, called on numpy batches."""

    def __init__(self, artifact):
        from compressflow.stages.tfutil import import_tensorflow

        self._tf = import_tensorflow()
        # NOTE: the loaded object is kept: once it is collected, the function's variables are gone.
        self.signature, self._function, self._loaded = serving_function(artifact.file(), artifact.stage)
        inputs, outputs = signature_tensors(self._function)
        (self._input, spec), = inputs.items()
        self._output = next(iter(outputs))
        self._dtype = spec.dtype
        fixed = spec.shape.as_list()[0] if spec.shape.rank else None
        self._batch = fixed or PREDICT_BATCH
        self._fixed_batch = fixed is not None

    def _call(self, batch: np.ndarray) -> np.ndarray:
        tensor = self._tf.constant(batch, dtype=self._dtype)
        return self._function(**{self._input: tensor})[self._output].numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The outputs for every sample of ``x``, in batches (padded when the signature fixes the batch size)."""
        results = []
        for start in range(0, len(x), self._batch):
            batch = x[start:start + self._batch]
            count = len(batch)
            if self._fixed_batch and count < self._batch:
                batch = np.concatenate([batch, np.repeat(batch[-1:], self._batch - count, axis=0)])
            results.append(self._call(batch)[:count])
        return np.concatenate(results) if results else np.zeros((0,))

    def single_sample_call(self, sample: np.ndarray) -> Callable[[], Any]:
        """A call on one sample (a batch of the signature's fixed size, when it has one), for timing."""
        batch = np.repeat(sample[None, ...], self._batch if self._fixed_batch else 1, axis=0)
        tensor = self._tf.constant(batch, dtype=self._dtype)
        return lambda: self._function(**{self._input: tensor})[self._output].numpy()

    def parameters(self) -> list:
        """Every variable of the model, as weights that :func:`~compressflow.stages.measure.weight_statistics` takes."""
        from compressflow.stages.keras_artifacts import KerasWeight

        found, seen = [], {}
        for variable in self._function.variables:
            name = variable.name.split(":")[0]
            seen[name] = seen.get(name, 0) + 1
            layer = name if seen[name] == 1 else f"{name}#{seen[name]}"
            found.append(KerasWeight(layer=layer, name=variable.name, values=np.asarray(variable.numpy())))
        return found


def measure(artifact, x: np.ndarray, latency) -> tuple[np.ndarray, list, dict[str, Any]]:
    """``(scores, parameters, timing)`` of a ``saved_model`` artifact, as ``model_measurements`` takes them;
    ``x`` is arrays or a stream of inputs (predicted batch by batch)."""
    from compressflow.stages.measure import time_calls

    from compressflow.data.streams import first_samples, predict_all

    runner = SavedModelRunner(artifact)
    scores = predict_all(lambda batch: runner.predict(np.asarray(batch)), x)
    timing = {}
    if latency is not None:
        call = runner.single_sample_call(np.asarray(first_samples(x, 1))[0])
        call()  # NOTE: the first call traces the graph: not inference, never timed
        timing = time_calls(call, warmup=latency.warmup, runs=latency.runs)
    return scores, runner.parameters(), timing
