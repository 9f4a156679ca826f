"""``load``: bring a Keras model into the pipeline (file, builder function or keras.applications)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, Stage
from compressflow.stages.code_sets import TF_CODE
from compressflow.stages.registry import register_stage

TF_LIBRARIES = ("tensorflow", "tf-keras", "tensorflow-model-optimization")


@register_stage
class LoadStage(Stage):
    (
        "Load a model from `path` (.keras, .h5 or SavedModel), a `builder` function "
        "or a keras.applications `application`."
    )

    example: ClassVar[str] = """\
builder: "compressflow.models:small_cnn"
args: {input_shape: [8, 8, 1], classes: 10}
"""
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE + (
        "compressflow.models", "compressflow.models.builders", "compressflow.models.registrations")
    path_fields: ClassVar[dict[str, str]] = {"path": "model path", "weights": "weights file"}
    module_fields: ClassVar[dict[str, str]] = {"builder": "builder"}

    type: Literal["load"] = "load"
    path: str | None = Field(None, description="Model file or SavedModel directory, relative to the pipeline file.",
                             examples=["models/base.keras"])
    builder: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                                description="`module:function` returning a tf-keras model (called with `args`).",
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
        """Paths inside the pipeline's folder; no Lambda layer in the model file unless ``trust``.

        Only what needs no TensorFlow is checked here (a Lambda layer's bytecode is visible in
        the stored config); custom classes and corrupt files are reported by ``run``. The loader
        refuses a missing file or builder module itself (see ``path_fields``, ``module_fields``).
        """
        problems = super().check(env)
        if self.path and not self.trust and not problems:
            from compressflow.stages.base import FieldProblem

            finding = _code_in_model_file(env.resolve_path(self.path, what="model path"), env)
            if finding:
                problems.append(FieldProblem("path", finding))
        return problems

    # -- run ------------------------------------------------------------------------

    def run(self, ctx) -> None:
        from compressflow.stages import saved_model, tfutil

        tfutil.seed_everything(ctx.seed)
        if self.path and saved_model.is_plain_saved_model(ctx.env.resolve_path(self.path, what="model path")):
            # NOTE: no Keras layers to load: it is given on as a saved_model artifact (convert / evaluate only)
            saved_model.load_plain_saved_model(ctx, ctx.env.resolve_path(self.path, what="model path"), self.path)
            return
        if self.path:
            model, fmt = self._from_file(ctx)
            source = {"source": "path", "format": fmt}
        elif self.builder:
            model, source = self._from_builder(ctx), {"source": "builder", "builder": self.builder}
        else:
            model, source = self._from_application(ctx), {"source": "application", "application": self.application}
        _check_keras_model(model, self._what())
        stats = tfutil.kernel_stats(model)
        sparsity = tfutil.overall_sparsity(stats)
        ctx.write_json("metrics.json", {"params": int(model.count_params()), "sparsity": sparsity,
                                        "kernels": stats})
        ctx.log(f"{self._what()}: {len(model.layers)} layers, {model.count_params():,} parameters")
        tfutil.save_keras_model(model, ctx, **source, sparsity=sparsity,
                                input_shape=_shape(model.input_shape), output_shape=_shape(model.output_shape))

    def _what(self) -> str:
        return f"model file {self.path}" if self.path else (
            f"builder {self.builder}" if self.builder else f"application {self.application}")

    def _from_file(self, ctx):
        from compressflow.stages import tfutil

        path = ctx.env.resolve_path(self.path, what="model path")
        opt_in = f"set `trust: true` on load stage {ctx.name!r}"
        fmt = tfutil.check_model_file(path, trust=self.trust, opt_in=opt_in)
        return tfutil.load_keras_model(path, trust=self.trust, opt_in=opt_in), fmt

    def _from_builder(self, ctx):
        function = _import_builder(self.builder)
        try:
            return function(**self.args)
        except TypeError as exc:
            raise StageFailed(f"builder {self.builder} does not accept args {sorted(self.args)}: {exc}") from exc

    def _from_application(self, ctx):
        from compressflow.models import application

        weights = ctx.env.resolve_path(self.weights, what="weights file") if self.weights else None
        if weights is not None and not weights.is_file():
            raise StageFailed(f"weights file {weights} does not exist")
        try:
            return application(self.application, weights=weights, **self.args)
        except (TypeError, ValueError) as exc:
            raise StageFailed(f"application {self.application}: {exc}") from exc


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
        hint = (" (a Keras 3 model: build it with `import tf_keras as keras`, the Keras that tfmot supports)"
                if type(model).__module__.startswith("keras") else "")
        raise StageFailed(f"{what} gave a {kind}, not a tf-keras Model{hint}")
    if not model.built:
        raise StageFailed(f"{what} gave a model that is not built; give it an input shape (keras.Input)")


def _shape(shape) -> list | None:
    if isinstance(shape, list):  # several inputs or outputs
        return [_shape(s) for s in shape]
    return list(shape) if shape is not None else None
