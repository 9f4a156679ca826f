"""``quantize``: quantization-aware training (Keras out) or post-training conversion (TFLite out)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from compressflow.stages.base import KERAS_MODEL, TFLITE_MODEL, DatasetName, Stage, StageName
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import TrainingOptions
from compressflow.stages.registry import register_stage

METHODS_NEEDING_DATA = ("qat", "int8", "int16x8")


@register_stage
class QuantizeStage(TrainingOptions, Stage):
    """`qat` gives a Keras model; `float32`, `dynamic`, `float16`, `int8`, `int16x8` give a TFLite model."""

    kind: ClassVar[str] = "quantize"
    produces: ClassVar[str] = TFLITE_MODEL  # KERAS_MODEL for qat: see output_kind()
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES

    type: Literal["quantize"] = "quantize"
    model: StageName
    method: Literal["qat", "float32", "dynamic", "float16", "int8", "int16x8"] = Field(
        description="`qat` (training), or a post-training conversion; `float32` converts without quantizing.")
    data: DatasetName | None = Field(None, description="Training data (qat) or representative samples (int8, int16x8).")
    scheme: Literal["default", "prune_preserving", "cluster_preserving", "prune_cluster_preserving"] = Field(
        "default", description="QAT scheme; the preserving ones keep sparsity and/or clusters.")
    representative_samples: int = Field(200, ge=1, le=1_000_000,
                                        description="Samples used to calibrate int8 / int16x8 ranges.")
    int8_io: bool = Field(False, description="int8: make the model's input and output int8 too.")
    epochs: int = Field(2, ge=0, le=100_000, description="QAT epochs.")
    learning_rate: float = Field(1e-4, gt=0.0, le=10.0, description="QAT learning rate.")

    @model_validator(mode="after")
    def _data_when_needed(self):
        if self.method in METHODS_NEEDING_DATA and self.data is None:
            raise ValueError(f"method {self.method!r} needs 'data'")
        if self.int8_io and self.method != "int8":
            raise ValueError("'int8_io' goes with method 'int8'")
        if self.scheme != "default" and self.method != "qat":
            raise ValueError("'scheme' goes with method 'qat'")
        return self

    def key_config(self):
        config = super().key_config()
        if self.method != "qat":  # training options do not change a conversion
            for name in ("epochs", "batch_size", "optimizer", "learning_rate", "early_stopping"):
                config.pop(name, None)
        return config

    def run(self, ctx) -> None:
        raise NotImplementedError
