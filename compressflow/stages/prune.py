"""``prune``: tfmot magnitude pruning with fine-tuning; the output is stripped of wrappers."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import LayerSelection, TrainingOptions
from compressflow.stages.registry import register_stage

Sparsity = Annotated[float, Field(ge=0.0, lt=1.0)]


class _ScheduleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    begin_step: int | None = Field(None, ge=0, description="Step at which pruning starts (default 0).")
    end_step: int | None = Field(None, ge=-1, description="Step at which pruning ends (default: end of training).")
    begin_epoch: float | None = Field(None, ge=0, description="Like begin_step, in epochs.")
    end_epoch: float | None = Field(None, ge=0, description="Like end_step, in epochs.")
    frequency: int = Field(100, ge=1, description="Steps between two pruning updates.")

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.begin_step is not None and self.begin_epoch is not None:
            raise ValueError("give begin_step or begin_epoch, not both")
        if self.end_step is not None and self.end_epoch is not None:
            raise ValueError("give end_step or end_epoch, not both")
        return self


class ConstantSchedule(_ScheduleBase):
    """Prune to `target_sparsity` at once, at `begin_step`, and keep it."""

    type: Literal["constant"] = "constant"
    target_sparsity: Sparsity = Field(description="Share of weights set to zero.")


class PolynomialDecaySchedule(_ScheduleBase):
    """Raise sparsity from `initial_sparsity` to `final_sparsity` along a polynomial."""

    type: Literal["polynomial_decay"] = "polynomial_decay"
    initial_sparsity: Sparsity = Field(0.0, description="Sparsity when pruning starts.")
    final_sparsity: Sparsity = Field(description="Sparsity when pruning ends.")
    power: float = Field(3.0, gt=0, description="Exponent of the polynomial.")

    @model_validator(mode="after")
    def _increasing(self):
        if self.final_sparsity < self.initial_sparsity:
            raise ValueError("final_sparsity must not be below initial_sparsity")
        return self


Schedule = Annotated[Union[ConstantSchedule, PolynomialDecaySchedule], Field(discriminator="type")]


@register_stage
class PruneStage(LayerSelection, TrainingOptions, Stage):
    """Magnitude pruning (`prune_low_magnitude`): unstructured, block or m-by-n (2:4)."""

    kind: ClassVar[str] = "prune"
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES

    type: Literal["prune"] = "prune"
    model: StageName
    data: DatasetName
    schedule: Schedule | None = Field(None, description="Sparsity schedule (not with `sparsity_m_by_n`).")
    block_size: tuple[int, int] | None = Field(None, description="Prune blocks of this shape, e.g. [1, 4].")
    sparsity_m_by_n: tuple[int, int] | None = Field(None, description="Keep m of every n weights, e.g. [2, 4].")
    epochs: int = Field(3, ge=0, le=100_000, description="Fine-tuning epochs while pruning.")

    @model_validator(mode="after")
    def _schedule_or_m_by_n(self):
        if (self.schedule is None) == (self.sparsity_m_by_n is None):
            raise ValueError("give exactly one of 'schedule' or 'sparsity_m_by_n'")
        if self.sparsity_m_by_n is not None:
            m, n = self.sparsity_m_by_n
            if not 0 < m < n:
                raise ValueError("sparsity_m_by_n must be [m, n] with 0 < m < n, e.g. [2, 4]")
            if self.block_size is not None:
                raise ValueError("block_size does not go with sparsity_m_by_n")
        return self

    def run(self, ctx) -> None:
        raise NotImplementedError
