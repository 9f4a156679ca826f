"""``export``: write a model outside the cache (keras, saved_model, tflite) with a sidecar JSON.

``run`` (cached like any stage) prepares the export in the cache entry: the model
file or SavedModel directory, and ``sidecar.json`` with the chain of resolved stage
configs and cache keys, the model's metrics (from the ``metrics`` evaluate stage),
the search that chose the model if one did, the versions of the libraries in the
lineage's keys and the sha256 of the export. The sidecar holds no time, so
it is the same bytes whenever the export is: TFLite files are reproducible; a
``.keras`` file records when it was saved and a SavedModel holds generated function
names, so their sha256 (and the sidecar) differ between two cold runs.

``publish`` (TensorFlow-free, called on every run, cached or not) copies both to
``to`` and ``<to>.json``, atomically.

Formats: ``keras`` gives the model in the Keras it came in: a model loaded from Keras 3
is translated back and saved by Keras 3 (``import keras`` loads it), any other is the
tf-keras file; ``tf_keras`` always copies the tf-keras file (a quantization-aware model is
HDF5: ``.h5``); ``saved_model`` exports an inference SavedModel (``Model.export``);
``tflite`` copies a TFLite input, or converts a Keras input: a float32 conversion,
or for a quantization-aware model an int8 conversion with its trained ranges.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path, PurePath
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressflow.errors import StageFailed, UsageError
from compressflow.stages.base import (FILES, KERAS_MODEL, METRICS, MODEL_KINDS, TFLITE_MODEL, Stage, StageName,
                                      tree_sha256)
from compressflow.stages.code_sets import EVALUATE_CODE, TFLITE_CODE
from compressflow.stages.export_record import SEARCH_META, lineage_versions, search_record
from compressflow.stages.load import KERAS3_CODE, KERAS3_LIBRARIES
from compressflow.stages.registry import register_stage

SIDECAR_FILE = "sidecar.json"
SAVED_MODEL_DIR = "saved_model"
KERAS_SUFFIXES = (".keras", ".h5")
KERAS_FORMATS = ("keras", "tf_keras")


@register_stage
class ExportStage(Stage):
    """Copy a model to `to`, relative to the pipeline file's folder, on every run."""

    example: ClassVar[str] = """\
model: pruned
format: keras
to: out/pruned.keras
"""
    produces: ClassVar[str] = FILES
    libraries: ClassVar[tuple[str, ...]] = KERAS3_LIBRARIES
    code_dependencies: ClassVar[tuple[str, ...]] = EVALUATE_CODE + TFLITE_CODE + KERAS3_CODE + (
        "compressflow.stages.evaluate", "compressflow.stages.publish", "compressflow.stages.export_record")
    key_exclude: ClassVar[frozenset[str]] = frozenset({"to", "allow_outside"})
    always_publish: ClassVar[bool] = True

    type: Literal["export"] = "export"
    model: StageName
    format: Literal["keras", "tf_keras", "saved_model", "tflite"] | None = Field(
        None, description="Output format (default: the model's own: keras for Keras models, tflite for TFLite). "
                          "`keras` gives a model loaded from Keras 3 back as a Keras 3 file; `tf_keras` writes "
                          "the tf-keras (Keras 2) file whatever the model came from.")
    to: str = Field(description="Target path, relative to the pipeline file's folder; the sidecar goes to "
                                "`<to>.json`.", examples=["out/digits-int8.tflite"])
    allow_outside: bool = Field(False, description="Allow `to` outside the pipeline's folder.")
    metrics: StageName | None = Field(
        None, description="An evaluate stage whose metrics for this model go into the sidecar.")

    @model_validator(mode="after")
    def _target_fits_format(self):
        suffix = PurePath(self.to).suffix.lower()
        if self.format in KERAS_FORMATS and suffix not in KERAS_SUFFIXES:
            raise ValueError(f"format {self.format!r} needs a target ending in .keras (or .h5 for a QAT model), "
                             f"not {self.to!r}")
        if self.format == "saved_model" and suffix in (*KERAS_SUFFIXES, ".tflite"):
            raise ValueError(f"format 'saved_model' writes a directory; {self.to!r} looks like a file name")
        return self

    def check(self, env) -> list:
        """Refuse a target outside the pipeline's folder before anything runs (unless allowed)."""
        from compressflow.stages.base import FieldProblem

        problems = super().check(env)
        if not self.allow_outside:
            try:
                env.resolve_path(self.to, what="export target")
            except (UsageError, OSError, ValueError) as exc:
                problems.append(FieldProblem("to", f"{exc}, or set `allow_outside: true` on this stage"))
        return problems

    @classmethod
    def check_pipeline(cls, stages: dict) -> list[tuple[str, str, str]]:
        """Two exports may not write the same file (e.g. one export fanned out over a sweep)."""
        writers: dict[str, list[str]] = {}
        for name, stage in stages.items():
            if isinstance(stage, cls):
                writers.setdefault(os.path.normpath(stage.to), []).append(name)
        problems = []
        for names in writers.values():
            if len(names) > 1:
                shown = ", ".join(f"'{name}'" for name in names[:3]) + (" ..." if len(names) > 3 else "")
                problems.append((names[1], "to", f"{len(names)} export stages write {stages[names[0]].to!r} ({shown}); "
                                 "an export that uses a swept stage is repeated for every variant: export one "
                                 "variant, or the choice of a select stage"))
        return problems

    # -- run: prepare the export in the cache entry -----------------------------------

    def run(self, ctx) -> None:
        source = ctx.input("model")
        if source.kind not in MODEL_KINDS:
            raise StageFailed(f"export stage {ctx.name!r}: {source.stage!r} gives {source.kind}, not a model")
        fmt = self.format or ("keras" if source.kind == KERAS_MODEL else "tflite")
        if fmt != "tflite" and source.kind == TFLITE_MODEL:
            raise StageFailed(f"export stage {ctx.name!r}: {source.stage!r} is a TFLite model; "
                              f"it can only be exported as tflite, not {fmt}")
        exported, conversion = _EXPORTERS[fmt](source, ctx)
        sha256 = tree_sha256(ctx.out_dir / exported)
        search = search_record(ctx, source)
        ctx.write_json(SIDECAR_FILE, {
            "format": fmt,
            "conversion": conversion,
            "sha256": sha256,
            "model": {"stage": source.stage, "key": source.key, "kind": source.kind,
                      "meta": {k: v for k, v in source.meta.items() if k not in ("file", SEARCH_META)}},
            "lineage": ctx.lineage,
            # A selected model was measured under the name of the candidate it copies.
            "metrics": self._metrics(ctx, source.meta.get("selected", source.stage)),
            "search": search,
            "versions": lineage_versions(ctx, search),
        })
        ctx.log(f"{fmt} export of {source.stage!r} ready ({conversion}); sha256 {sha256[:12]}")
        ctx.set_output(FILES, exported, format=fmt, sidecar=SIDECAR_FILE, sha256=sha256,
                       is_directory=(ctx.out_dir / exported).is_dir())

    def _metrics(self, ctx, model_stage: str) -> dict[str, Any] | None:
        if self.metrics is None:
            return None
        from compressflow.stages.evaluate import read_metrics

        artifact = ctx.input("metrics")
        if artifact.kind != METRICS:
            raise StageFailed(f"export stage {ctx.name!r}: 'metrics' must name an evaluate stage; "
                              f"{artifact.stage!r} gives {artifact.kind}")
        baseline, models = read_metrics(artifact)
        if model_stage not in models:
            raise StageFailed(f"export stage {ctx.name!r}: evaluate stage {artifact.stage!r} did not measure "
                              f"{model_stage!r} (it measured {', '.join(sorted(models)) or 'nothing'}); "
                              f"add {model_stage!r} to its models")
        return {"stage": artifact.stage, "key": artifact.key, "baseline": baseline, "values": models[model_stage]}

    # -- publish: copy from the cache entry to `to`, every run -------------------------

    def publish(self, output, env) -> list[Path]:
        """Copy the export and its sidecar to ``to`` (and ``<to>.json``), atomically."""
        from compressflow.stages.publish import publish_export, resolve_target

        target = resolve_target(self.to, env, allow_outside=self.allow_outside, stage=output.stage)
        exported = output.file()
        if output.meta.get("format") in KERAS_FORMATS and target.suffix.lower() != exported.suffix:
            raise UsageError(f"export stage {output.stage!r}: the Keras model is a {exported.suffix} file "
                             f"({'a quantization-aware model is saved as HDF5; ' if exported.suffix == '.h5' else ''}"
                             f"name the target {target.with_suffix(exported.suffix).name!r}, not {target.name!r})")
        return publish_export(exported, output.file(output.meta["sidecar"]), target)


