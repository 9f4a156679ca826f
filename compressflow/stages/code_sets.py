"""The helper modules the built-in stage types run, for their ``code_dependencies``.

Each list holds, at any depth, the compressflow modules a stage's ``run`` calls into, so an
edit to any of them changes the cache keys of the stages that use it (tests/executor checks
the lists against the imports). Plain names only: nothing is imported from here.
"""

from __future__ import annotations

#: What every TensorFlow stage goes through: ``tfutil``, model files, training and what they call.
TF_CODE = (
    "compressflow.stages.tfutil", "compressflow.stages.model_io", "compressflow.stages.keras_training",
    "compressflow.stages.layer_selection", "compressflow.stages.prune", "compressflow.stages.options",
    "compressflow.stages.batchnorm", "compressflow.stages.saved_model",
    "compressflow.data.datasets", "compressflow.data.checks", "compressflow.models.safety",
    "compressflow.data.streams", "compressflow.data.function_result", "compressflow.data.tfrecord",
    "compressflow.data.preprocessing",
    "compressflow.data.image_folder", "compressflow.data.decoded_images",
    "compressflow.models.file_limits", "compressflow.stages.model_trust", "compressflow.user_modules",
    "compressflow.fingerprints",
    # losses, metrics and the task behind them
    "compressflow.stages.losses", "compressflow.stages.keras_names", "compressflow.stages.tasks",
    "compressflow.stages.objective", "compressflow.stages.prediction_metrics", "compressflow.stages.metric_values",
    "compressflow.stages.measure",
)

#: Measuring models (evaluate, and what reads its metrics).
EVALUATE_CODE = TF_CODE + (
    "compressflow.stages.gates", "compressflow.stages.model_measurements", "compressflow.stages.measure",
    "compressflow.stages.keras_artifacts", "compressflow.stages.litert_runner", "compressflow.stages.tflite_weights",
    "compressflow.stages.report_table", "compressflow.stages.qat", "compressflow.stages.saved_model_run",
    "compressflow.stages.tflite_convert", "compressflow.stages.machine", "compressflow.stages.numerics_lines",
)

#: Converting to TFLite and describing the result.
TFLITE_CODE = (
    "compressflow.stages.keras_artifacts", "compressflow.stages.tflite_convert", "compressflow.stages.tflite_describe",
    "compressflow.stages.tflite_weights", "compressflow.stages.litert_runner", "compressflow.stages.qat",
    "compressflow.stages.saved_model_run", "compressflow.stages.measure",
)
