"""``cluster``: tfmot weight clustering (optionally sparsity preserving); stripped output."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import LayerSelection, TrainingOptions
from compressflow.stages.registry import register_stage


@register_stage
class ClusterStage(LayerSelection, TrainingOptions, Stage):
    """Share weights among `number_of_clusters` centroids per layer, then fine-tune."""

    kind: ClassVar[str] = "cluster"
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES

    type: Literal["cluster"] = "cluster"
    model: StageName
    data: DatasetName
    number_of_clusters: int = Field(16, ge=2, le=65536, description="Unique weight values per layer.")
    centroid_init: Literal["kmeans_plus_plus", "linear", "random", "density_based"] = Field(
        "kmeans_plus_plus", description="How the centroids start.")
    preserve_sparsity: bool = Field(False, description="Keep zero weights at zero (for pruned inputs).")
    epochs: int = Field(2, ge=0, le=100_000, description="Fine-tuning epochs while clustered.")
    learning_rate: float = Field(1e-4, gt=0.0, le=10.0, description="Optimizer learning rate.")

    def run(self, ctx) -> None:
        raise NotImplementedError
