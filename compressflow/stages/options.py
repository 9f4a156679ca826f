"""Option groups shared by several stage types (training, layer selection)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from compressflow.stages.losses import LossSpec, MetricSpecs


class EarlyStopping(BaseModel):
    """Stop training when the validation metric stops improving."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monitor: str = Field("val_loss", description="Metric to watch, e.g. `val_loss` or `val_accuracy`.")
    patience: int = Field(3, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement.")
    restore_best_weights: bool = Field(True, description="Keep the weights of the best epoch.")


class TrainingOptions(BaseModel):
    """How a stage trains: optimizer, learning rate, epochs, batch size, BatchNorm layers."""

    # NOTE: where training logs go does not change the model: kept out of the cache key.
    key_exclude: ClassVar[frozenset[str]] = frozenset({"tensorboard"})
    #: Fields naming the models the stage runs as Keras models: none of them may be a plain SavedModel.
    keras_model_fields: ClassVar[tuple[str, ...]] = ("model",)

    epochs: int = Field(5, ge=0, le=100_000, description="Training epochs (0 skips training).")
    batch_size: int = Field(32, ge=1, le=1_000_000, description="Samples per training step.")
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw"] = Field("adam", description="Keras optimizer.")
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0, description="Optimizer learning rate.")
    early_stopping: EarlyStopping | None = Field(None, description="Stop early on a validation metric.")
    batchnorm: Literal["train", "freeze"] = Field(
        "train", description="`freeze` keeps every BatchNormalization layer as it is (moving statistics, gamma "
                             "and beta) and runs it in inference mode while training, the usual practice when "
                             "fine-tuning a compressed model on little data; `train` updates them.")
    tensorboard: bool = Field(
        False, description="Write TensorBoard logs of the training (for prune, with tfmot's pruning summaries) "
                           "to `.compressflow/runs/<run>/tensorboard/<stage>` when the stage runs. "
                           "Not part of the cache key: a cached stage writes none.")
    loss: LossSpec | None = Field(
        None, description="What training minimises: a tf-keras loss in any spelling tf-keras accepts (`mse`, "
                          "`mean_squared_error`, `MeanSquaredError`), a mapping `{name: Huber, delta: 2.0}` (the "
                          "other keys are the class's arguments) or `module:function` (beside the pipeline or "
                          "installed). Default: from the dataset's task: sparse categorical cross-entropy for "
                          "classification (categorical for one-hot labels, binary for one output), binary "
                          "cross-entropy for multilabel, mean squared error for regression.",
        examples=["mse"])
    metrics: MetricSpecs | None = Field(
        None, description="Metrics reported while training, in the same forms as `loss` (a `module:function` "
                          "takes numpy arrays `(y_true, y_pred)` and returns a number). Default: from the "
                          "dataset's task: `[accuracy]`, `[binary_accuracy]` for multilabel, `[mae]` for "
                          "regression.",
        examples=[["mae"]])

    def check(self, env) -> list:
        """The modules of a ``module:function`` loss or metric must be there (beside the pipeline or installed);
        no model the stage trains may be a plain SavedModel (it has no Keras layers)."""
        from compressflow.stages.losses import function_problems
        from compressflow.stages.saved_model import plain_saved_model_inputs

        problems = [*super().check(env), *function_problems(self, env)]  # type: ignore[misc]
        if self.trains_keras_layers():
            problems.extend(plain_saved_model_inputs(self, self.keras_model_fields, env))
        return problems

    def fingerprint(self, env) -> dict[str, Any]:
        """The source of the modules of a ``module:function`` loss or metric (found without importing them)."""
        from compressflow.stages.losses import function_specs, functions_fingerprint

        found = dict(super().fingerprint(env))  # type: ignore[misc]
        names = function_specs(self.loss) + function_specs(self.metrics)
        if names:
            found["functions"] = functions_fingerprint(names, env.pipeline_dir)
        return found

    def trains_keras_layers(self) -> bool:
        """Whether this configuration trains (``quantize`` trains only with method qat)."""
        return True


class LayerSelection(BaseModel):
    """Which layers a technique applies to, by name pattern (fnmatch, e.g. `conv*`)."""

    include: list[str] = Field(
        default_factory=list,
        description="Only layers whose name matches one of these patterns (default: all supported).")
    exclude: list[str] = Field(default_factory=list,
                               description="Layers whose name matches one of these patterns are left alone.")
