"""``fine_tune``: train a Keras model, keeping the sparsity and weight clusters it carries."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import TrainingOptions
from compressflow.stages.registry import register_stage


@register_stage
class FineTuneStage(TrainingOptions, Stage):
    """Compile and fit a model; zeros and weight clusters of the input are kept."""

    kind: ClassVar[str] = "fine_tune"
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES

    type: Literal["fine_tune"] = "fine_tune"
    model: StageName
    data: DatasetName
    loss: str = Field("sparse_categorical_crossentropy", description="Keras loss name.")
    from_logits: bool | None = Field(None, description="Whether the model outputs logits (default: detected from its last activation).")
    metrics: list[str] = Field(default_factory=lambda: ["accuracy"], description="Keras metrics to report.")
    preserve_sparsity: bool = Field(True, description="Keep weights that are zero in the input at zero.")
    preserve_clusters: bool = Field(True, description="Keep the number of unique values per weight tensor.")

    def run(self, ctx) -> None:
        raise NotImplementedError
