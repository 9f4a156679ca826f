"""``quantize``: quantization-aware training (Keras out) or post-training conversion (TFLite out).

* ``qat`` trains a fake-quant copy of the model (tfmot) and outputs it as a Keras
  model (``model.h5``, meta ``qat: true``). A following ``quantize`` stage converts it:
  any optimising method then gives an int8 model that uses the trained ranges.
* ``float32``, ``dynamic``, ``float16``, ``int8``, ``int16x8`` convert with the TFLite
  converter and output ``model.tflite``. Calibration (``int8``, ``int16x8``) uses the
  first ``representative_samples`` samples of the training split, whose order is
  fixed by the pipeline seed, so two conversions give the same bytes. ``int8``, ``int16x8``
  and ``dynamic`` (with ``data``) also write the per-layer numerics (``numerics.json``, as
  ``litert`` does); ``float16`` gets none (see converter_numerics).
* ``litert`` quantizes a float TFLite model (converted here from a Keras input, or given by a
  ``float32`` stage) with LiteRT Quantizer: a named ``recipe`` or per-layer ``rules`` (int8 / int4
  weights, dynamic or static activations, channel- or block-wise), writes the per-layer numerics
  (``numerics.json``) and can keep the worst layers in float (``keep_float``); see litert_run.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, TFLITE_MODEL, DatasetName, Stage, StageName
from compressflow.stages.code_sets import TF_CODE, TFLITE_CODE
from compressflow.stages.litert_recipes import KeepFloat, LiteRTRule, RecipeName, recipe_is_static
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import LayerSelection, TrainingOptions
from compressflow.stages.registry import register_stage
from compressflow.stages.saved_model import SAVED_MODEL

METHODS_NEEDING_DATA = ("qat", "int8", "int16x8")
# Fields of method qat only: kept out of the cache keys of conversions.
QAT_FIELDS = ("epochs", "batch_size", "optimizer", "learning_rate", "early_stopping", "batchnorm",
              "include", "exclude", "quantize_configs", "loss", "metrics")
QuantizeConfigSpec = Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]
LITERT_FIELDS = ("recipe", "rules", "keep_float", "numerics_samples")
# Fields of the per-layer numerics, in the keys of the methods that measure them.
NUMERICS_FIELDS = ("numerics", "numerics_samples")
LITERT_LIBRARIES = ("ai-edge-litert", "litert-quantizer")
LITERT_CODE = ("compressflow.stages.litert_recipes", "compressflow.stages.litert_run",
               "compressflow.stages.litert_quantize", "compressflow.stages.litert_graph",
               "compressflow.stages.litert_numerics", "compressflow.stages.litert_keep_float",
               "compressflow.stages.measure", "compressflow.stages.converter_numerics")
# Methods a QAT model cannot be converted with: float16 silently gives int8, int16x8 fails.
METHODS_REFUSING_QAT = ("float16", "int16x8")
TFLITE_FILE = "model.tflite"


@register_stage
class QuantizeStage(LayerSelection, TrainingOptions, Stage):
    """`qat` gives a Keras model; `float32`, `dynamic`, `float16`, `int8`, `int16x8`, `litert` give a TFLite model."""

    example: ClassVar[str] = """\
