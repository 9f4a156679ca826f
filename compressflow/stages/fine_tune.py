"""``fine_tune``: train a Keras model, keeping the sparsity and weight clusters it carries."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.code_sets import TF_CODE
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import TrainingOptions
from compressflow.stages.registry import register_stage


@register_stage
class FineTuneStage(TrainingOptions, Stage):
    """Compile and fit a model; zeros and weight clusters of the input are kept."""

    example: ClassVar[str] = """\
model: base
data: digits
epochs: 15
learning_rate: 0.001
early_stopping: {monitor: val_accuracy, patience: 3}
"""
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE

    type: Literal["fine_tune"] = "fine_tune"
    model: StageName
    data: DatasetName
    from_logits: bool | None = Field(
        None, description="Whether the model outputs logits, for a cross-entropy `loss` that does not say "
                          "(default: detected from its last activation).")
    preserve_sparsity: bool = Field(True, description="Keep weights that are zero in the input at zero.")
    preserve_clusters: bool = Field(
        True, description="Keep the weight clusters of clustered kernels "
                          "(at most 256 unique values, shared by many weights).")

    def run(self, ctx) -> None:
        from compressflow.data.datasets import load_splits
        from compressflow.stages import keras_training, model_io, tfutil
        from compressflow.stages.batchnorm import batchnorm_mode
        from compressflow.stages.objective import training_objective

        tfutil.seed_everything(ctx.seed)
        model = model_io.load_input_model(ctx)
        splits = load_splits(ctx.dataset(self.data), ctx.env)
        keras_training.check_data_fits(model, splits, self.data)
        before = tfutil.kernel_stats(model)
        constraints = tfutil.structure_constraints(model, sparsity=self.preserve_sparsity,
                                                   clusters=self.preserve_clusters)
        _log_constraints(ctx, constraints)
        from_logits = tfutil.outputs_logits(model) if self.from_logits is None else self.from_logits
        objective = training_objective(self, model, splits, ctx, from_logits=from_logits)
        keeper = [tfutil.structure_keeper(constraints)] if constraints else []
        with batchnorm_mode(model, self.batchnorm, ctx.log):
            keras_training.compile_model(model, optimizer=self.optimizer, learning_rate=self.learning_rate,
                                         objective=objective)
            training = keras_training.fit(model, splits, ctx, epochs=self.epochs, batch_size=self.batch_size,
                                          callbacks=keeper, early_stopping=self.early_stopping,
                                          learning_rate=self.learning_rate)
        after = tfutil.kernel_stats(model)
        self._check_kept(before, after, clustered={c["name"] for c in constraints if c["index"] is not None})
        final = keras_training.evaluate(model, splits, objective=objective)
        sparsity = tfutil.overall_sparsity(after)
        ctx.log("final  " + "  ".join(f"{key} {value:.4f}" for key, value in final.items())
                + f"  sparsity {sparsity:.4f}")
        ctx.write_json("metrics.json", {**final, "sparsity": sparsity, "epochs_run": training["epochs_run"],
                                        "history": training["history"], "kernels": after,
                                        "kept": [c["name"] for c in constraints]})
        model_io.save_keras_model(model, ctx, sparsity=sparsity, from_logits=from_logits,
                                  **{key: final[key] for key in ("accuracy", "val_accuracy") if key in final})

    def _check_kept(self, before: dict, after: dict, clustered: set[str]) -> None:
        """Fail loudly if a kernel lost zeros or a clustered kernel gained unique values (it must not happen)."""
        for name, old in before.items():
            new = after[name]
            if self.preserve_sparsity and new["zeros"] < old["zeros"]:
                raise StageFailed(f"kernel {name} lost sparsity while training ({old['sparsity']:.4f} -> "
                                  f"{new['sparsity']:.4f})")
            if name in clustered and new["unique"] > old["unique"]:
                raise StageFailed(f"kernel {name} gained unique values while training "
                                  f"({old['unique']} -> {new['unique']})")


def _log_constraints(ctx, constraints: list[dict]) -> None:
    for c in constraints:
        kept = []
        if c["mask"] is not None:
            kept.append(f"{int(c['mask'].size - c['mask'].sum())} zeros")
        if c["index"] is not None:
            kept.append(f"{c['unique']} unique values")
        why = f" (it is clustered: {c['size']} weights share them)" if c["index"] is not None else ""
        ctx.log(f"keeping {' and '.join(kept)} of {c['name']}{why}")
