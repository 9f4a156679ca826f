"""``evaluate``: accuracy, size, sparsity, clusters and latency of Keras and TFLite models."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressflow.stages.base import METRICS, DatasetName, Stage, StageName, StageNames
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.registry import register_stage


class Requirements(BaseModel):
    """Gates: the stage fails, naming the model and the numbers, when one is not met."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0,
                                            description="Largest accuracy loss against the baseline (0.01 = 1 point).")
    min_compression: float | None = Field(None, gt=0.0, description="Smallest gzip-size ratio baseline / model.")
    max_latency_ms: float | None = Field(None, gt=0.0, description="Largest median latency per sample, in ms.")


class LatencyOptions(BaseModel):
    """How latency is measured: batch 1, repeated runs, median and p90."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runs: int = Field(200, ge=1, le=1_000_000, description="Timed single-sample runs.")
    warmup: int = Field(20, ge=0, le=100_000, description="Untimed runs first.")
    threads: int = Field(1, ge=1, le=256, description="Interpreter threads for TFLite models.")


@register_stage
class EvaluateStage(Stage):
    """Measure every model in `models` on the validation split and compare with `baseline`."""

    kind: ClassVar[str] = "evaluate"
    produces: ClassVar[str] = METRICS
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES + ("ai-edge-litert",)

    type: Literal["evaluate"] = "evaluate"
    models: StageNames = Field(min_length=1)
    data: DatasetName
    baseline: StageName | None = Field(None, description="Model the others are compared with (one of `models`).")
    split: Literal["validation", "train"] = Field("validation", description="Which split to measure on.")
    top_k: list[int] = Field(default_factory=lambda: [1], description="Also report top-k accuracy for these k.")
    latency: LatencyOptions | None = Field(default_factory=LatencyOptions, description="Latency options (null to skip).")
    require: Requirements | None = Field(None, description="Gates against the baseline.")

    @model_validator(mode="after")
    def _baseline_is_evaluated(self):
        if self.baseline is not None and self.baseline not in self.models:
            raise ValueError(f"baseline {self.baseline!r} must be one of 'models'")
        if self.require is not None and self.baseline is None and (
                self.require.max_accuracy_drop is not None or self.require.min_compression is not None):
            raise ValueError("'require' against a baseline needs 'baseline'")
        return self

    def run(self, ctx) -> None:
        raise NotImplementedError