# --------------------------------------------------------------------------- exporters


def _export_tf_keras(source, ctx) -> tuple[str, str]:
    name = source.file().name
    shutil.copyfile(source.file(), ctx.out_dir / name)
    return name, "copy"


def _export_keras(source, ctx) -> tuple[str, str]:
    """The model in the Keras it came in: translated back to Keras 3 when it was loaded from Keras 3."""
    from compressflow.models import keras3

    if source.meta.get(keras3.ORIGIN_KEY) != keras3.KERAS3_ORIGIN:
        return _export_tf_keras(source, ctx)
    from compressflow.stages.keras_artifacts import is_qat, load_keras_artifact
    from compressflow.stages.tfutil import KERAS_FILE

    if is_qat(source):
        raise StageFailed(f"export stage {ctx.name!r}: {source.stage!r} is a quantization-aware model, whose "
                          "tfmot layers exist only in tf-keras, so it cannot be given back as Keras 3; export it "
                          "with `format: tf_keras` (an .h5 file), or convert it with a quantize stage and export "
                          "`format: tflite`")
    try:
        translation = keras3.save_as_keras3(load_keras_artifact(source), ctx.out_dir / KERAS_FILE)
    except keras3.KerasTranslationError as exc:
        raise keras3.KerasTranslationError(f"export stage {ctx.name!r}: {source.stage!r} came from Keras 3 but "
                                           f"cannot be given back as Keras 3: {exc}; export it with "
                                           "`format: tf_keras` instead") from exc
    version, loaded = keras3.keras3().__version__, source.meta.get(keras3.ORIGIN_VERSION_KEY)
    came_from = f" (the model came from Keras {loaded})" if loaded and loaded != version else ""
    return KERAS_FILE, f"translated back to Keras {version}{came_from}: {translation.describe()}"


