"""``load``: bring a Keras model into the pipeline (file, builder function or keras.applications).

A model from Keras 3 (a file it saved, or a builder returning a Keras 3 model) is translated to
tf-keras, which tfmot needs (:mod:`compressflow.models.keras3`), and its artifact says so
(``keras_origin: keras3``), so that ``export`` gives it back as Keras 3.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, Stage
from compressflow.stages.code_sets import TF_CODE
from compressflow.stages.registry import register_stage

TF_LIBRARIES = ("tensorflow", "tf-keras", "tensorflow-model-optimization")
# Translating Keras 3 models (load, and export back) also depends on the Keras 3 version.
KERAS3_LIBRARIES = TF_LIBRARIES + ("keras",)
KERAS3_CODE = ("compressflow.models.keras3", "compressflow.models.keras3_config", "compressflow.models.keras3_layers")


@register_stage
class LoadStage(Stage):
    (
        "Load a model from `path` (.keras, .h5 or SavedModel), a `builder` function "
        "or a keras.applications `application`. A Keras 3 model is translated to tf-keras "
        "(what tfmot needs) and checked to predict the same; `export` gives it back as Keras 3."
    )

    example: ClassVar[str] = """\
builder: "compressflow.models:small_cnn"
args: {input_shape: [8, 8, 1], classes: 10}
"""
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = KERAS3_LIBRARIES
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE + KERAS3_CODE + (
        "compressflow.models", "compressflow.models.builders", "compressflow.models.registrations")
    path_fields: ClassVar[dict[str, str]] = {"path": "model path", "weights": "weights file"}
    module_fields: ClassVar[dict[str, str]] = {"builder": "builder"}

    type: Literal["load"] = "load"
    path: str | None = Field(None, description="Model file or SavedModel directory, relative to the pipeline file "
                                               "(saved by tf-keras or Keras 3).",
                             examples=["models/base.keras"])
    builder: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                                description="`module:function` returning a tf-keras or Keras 3 model (called with "
                                            "`args`).",
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

    # -- cache key ------------------------------------------------------------------

    def fingerprint(self, env) -> dict[str, Any]:
        """Bytes of the model file, or the builder's source (found without importing it).

        Cheap and TensorFlow-free: it runs on every plan.
        """
        from compressflow.stages.base import tree_sha256
        from compressflow.user_modules import module_source_fingerprint

        if self.path:
            path = env.resolve_path(self.path, what="model path")
            return {"sha256": tree_sha256(path) if path.exists() else "missing"}
        if self.builder:
            module = self.builder.partition(":")[0]
            return {"builder": self.builder, "source": module_source_fingerprint(module, env.pipeline_dir),
                    "args": self.args}
        fingerprint: dict[str, Any] = {"application": self.application, "args": self.args}
        if self.weights:
            weights = env.resolve_path(self.weights, what="weights file")
            fingerprint["weights_sha256"] = tree_sha256(weights) if weights.exists() else "missing"
        return fingerprint

    def check(self, env) -> list:
        """Paths inside the pipeline's folder; a model file within the bounds on what reading it may cost
        (:mod:`compressflow.models.file_limits`, trusted or not); no Lambda layer in it unless ``trust``;
        a Keras 3 file only with layers that translate to tf-keras.

        Only what needs no TensorFlow is checked here (a Lambda layer's bytecode is visible in
        the stored config, and so is each layer of a Keras 3 model); custom classes and corrupt
        files are reported by ``run``. The loader refuses a missing file or builder module itself
        (see ``path_fields``, ``module_fields``).
        """
        problems = super().check(env)
        if self.path and not problems:
            from compressflow.stages.base import FieldProblem

            path = env.resolve_path(self.path, what="model path")
            over_limit = _over_a_file_limit(path)
            if over_limit:
                return [*problems, FieldProblem("path", over_limit)]
            finding = None if self.trust else _code_in_model_file(path, env)
            if finding:
                problems.append(FieldProblem("path", finding))
            untranslatable = _untranslatable_keras3_file(path, self.path)
            if untranslatable:
                problems.append(FieldProblem("path", untranslatable))
        return problems

    # -- run ------------------------------------------------------------------------

    def run(self, ctx) -> None:
        from compressflow.stages import model_io, saved_model, tfutil

        tfutil.seed_everything(ctx.seed)
        if self.path and saved_model.is_plain_saved_model(ctx.env.resolve_path(self.path, what="model path")):
            # NOTE: no Keras layers to load: it is given on as a saved_model artifact (convert / evaluate only)
            saved_model.load_plain_saved_model(ctx, ctx.env.resolve_path(self.path, what="model path"), self.path)
            return
        if self.path:
            model, fmt, origin = self._from_file(ctx)
            source = {"source": "path", "format": fmt, **origin}
        elif self.builder:
            model, origin = self._from_builder(ctx)
            source = {"source": "builder", "builder": self.builder, **origin}
        else:
            model, source = self._from_application(ctx), {"source": "application", "application": self.application}
        _check_keras_model(model, self._what())
        stats = tfutil.kernel_stats(model)
        sparsity = tfutil.overall_sparsity(stats)
        ctx.write_json("metrics.json", {"params": int(model.count_params()), "sparsity": sparsity,
                                        "kernels": stats})
        ctx.log(f"{self._what()}: {len(model.layers)} layers, {model.count_params():,} parameters")
        model_io.save_keras_model(model, ctx, **source, sparsity=sparsity,
                                  input_shape=_shape(model.input_shape), output_shape=_shape(model.output_shape))

    def _what(self) -> str:
        return f"model file {self.path}" if self.path else (
            f"builder {self.builder}" if self.builder else f"application {self.application}")

    def _from_file(self, ctx):
        """(tf-keras model, format, origin meta) of the model file; a Keras 3 file is translated."""
        from compressflow.models.safety import is_keras3_version, stored_keras_version
        from compressflow.stages import tfutil

        path = ctx.env.resolve_path(self.path, what="model path")
        opt_in = f"set `trust: true` on load stage {ctx.name!r}"
        fmt = tfutil.check_model_file(path, trust=self.trust, opt_in=opt_in)
        version = stored_keras_version(path, fmt)
        if not is_keras3_version(version):
            return tfutil.load_keras_model(path, trust=self.trust, opt_in=opt_in), fmt, {}
        from compressflow.models import keras3

        translation = _translated(lambda: keras3.load_keras3_file(path, trust=self.trust),
                                  f"model file {self.path} (saved by Keras {version})")
        ctx.log(f"model file {self.path} was saved by Keras {version}: translated to tf-keras for tfmot, "
                f"{translation.describe()}")
        return translation.model, fmt, keras3.origin_meta(version)

    def _from_builder(self, ctx):
        """(tf-keras model, origin meta) of the builder; a Keras 3 model is translated."""
        from compressflow.models import keras3

        function = _import_builder(self.builder)
        keras3.seed_keras3_if_imported(ctx.seed)
        try:
            model = function(**self.args)
        except TypeError as exc:
            raise StageFailed(f"builder {self.builder} does not accept args {sorted(self.args)}: {exc}") from exc
        if not keras3.is_keras3_model(model):
            return model, {}
        version = keras3.keras3().__version__
        translation = _translated(lambda: keras3.from_keras3(model), f"builder {self.builder} (a Keras {version} "
                                                                      "model)")
        ctx.log(f"builder {self.builder} gave a Keras {version} model: translated to tf-keras for tfmot, "
                f"{translation.describe()}")
        return translation.model, keras3.origin_meta(version)

    def _from_application(self, ctx):
        from compressflow.models import application

        weights = ctx.env.resolve_path(self.weights, what="weights file") if self.weights else None
        if weights is not None and not weights.is_file():
            raise StageFailed(f"weights file {weights} does not exist")
        try:
            return application(self.application, weights=weights, **self.args)
        except (TypeError, ValueError) as exc:
            raise StageFailed(f"application {self.application}: {exc}") from exc


def _over_a_file_limit(path) -> str | None:
    """Why reading ``path`` is refused (a zip bomb, a config nested too deep, a SavedModel linking
    outside its folder), trusted or not; else None."""
    from compressflow.models.file_limits import ModelFileLimit
    from compressflow.models.safety import ModelFileError, check_file_limits

    try:
        check_file_limits(path)
    except ModelFileLimit as exc:
        return str(exc)
    except (ModelFileError, OSError):
        return None  # missing or unreadable: said elsewhere
    return None


def _code_in_model_file(path, env) -> str | None:
    """Why loading ``path`` would run code from it (a Lambda layer) or import a class that the pipeline's
    ``imports:`` do not register, if it would; else None."""
    from compressflow.errors import UnsafeModelError
    from compressflow.models.registrations import known_before_run
    from compressflow.models.safety import ModelFileError, check_model_file

    try:
        check_model_file(path, trust=False, is_known=known_before_run(env.imports, env.pipeline_dir),
                         opt_in="set `trust: true` on this load stage")
    except UnsafeModelError as exc:
        return str(exc)
    except (ModelFileError, ImportError, OSError):
        return None  # missing, corrupt or unreadable without h5py: the run says so clearly
    return None


def _untranslatable_keras3_file(path, shown: str) -> str | None:
    """Why a Keras 3 model file cannot be translated to tf-keras, naming each layer; None if it can
    (or is no Keras 3 file, or cannot be read: the run says so clearly)."""
    from compressflow.models.keras3_config import describe_problems, translation_problems
    from compressflow.models.safety import (ModelFileError, detect_format, is_keras3_version, read_stored_config,
                                            stored_keras_version)

    try:
        fmt = detect_format(path)
        version = stored_keras_version(path, fmt)
        if not is_keras3_version(version):
            return None
        configs = read_stored_config(path, fmt)
    except (ModelFileError, ImportError, OSError):
        return None
    problems = [found for config, _ in configs for found in translation_problems(config)]
    if not problems:
        return None
    return (f"model file {shown} was saved by Keras {version}, and tfmot needs tf-keras (Keras 2), but "
            f"{len(problems)} part{'s' if len(problems) > 1 else ''} of it cannot be translated: "
            f"{describe_problems(problems)}. Replace {'them' if len(problems) > 1 else 'it'} with layers both "
            "versions have (see docs/models.md, 'Keras 2 and Keras 3'), or build the model with "
            "`import tf_keras as keras` and save it from there")


def _translated(translate, what: str):
    """``translate()``, with a failure of the translation said to be about ``what``."""
    from compressflow.models.keras3_config import KerasTranslationError

    try:
        return translate()
    except KerasTranslationError as exc:
        raise KerasTranslationError(f"{what}: {exc}. tfmot needs tf-keras (Keras 2); replace what cannot be "
                                    "translated (see docs/models.md, 'Keras 2 and Keras 3'), or build the model "
                                    "with `import tf_keras as keras`") from exc


def _import_builder(spec: str):
    """The function named by ``module:function`` (importing the module runs the user's code)."""
    import importlib

    from compressflow.errors import did_you_mean

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise StageFailed(f"builder {spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StageFailed(f"builder {spec}: cannot import module {module_name!r}: {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        hint = did_you_mean(attr, names)
        raise StageFailed(f"builder {spec}: module {module_name!r} has no function {attr!r}"
                          + (f"; {hint}" if hint else ""))
    return function


def _check_keras_model(model, what: str) -> None:
    from compressflow.stages.tfutil import keras

    k = keras()
    if not isinstance(model, k.Model):
        kind = f"{type(model).__module__}.{type(model).__name__}"
        raise StageFailed(f"{what} gave a {kind}, not a Keras model (tf-keras or Keras 3)")
    if not model.built:
        raise StageFailed(f"{what} gave a model that is not built; give it an input shape (keras.Input)")


def _shape(shape) -> list | None:
    if isinstance(shape, list):  # several inputs or outputs
        return [_shape(s) for s in shape]
    return list(shape) if shape is not None else None
