"""``distill``: train a student on a teacher's softened outputs plus the hard labels."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import TrainingOptions
from compressflow.stages.registry import register_stage


@register_stage
class DistillStage(TrainingOptions, Stage):
    """loss = alpha * hard-label loss + (1 - alpha) * T^2 * KL(teacher_T || student_T)."""

    kind: ClassVar[str] = "distill"
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES

    type: Literal["distill"] = "distill"
    teacher: StageName
    student: StageName
    data: DatasetName
    temperature: float = Field(4.0, gt=0.0, le=1000.0, description="Softening temperature T.")
    alpha: float = Field(0.1, ge=0.0, le=1.0, description="Weight of the hard-label loss.")
    teacher_outputs: Literal["auto", "logits", "probabilities"] = Field(
        "auto", description="What the teacher's last layer gives (auto: detected from its activation).")
    epochs: int = Field(10, ge=0, le=100_000, description="Training epochs.")

    def run(self, ctx) -> None:
        raise NotImplementedError