def _export_saved_model(source, ctx) -> tuple[str, str]:
    from compressflow.stages.keras_artifacts import load_keras_artifact

    model = load_keras_artifact(source)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # NOTE: Model.export prints its endpoints
        model.export(str(ctx.out_dir / SAVED_MODEL_DIR))
    return SAVED_MODEL_DIR, "Model.export (inference SavedModel, endpoint 'serve')"


def _export_tflite(source, ctx) -> tuple[str, str]:
    from compressflow.stages.tfutil import TFLITE_FILE

    target = ctx.out_dir / TFLITE_FILE
    if source.kind == TFLITE_MODEL:
        shutil.copyfile(source.file(), target)
        return TFLITE_FILE, "copy"
    from compressflow.stages.keras_artifacts import is_qat, load_keras_artifact
    from compressflow.stages.tflite_convert import convert_keras_model

    # A QAT model converted without optimisation keeps float weights and fake-quant ops;
    # with the default optimisation it becomes the int8 model its training prepared.
    method = "dynamic" if is_qat(source) else "float32"
    target.write_bytes(convert_keras_model(load_keras_artifact(source), method))
    return TFLITE_FILE, f"TFLite conversion, method {method}"


_EXPORTERS = {"keras": _export_keras, "tf_keras": _export_tf_keras, "saved_model": _export_saved_model,
              "tflite": _export_tflite}
