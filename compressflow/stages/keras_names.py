"""The tf-keras losses and metrics a pipeline may name, in every spelling tf-keras accepts.

Plain data, no TensorFlow: validation checks names against these tables (with a did-you-mean) and
training stages build the objects from them (:mod:`compressflow.stages.losses`). A test keeps the
tables in sync with the installed tf-keras: every spelling must resolve there to its class (or the
function the class wraps), and every public loss and metric of tf-keras must be here.
"""

from __future__ import annotations

from dataclasses import dataclass

MINIMIZE, MAXIMIZE = "minimize", "maximize"


@dataclass(frozen=True)
class KerasMetric:
    """A tf-keras metric class: the name evaluate reports it under, which way is better, its spellings."""

    cls: str
    key: str
    goal: str
    spellings: tuple[str, ...] = ()
    # Constructor arguments without a default: the mapping form must give them.
    required: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.cls, *self.spellings)


#: Loss class -> the other spellings tf-keras' ``losses.get`` accepts for it (snake case, aliases).
LOSSES: dict[str, tuple[str, ...]] = {
    "BinaryCrossentropy": ("binary_crossentropy",),
    "BinaryFocalCrossentropy": ("binary_focal_crossentropy",),
    "CategoricalCrossentropy": ("categorical_crossentropy",),
    "CategoricalFocalCrossentropy": ("categorical_focal_crossentropy",),
    "CategoricalHinge": ("categorical_hinge",),
    "CosineSimilarity": ("cosine_similarity",),
    "Hinge": ("hinge",),
    "Huber": ("huber", "huber_loss"),
    "KLDivergence": ("kl_divergence", "kld", "KLD", "kullback_leibler_divergence"),
    "LogCosh": ("log_cosh", "logcosh"),
    "MeanAbsoluteError": ("mean_absolute_error", "mae", "MAE"),
    "MeanAbsolutePercentageError": ("mean_absolute_percentage_error", "mape", "MAPE"),
    "MeanSquaredError": ("mean_squared_error", "mse", "MSE"),
    "MeanSquaredLogarithmicError": ("mean_squared_logarithmic_error", "msle", "MSLE"),
    "Poisson": ("poisson",),
    "SparseCategoricalCrossentropy": ("sparse_categorical_crossentropy",),
    "SquaredHinge": ("squared_hinge",),
}

#: Losses that take ``from_logits`` (it is detected from the model's last activation unless given).
CROSS_ENTROPIES = frozenset({"BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
                             "CategoricalFocalCrossentropy", "SparseCategoricalCrossentropy"})

#: The task's accuracy, in the spellings Keras' ``compile`` resolves from the loss and the labels.
ACCURACY_SPELLINGS = ("accuracy", "acc", "Accuracy")