model: pruned
method: int8
data: digits
representative_samples: 200
"""
    produces: ClassVar[str] = TFLITE_MODEL  # KERAS_MODEL for qat: see output_kind()
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE + TFLITE_CODE + ("compressflow.stages.qat",) + LITERT_CODE

    type: Literal["quantize"] = "quantize"
    model: StageName
    method: Literal["qat", "float32", "dynamic", "float16", "int8", "int16x8", "litert"] = Field(
        description="`qat` (training), or a post-training conversion; `float32` converts without quantizing; "
                    "`litert` quantizes the float TFLite model with LiteRT Quantizer (`recipe` or `rules`).")
    data: DatasetName | None = Field(
        None, description="Training data (qat), representative samples (int8, int16x8, static litert), "
                          "validation samples (per-layer numerics, litert keep_float).")
    scheme: Literal["default", "prune_preserving", "cluster_preserving", "prune_cluster_preserving"] = Field(
        "default", description="QAT scheme; the preserving ones keep sparsity and/or clusters.")
    representative_samples: int = Field(200, ge=1, le=1_000_000,
                                        description="Samples used to calibrate int8 / int16x8 ranges.")
    int8_io: bool = Field(False, description="int8: make the model's input and output int8 too.")
    epochs: int = Field(2, ge=0, le=100_000, description="QAT epochs.")
    learning_rate: float = Field(1e-4, gt=0.0, le=10.0, description="QAT learning rate.")
    quantize_configs: dict[str, QuantizeConfigSpec] = Field(
        default_factory=dict,
        description="qat: layer name pattern -> `module:Class`, a tfmot QuantizeConfig of yours that quantizes the "
                    "layers it matches (custom layers); the module is found beside the pipeline or installed.",
        examples=[{"my_block*": "my_quantize:MyBlockConfig"}])
    recipe: RecipeName | None = Field(None, description="litert: one of LiteRT Quantizer's named recipes.")
    rules: list[LiteRTRule] | None = Field(
        None, min_length=1, description="litert: per-layer settings, applied in order (a later rule wins).")
    keep_float: KeepFloat | None = Field(
        None, description="litert: keep the layers that add the most error in float, a number of them or "
                          "until the accuracy drop is within a bound.")
    numerics_samples: int = Field(32, ge=1, le=10_000,
                                  description="litert, int8, int16x8, dynamic: validation samples of `data` the "
                                              "per-layer numerics are measured on.")
    numerics: bool = Field(
        True, description="int8, int16x8, dynamic: write the per-layer numerics (`numerics.json`) against the float "
                          "model, on `data`'s validation samples (without `data` there are none: random inputs "
                          "would rank layers on data the model never sees). None for float16: its dequantized "
                          "weights take tensor names the float model uses for others, so the two cannot be compared "
                          "tensor by tensor. litert always writes them.")

    @model_validator(mode="after")
    def _data_when_needed(self):
        if self.method in METHODS_NEEDING_DATA and self.data is None:
            raise ValueError(f"method {self.method!r} needs 'data'")
        if self.int8_io and self.method != "int8":
            raise ValueError("'int8_io' goes with method 'int8'")
        if self.scheme != "default" and self.method != "qat":
            raise ValueError("'scheme' goes with method 'qat'")
        if self.method == "qat" and self.epochs == 0:
            raise ValueError("method 'qat' needs at least 1 epoch: its quantization ranges are learned in training")
        given = [name for name in ("include", "exclude", "quantize_configs") if getattr(self, name)]
        if given and self.method != "qat":
            raise ValueError(f"{' and '.join(map(repr, given))} go{'es' if len(given) == 1 else ''} with method 'qat'")
        self._litert_fields()
        return self

    def _litert_fields(self) -> None:
        if self.method == "litert" and not self.numerics:
            raise ValueError("method 'litert' always measures the per-layer numerics (keep_float ranks by them); "
                             "remove 'numerics: false'")
        if self.method != "litert":
            given = [name for name in ("recipe", "rules", "keep_float") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{' and '.join(map(repr, given))} go{'es' if len(given) == 1 else ''} with "
                                 "method 'litert'")
            return
        if (self.recipe is None) == (self.rules is None):
            raise ValueError("method 'litert' needs exactly one of 'recipe' (a LiteRT Quantizer recipe, e.g. "
                             "weight_only_wi4_afp32) or 'rules' (per-layer settings)")
        if self.data is None:
            if self.recipe is not None and recipe_is_static(self.recipe):
                raise ValueError(f"recipe {self.recipe!r} quantizes activations: it needs 'data' to calibrate "
                                 "their ranges on")
            static = [str(i) for i, rule in enumerate(self.rules or []) if rule.is_static]
            if static:
                raise ValueError(f"rules[{', '.join(static)}] quantize{'s' if len(static) == 1 else ''} activations "
                                 "to integers: the stage needs 'data' to calibrate their ranges on")
            if self.keep_float is not None and self.keep_float.max_accuracy_drop is not None:
                raise ValueError("keep_float.max_accuracy_drop needs 'data' to measure accuracy on")

    def key_config(self):
        config = super().key_config()
        if self.method != "qat":  # training options do not change a conversion
            for name in QAT_FIELDS:
                config.pop(name, None)
        if self.method != "litert":  # NOTE: keeps the keys of converter stages as they were
            for name in LITERT_FIELDS:
                config.pop(name, None)
        config.pop("numerics", None)  # NOTE: litert always measures; other methods add it back below
        if self._measures_numerics():
            config.update({name: getattr(self, name) for name in NUMERICS_FIELDS})
        return config

    def _measures_numerics(self) -> bool:
        """Whether a converter method writes the per-layer numerics (which makes them part of its output)."""
        from compressflow.stages.converter_numerics import NUMERICS_METHODS

        return self.method in NUMERICS_METHODS and self.data is not None

    @property
    def libraries(self) -> tuple[str, ...]:  # type: ignore[override]
        """Distributions whose versions are in the cache key: LiteRT Quantizer's for ``litert`` and numerics."""
        measured = self._measures_numerics() and self.numerics  # NOTE: LiteRT Quantizer compares the models
        return TF_LIBRARIES + LITERT_LIBRARIES if self.method == "litert" or measured else TF_LIBRARIES

    def trains_keras_layers(self) -> bool:
        return self.method == "qat"

    def check(self, env) -> list:
        """The modules of ``quantize_configs`` must be there (beside the pipeline or installed)."""
        from compressflow.stages.base import FieldProblem
        from compressflow.user_modules import find_module_source

        problems = super().check(env)
        for spec in dict.fromkeys(self.quantize_configs.values()):
            module = spec.partition(":")[0]
            if find_module_source(module, env.pipeline_dir) is None:
                problems.append(FieldProblem("quantize_configs", (
                    f"quantize config {spec!r}: no module {module!r} (not beside the pipeline in {env.pipeline_dir} "
                    f"and not installed); put {module.replace('.', '/')}.py next to the pipeline file, or install "
                    "it")))
        return problems

    def fingerprint(self, env) -> dict[str, Any]:
        """The source of the modules of ``quantize_configs`` and of a ``module:function`` loss or metric
        (found without importing them)."""
        from compressflow.user_modules import module_source_fingerprint

        found = super().fingerprint(env)
        if not self.quantize_configs:
            return found
        return {**found, "quantize_configs": {
            spec: module_source_fingerprint(spec.partition(":")[0], env.pipeline_dir)
            for spec in sorted(set(self.quantize_configs.values()))}}

    def output_kind(self) -> str:
        """The artifact kind this configuration outputs."""
        return KERAS_MODEL if self.method == "qat" else TFLITE_MODEL

    def run(self, ctx) -> None:
        from compressflow.stages import keras_artifacts
        from compressflow.stages.tfutil import seed_everything

        if self.method == "litert":
            from compressflow.stages.litert_run import run_litert

            seed_everything(ctx.seed)
            run_litert(self, ctx)
            return
        source = ctx.input("model")
        if source.kind == SAVED_MODEL:
            self._convert_saved_model(source, ctx)
            return
        if source.kind != KERAS_MODEL:
            raise StageFailed(
                f"quantize stage {ctx.name!r} needs a Keras model, but {source.stage!r} gives a {source.kind}"
                + (" (already converted); quantize the Keras model it was converted from"
                   if source.kind == TFLITE_MODEL else ""))
        from_qat = keras_artifacts.is_qat(source)
        if from_qat and self.method == "qat":
            raise StageFailed(f"{source.stage!r} is already a quantization-aware model; "
                              "convert it with a post-training method (dynamic or int8)")
        if from_qat and self.method in METHODS_REFUSING_QAT:
            raise StageFailed(
                f"{source.stage!r} is a quantization-aware model: it carries int8 ranges and converts to int8 "
                "only (the converter turns a float16 request into int8 and cannot do int16x8 of it); "
                "use method dynamic or int8")
        seed_everything(ctx.seed)
        model = keras_artifacts.load_keras_artifact(source)
        if self.method == "qat":
            self._train_quantization_aware(model, ctx)
        else:
            from compressflow.stages import tflite_convert

            self._convert(functools.partial(tflite_convert.convert_keras_model, model), ctx, from_qat=from_qat)

    def _convert_saved_model(self, source, ctx) -> None:
        """Post-training conversion of a plain SavedModel (it has no Keras layers to train)."""
        from compressflow.stages import saved_model, saved_model_run
        from compressflow.stages.tfutil import seed_everything

        if self.method == "qat":
            raise StageFailed(saved_model.why_not_trainable("quantize with method qat", source.stage))
        seed_everything(ctx.seed)
        self._convert(saved_model_run.converter_for(source, self.data), ctx, from_qat=False)

    def _splits(self, ctx):
        from compressflow.data.datasets import load_splits

        return load_splits(ctx.dataset(self.data), ctx.env)

    def _train_quantization_aware(self, model, ctx) -> None:
        from compressflow.stages import keras_artifacts, keras_training, layer_selection, qat, tfutil
        from compressflow.stages.batchnorm import batchnorm_mode
        from compressflow.stages.objective import training_objective

        source = ctx.input("model")
        from_logits = tfutil.outputs_logits(model)
        splits = self._splits(ctx)
        keras_training.check_data_fits(model, splits, self.data)
        objective = training_objective(self, model, splits, ctx, from_logits=from_logits)
        plan = qat.plan_layers(model, include=self.include, exclude=self.exclude, configs=self.quantize_configs)
        plan.log_float_layers(ctx.log, layer_selection.details_printer(ctx.name))
        quantized = qat.make_quantization_aware(model, self.scheme, plan)
        ctx.log(f"quantization-aware training of {len(plan.quantized)} layers, scheme {self.scheme}, "
                f"{self.epochs} epochs")
        with batchnorm_mode(quantized, self.batchnorm, ctx.log):
            keras_training.compile_model(quantized, optimizer=self.optimizer, learning_rate=self.learning_rate,
                                         objective=objective)
            history = keras_training.fit(quantized, splits, ctx, epochs=self.epochs, batch_size=self.batch_size,
                                         early_stopping=self.early_stopping, learning_rate=self.learning_rate)
        if self.scheme != "default":
            quantized = qat.as_default_scheme(quantized, keras_artifacts.load_keras_artifact(source), self.scheme,
                                              plan)
        final = keras_training.evaluate(quantized, splits, objective=objective)
        ctx.log("after QAT: " + ", ".join(f"{name} {value:.4f}" for name, value in sorted(final.items())))
        carried = {"trusted": True} if source.meta.get("trusted") else {}
        configs = {"quantize_configs": sorted(set(plan.configs.values()))} if plan.configs else {}
        keras_artifacts.save_qat_model(quantized, ctx, method="qat", scheme=self.scheme,
                                       epochs_run=history["epochs_run"], quantized_layers=plan.quantized,
                                       float_layers=plan.float_layers, **final, **carried, **configs)

    def _convert(self, convert, ctx, *, from_qat: bool) -> None:
        """Write ``convert(method, samples=..., int8_io=...)``'s TFLite model as the output."""
        from compressflow.stages import tflite_convert
        from compressflow.stages.converter_numerics import write_numerics
        from compressflow.stages.tflite_describe import describe_tflite

        samples = None
        if self.method in tflite_convert.CALIBRATED_METHODS:
            splits = self._splits(ctx)
            samples = (splits.calibration_samples(self.representative_samples) if getattr(splits, "streaming", False)
                       else tflite_convert.representative_samples(splits.x_train, self.representative_samples))
            if len(samples) < self.representative_samples:
                ctx.log(f"the training split has {len(samples)} samples; calibrating on all of them")
        flatbuffer = convert(self.method, samples=samples, int8_io=self.int8_io)
        path = ctx.out_dir / TFLITE_FILE
        path.write_bytes(flatbuffer)
        description = describe_tflite(path)
        ctx.log(f"{self.method}: {len(flatbuffer)} bytes, weights {', '.join(description['weight_dtypes'])}, "
                f"input {description['input']['dtype']}, output {description['output']['dtype']}")
        numerics = write_numerics(self, ctx, convert, flatbuffer, from_qat=from_qat)
        ctx.set_output(TFLITE_MODEL, TFLITE_FILE, method=self.method, from_qat=from_qat,
                       representative_samples=None if samples is None else len(samples), **description, **numerics)
