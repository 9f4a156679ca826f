"""``load``: bring a Keras model into the pipeline (file, builder function or keras.applications)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressflow.stages.base import KERAS_MODEL, Stage
from compressflow.stages.registry import register_stage

TF_LIBRARIES = ("tensorflow", "tf-keras", "tensorflow-model-optimization")


@register_stage
class LoadStage(Stage):
    """Load a model from `path` (.keras, .h5 or SavedModel), a `builder` function or a keras.applications `application`."""

    kind: ClassVar[str] = "load"
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES

    type: Literal["load"] = "load"
    path: str | None = Field(None, description="Model file or SavedModel directory, relative to the pipeline file.",
                             examples=["models/base.keras"])
    builder: str | None = Field(None, description="`module:function` returning a Keras model.",
                                examples=["compressflow.models:small_cnn"])
    application: str | None = Field(None, description="A keras.applications architecture, e.g. `MobileNetV2`.")
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the builder or application.")
    weights: str | None = Field(None, description="Local weights file for `application` (no downloads).")
    trust: bool = Field(False, description="Allow the model file to run code on load (Lambda layers, custom objects).")

    @model_validator(mode="after")
    def _one_source(self) -> "LoadStage":
        given = [name for name in ("path", "builder", "application") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of 'path', 'builder' or 'application'"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.weights and not self.application:
            raise ValueError("'weights' goes with 'application'")
        return self

    def run(self, ctx) -> None:
        raise NotImplementedError