_METRICS = (
    KerasMetric("AUC", "auc", MAXIMIZE, ()),
    KerasMetric("BinaryAccuracy", "binary_accuracy", MAXIMIZE, ("binary_accuracy",)),
    KerasMetric("BinaryCrossentropy", "binary_crossentropy", MINIMIZE, ("binary_crossentropy",)),
    KerasMetric("BinaryIoU", "binary_io_u", MAXIMIZE),
    KerasMetric("CategoricalAccuracy", "categorical_accuracy", MAXIMIZE, ("categorical_accuracy",)),
    KerasMetric("CategoricalCrossentropy", "categorical_crossentropy", MINIMIZE, ("categorical_crossentropy",)),
    KerasMetric("CategoricalHinge", "categorical_hinge", MINIMIZE),
    KerasMetric("CosineSimilarity", "cosine_similarity", MAXIMIZE),
    KerasMetric("F1Score", "f1_score", MAXIMIZE),
    KerasMetric("FBetaScore", "fbeta_score", MAXIMIZE),
    KerasMetric("FalseNegatives", "false_negatives", MINIMIZE),
    KerasMetric("FalsePositives", "false_positives", MINIMIZE),
    KerasMetric("Hinge", "hinge", MINIMIZE, ("hinge",)),
    KerasMetric("IoU", "io_u", MAXIMIZE, required=("num_classes", "target_class_ids")),
    KerasMetric("KLDivergence", "kl_divergence", MINIMIZE, ("kl_divergence", "kld", "KLD",
                                                           "kullback_leibler_divergence")),
    KerasMetric("LogCoshError", "logcosh", MINIMIZE, ("logcosh", "log_cosh")),
    KerasMetric("MeanAbsoluteError", "mae", MINIMIZE, ("mae", "MAE", "mean_absolute_error")),
    KerasMetric("MeanAbsolutePercentageError", "mape", MINIMIZE, ("mape", "MAPE", "mean_absolute_percentage_error")),
    KerasMetric("MeanIoU", "mean_io_u", MAXIMIZE, required=("num_classes",)),
    KerasMetric("MeanRelativeError", "mean_relative_error", MINIMIZE, required=("normalizer",)),
    KerasMetric("MeanSquaredError", "mse", MINIMIZE, ("mse", "MSE", "mean_squared_error")),
    KerasMetric("MeanSquaredLogarithmicError", "msle", MINIMIZE, ("msle", "MSLE", "mean_squared_logarithmic_error")),
    KerasMetric("OneHotIoU", "one_hot_io_u", MAXIMIZE, required=("num_classes", "target_class_ids")),
    KerasMetric("OneHotMeanIoU", "one_hot_mean_io_u", MAXIMIZE, required=("num_classes",)),
    KerasMetric("Poisson", "poisson", MINIMIZE, ("poisson",)),
    KerasMetric("Precision", "precision", MAXIMIZE),
    KerasMetric("PrecisionAtRecall", "precision_at_recall", MAXIMIZE, required=("recall",)),
    KerasMetric("R2Score", "r2", MAXIMIZE),
    KerasMetric("Recall", "recall", MAXIMIZE),
    KerasMetric("RecallAtPrecision", "recall_at_precision", MAXIMIZE, required=("precision",)),
    KerasMetric("RootMeanSquaredError", "rmse", MINIMIZE),
    KerasMetric("SensitivityAtSpecificity", "sensitivity_at_specificity", MAXIMIZE, required=("specificity",)),
    KerasMetric("SparseCategoricalAccuracy", "sparse_categorical_accuracy", MAXIMIZE,
                ("sparse_categorical_accuracy",)),
    KerasMetric("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy", MINIMIZE,
                ("sparse_categorical_crossentropy",)),
    KerasMetric("SparseTopKCategoricalAccuracy", "sparse_top_k_categorical_accuracy", MAXIMIZE,
                ("sparse_top_k_categorical_accuracy",)),
    KerasMetric("SpecificityAtSensitivity", "specificity_at_sensitivity", MAXIMIZE, required=("sensitivity",)),
    KerasMetric("SquaredHinge", "squared_hinge", MINIMIZE, ("squared_hinge",)),
    KerasMetric("TopKCategoricalAccuracy", "top_k_categorical_accuracy", MAXIMIZE, ("top_k_categorical_accuracy",)),
    KerasMetric("TrueNegatives", "true_negatives", MAXIMIZE),
    KerasMetric("TruePositives", "true_positives", MAXIMIZE),
)

#: Metric class -> its entry.
METRICS: dict[str, KerasMetric] = {metric.cls: metric for metric in _METRICS}

#: tf-keras metrics that are no metric by name alone (bases and wrappers that need a function).
NOT_NAMEABLE_METRICS = frozenset({"Metric", "Mean", "Sum", "MeanTensor", "MeanMetricWrapper"})
#: tf-keras metric functions without a metric class (focal losses): not offered as metrics; use them as `loss`.
FUNCTION_ONLY_METRICS = frozenset({"binary_focal_crossentropy", "categorical_focal_crossentropy"})

#: Metrics that judge class decisions: they do not apply to a regression.
CLASS_METRICS = frozenset({
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "precision", "recall",
    "f1_score", "fbeta_score", "binary_io_u", "io_u", "mean_io_u", "one_hot_io_u", "one_hot_mean_io_u",
    "true_positives", "true_negatives", "false_positives", "false_negatives", "precision_at_recall",
    "recall_at_precision", "sensitivity_at_specificity", "specificity_at_sensitivity",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
})

_LOSS_BY_SPELLING = {spelling: cls for cls, spellings in LOSSES.items() for spelling in (cls, *spellings)}
_METRIC_BY_SPELLING = {spelling: metric for metric in _METRICS for spelling in metric.names}


def loss_class(name: str) -> str | None:
    """The tf-keras loss class ``name`` spells (``mse`` -> ``MeanSquaredError``), or None."""
    return _LOSS_BY_SPELLING.get(name)


def metric_entry(name: str) -> KerasMetric | None:
    """The tf-keras metric ``name`` spells (``mae`` -> MeanAbsoluteError's entry), or None (also for accuracy)."""
    return _METRIC_BY_SPELLING.get(name)


def is_accuracy(name: str) -> bool:
    """Whether ``name`` asks for the task's accuracy (``accuracy``, ``acc``)."""
    return name in ACCURACY_SPELLINGS


def loss_spellings() -> list[str]:
    """Every loss spelling, for did-you-mean."""
    return list(_LOSS_BY_SPELLING)


def metric_spellings() -> list[str]:
    """Every metric spelling (accuracy included), for did-you-mean."""
    return [*ACCURACY_SPELLINGS, *_METRIC_BY_SPELLING]
