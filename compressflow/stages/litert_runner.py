"""Run a TFLite model with LiteRT's interpreter (``ai_edge_litert``); no TensorFlow.

Quantized inputs and outputs (int8 / uint8 / int16) are handled here: float inputs
are quantized with the input tensor's scale and zero point, outputs dequantized
with the output tensor's, so callers always see float scores.

A model with several inputs or outputs runs through its signature: inputs are matched to
the keys of a dict of arrays by the signature's input names (a Keras model's input names
survive conversion there), never by position, and several outputs come back as a dict by
output name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

_QUANTIZED_IO = (np.int8, np.uint8, np.int16)


def quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Float values -> the tensor's integer type, with its scale and zero point."""
    dtype = detail["dtype"]
    if dtype not in _QUANTIZED_IO:
        return np.asarray(x, dtype=dtype)
    scale, zero_point = detail["quantization"]
    if not scale:
        raise ValueError(f"input {detail['name']!r} is {np.dtype(dtype).name} but has no quantization scale")
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float32) / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """The tensor's integer values -> float, with its scale and zero point."""
    if detail["dtype"] not in _QUANTIZED_IO:
        return np.asarray(q, dtype=np.float32)
    scale, zero_point = detail["quantization"]
    return (q.astype(np.float32) - zero_point) * scale


def io_description(detail: dict[str, Any]) -> dict[str, Any]:
    """dtype, shape and quantization of an input or output tensor, JSON-ready."""
    scale, zero_point = detail["quantization"]
    return {"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(d) for d in detail["shape_signature"]],
            "scale": float(scale), "zero_point": int(zero_point)}


