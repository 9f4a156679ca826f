"""``cluster``: tfmot weight clustering (optionally sparsity preserving); stripped output."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.code_sets import TF_CODE
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import LayerSelection, TrainingOptions
from compressflow.stages.registry import register_stage


@register_stage
class ClusterStage(LayerSelection, TrainingOptions, Stage):
    """Share weights among `number_of_clusters` centroids per layer, then fine-tune."""

    example: ClassVar[str] = """\
model: pruned
data: digits
number_of_clusters: 16
preserve_sparsity: true
epochs: 3
"""
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE

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
        from compressflow.data.datasets import load_splits
        from compressflow.stages import keras_training, layer_selection, model_io, tfutil
        from compressflow.stages.batchnorm import batchnorm_mode
        from compressflow.stages.objective import training_objective, validation_summary

        tfutil.seed_everything(ctx.seed)
        model = model_io.load_input_model(ctx)
        splits = load_splits(ctx.dataset(self.data), ctx.env)
        keras_training.check_data_fits(model, splits, self.data)
        objective = training_objective(self, model, splits, ctx)
        wrapped, clustered, skipped = cluster_layers(model, self, ctx.log, layer_selection.details_printer(ctx.name))
        with batchnorm_mode(wrapped, self.batchnorm, ctx.log):
            keras_training.compile_model(wrapped, optimizer=self.optimizer, learning_rate=self.learning_rate,
                                         objective=objective)
            training = keras_training.fit(wrapped, splits, ctx, epochs=self.epochs, batch_size=self.batch_size,
                                          early_stopping=self.early_stopping, learning_rate=self.learning_rate)
        stripped = tfutil.tfmot().clustering.keras.strip_clustering(wrapped)
        stats = tfutil.kernel_stats(stripped)
        unique = {name: s["unique"] for name, s in stats.items() if name.split("/")[0] in clustered}
        final = keras_training.evaluate(stripped, splits, objective=objective)
        sparsity = tfutil.overall_sparsity(stats)
        ctx.log("unique weights " + ", ".join(f"{name} {count}" for name, count in unique.items())
                + f"; sparsity {sparsity:.4f}; {validation_summary(final)}")
        ctx.write_json("metrics.json", {**final, "unique_weights": unique, "sparsity": sparsity,
                                        "number_of_clusters": self.number_of_clusters, "skipped": skipped,
                                        "epochs_run": training["epochs_run"], "history": training["history"],
                                        "kernels": stats})
        model_io.save_keras_model(stripped, ctx, unique_weights=unique, sparsity=sparsity,
                                  **{key: final[key] for key in ("accuracy", "val_accuracy") if key in final})


# --------------------------------------------------------------------------- helpers (TensorFlow inside)


def _why_not_clusterable(layer, stage: ClusterStage) -> str | None:
    """None when tfmot can cluster ``layer``'s kernel, else the reason it is left alone."""
    from tensorflow_model_optimization.python.core.clustering.keras import clusterable_layer, clustering_registry

    registry = clustering_registry.ClusteringRegistry
    if isinstance(layer, clusterable_layer.ClusterableLayer):
        return None
    if not registry.supports(layer):
        return "not supported by tfmot clustering"
    if not registry._weight_names(layer):
        return "has no clusterable weights"
    size = sum(int(v.shape.num_elements()) for _, v in kernel_variables_of(layer))
    if size <= stage.number_of_clusters:
        return f"its {size} weights are not more than {stage.number_of_clusters} clusters"
    return None


def kernel_variables_of(layer):
    """(name, variable) of a single layer's kernels."""
    from compressflow.stages.tfutil import KERNEL_NAMES, weight_short_name

    return [(weight_short_name(v), v) for v in layer.weights if weight_short_name(v) in KERNEL_NAMES]


def cluster_layers(model, stage: ClusterStage, log, details=None):
    """Wrap the selected, clusterable layers of ``model`` with ``cluster_weights``.

    Returns ``(wrapped model, names of clustered layers, {skipped layer: reason})``; layers
    skipped for one reason are logged in one line, their names go to ``details``.
    """
    from compressflow.stages.layer_selection import wrap_selected_layers
    from compressflow.stages.tfutil import tfmot

    clustering = tfmot().clustering.keras
    init = getattr(clustering.CentroidInitialization, stage.centroid_init.upper())
    # NOTE: cluster_weights forwards preserve_sparsity to the wrapper (zero kept as one of the centroids).
    wrapped, clustered, skipped = wrap_selected_layers(
        model, stage, lambda layer: _why_not_clusterable(layer, stage),
        lambda layer: clustering.cluster_weights(layer, number_of_clusters=stage.number_of_clusters,
                                                 cluster_centroids_init=init,
                                                 preserve_sparsity=stage.preserve_sparsity),
        "clustering", log, details)
    if not clustered:
        listed = "; ".join(f"{name}: {why}" for name, why in skipped.items()) or "the model has no weights"
        raise StageFailed(f"no layer to cluster ({listed})")
    log(f"clustering {', '.join(clustered)} into {stage.number_of_clusters} clusters"
        + (" (zeros kept)" if stage.preserve_sparsity else ""))
    return wrapped, clustered, skipped
