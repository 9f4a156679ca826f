"""``export``: write a model outside the cache (keras, saved_model, tflite) with a sidecar JSON."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from compressflow.stages.base import FILES, Stage, StageName
from compressflow.stages.registry import register_stage


@register_stage
class ExportStage(Stage):
    """Copy a model to `to`, relative to the pipeline file's folder, on every run."""

    kind: ClassVar[str] = "export"
    produces: ClassVar[str] = FILES
    libraries: ClassVar[tuple[str, ...]] = ("tensorflow", "tf-keras")
    key_exclude: ClassVar[frozenset[str]] = frozenset({"to", "allow_outside"})
    always_publish: ClassVar[bool] = True

    type: Literal["export"] = "export"
    model: StageName
    format: Literal["keras", "saved_model", "tflite"] | None = Field(
        None, description="Output format (default: the model's own: keras for Keras models, tflite for TFLite).")
    to: str = Field(description="Target path, relative to the pipeline file's folder.",
                    examples=["out/digits-int8.tflite"])
    allow_outside: bool = Field(False, description="Allow `to` outside the pipeline's folder.")

    def run(self, ctx) -> None:
        raise NotImplementedError