class LiteRTModel:
    """A TFLite model in a LiteRT interpreter; one with several inputs or outputs runs by its signature."""

    def __init__(self, model: Path | bytes, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self._content = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        self._interpreter = Interpreter(model_content=bytes(self._content), num_threads=threads)
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        self._signature = None
        self._interpreter.allocate_tensors()
        if len(inputs) != 1 or len(outputs) != 1:
            signatures = self._interpreter.get_signature_list()
            if len(signatures) != 1:
                raise ValueError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs but "
                                 f"{len(signatures)} signatures; inputs are matched by the names of exactly one")
            # NOTE: after allocation: the runner holds the interpreter's tensors, which allocating again refuses
            self._signature = self._interpreter.get_signature_runner(next(iter(signatures)))
        self._batch = int(inputs[0]["shape"][0])

    @property
    def several(self) -> bool:
        """Whether the model has several inputs or outputs (it runs by its signature)."""
        return self._signature is not None

    @property
    def input_names(self) -> list[str]:
        """The signature's input names (sorted), or the one input tensor's name."""
        if self._signature is None:
            return [self.input_detail["name"]]
        return sorted(self._signature.get_input_details())

    @property
    def output_names(self) -> list[str]:
        """The signature's output names (sorted), or the one output tensor's name."""
        if self._signature is None:
            return [self.output_detail["name"]]
        return sorted(self._signature.get_output_details())

    @property
    def input_detail(self) -> dict[str, Any]:
        return self._interpreter.get_input_details()[0]

    @property
    def output_detail(self) -> dict[str, Any]:
        return self._interpreter.get_output_details()[0]

    def tensor_details(self) -> list[dict[str, Any]]:
        """The interpreter's details of every tensor of the main subgraph."""
        return self._interpreter.get_tensor_details()

    def _set_batch(self, batch: int) -> None:
        if batch == self._batch:
            return
        detail = self.input_detail
        shape = [batch, *[int(d) for d in detail["shape"][1:]]]
        self._interpreter.resize_tensor_input(detail["index"], shape, strict=False)
        self._interpreter.allocate_tensors()
        self._batch = batch

    def _run(self, x: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self.input_detail["index"], quantize(x, self.input_detail))
        self._interpreter.invoke()
        output = self.output_detail
        return dequantize(self._interpreter.get_tensor(output["index"]), output)

    def _named_inputs(self, x) -> dict[str, np.ndarray]:
        names = self.input_names
        if not isinstance(x, dict):
            if len(names) != 1:
                raise ValueError(f"the model has inputs {names}; give a dict of arrays by those names")
            return {names[0]: np.asarray(x)}
        missing = [name for name in names if name not in x]
        if missing:
            raise ValueError(f"the model's inputs are {names}; the data gives {sorted(x)} (missing {missing})")
        return {name: np.asarray(x[name]) for name in names}

    def _predict_signature(self, x, batch_size: int):
        inputs = self._named_inputs(x)
        in_details = self._signature.get_input_details()
        out_details = self._signature.get_output_details()
        fixed = [int(d["shape"][0]) for d in in_details.values() if d["shape_signature"][0] != -1]
        count = len(next(iter(inputs.values())))
        if fixed:
            batch_size = fixed[0]
            if count % batch_size:
                raise ValueError(f"the model has a fixed batch size of {batch_size}; "
                                 f"{count} samples are not a multiple of it")
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in out_details}
        for start in range(0, count, batch_size):
            feed = {name: quantize(value[start:start + batch_size], in_details[name])
                    for name, value in inputs.items()}
            for name, value in self._signature(**feed).items():
                chunks[name].append(dequantize(value, out_details[name]))
        outputs = {name: np.concatenate(values) if values else np.zeros((0,), np.float32)
                   for name, values in sorted(chunks.items())}
        return outputs if len(outputs) > 1 else next(iter(outputs.values()))

    def predict(self, x, batch_size: int = 128):
        """Float scores for every sample of ``x`` (batched when the model allows it).

        ``x`` is an array, or for a model with several inputs a dict of arrays by input name; a model
        with several outputs gives a dict of score arrays by output name.
        """
        if self._signature is not None:
            return self._predict_signature(x, batch_size)
        if isinstance(x, dict):
            x = _only_value(x, self.input_names[0])
        if self.input_detail["shape_signature"][0] != -1:
            batch_size = int(self.input_detail["shape"][0])  # NOTE: fixed batch size in the file
            if len(x) % batch_size:
                raise ValueError(f"the model has a fixed batch size of {batch_size}; "
                                 f"{len(x)} samples are not a multiple of it")
        outputs = []
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            try:
                self._set_batch(len(chunk))
            except RuntimeError:
                # NOTE: some models cannot be resized (XNNPack fails on LiteRT Quantizer's Hadamard
                # rotations); they still run one sample at a time.
                self._batch = -1  # the input was resized before allocation failed: resize it back
                self._set_batch(1)
                outputs.extend(self._run(sample[None, ...]) for sample in chunk)
                continue
            outputs.append(self._run(chunk))
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def single_sample_call(self, sample: np.ndarray) -> Callable[[], np.ndarray]:
        """A call that runs one sample (batch 1): set the input, invoke, read the output.

        The sample is quantized beforehand: converting the caller's data is not the model's time.
        A model with several inputs takes a dict of samples by input name.
        """
        if self._signature is not None:
            in_details = self._signature.get_input_details()
            feed = {name: quantize(value[None, ...], in_details[name])
                    for name, value in self._named_inputs(sample).items()}
            runner = self._signature
            runner(**feed)  # NOTE: the first call resizes to batch 1 and allocates: not the model's time
            return lambda: runner(**feed)
        if isinstance(sample, dict):
            sample = _only_value(sample, self.input_names[0])
        self._set_batch(1)
        batch = quantize(np.asarray(sample)[None, ...], self.input_detail)
        input_index, output_index = self.input_detail["index"], self.output_detail["index"]
        interpreter = self._interpreter

        def call() -> np.ndarray:
            interpreter.set_tensor(input_index, batch)
            interpreter.invoke()
            return interpreter.get_tensor(output_index)

        return call


def _only_value(x: dict, name: str):
    if len(x) != 1:
        raise ValueError(f"the model has one input ({name!r}); the data gives {sorted(x)}")
    return next(iter(x.values()))
