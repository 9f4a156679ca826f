"""Check the stages of a pipeline against the architectures of its models, in execution order.

Each load stage's model is built once, when a checked stage needs it, with the load stage's own
code (builder with its args, or the model file; Keras 3 translated), and carried to the stages
it flows through: ``fine_tune``, ``prune``, ``cluster`` and QAT give the architecture they take,
``distill`` its student's. Other stages' outputs (a conversion, a selection) are not known before
they run: stages after them are noted as not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from compressflow.errors import CompressflowError
from compressflow.preflight.data_shapes import DataShape, data_shape
from compressflow.preflight.findings import ERROR, NOTE, OK, Report, StageCheck

# Stage types whose output has the architecture of their input (field).
PASS_THROUGH = {"fine_tune": "model", "prune": "model", "cluster": "model", "distill": "student"}
CONVERTED_METHODS = ("int8", "int16x8")


@dataclass
class ModelInfo:
    """A built architecture flowing out of a stage: the model, the load stage it came from, whether QAT."""

    model: Any
    source: str
    qat: bool = False


class _LoadContext:
    """What a load stage's loading code reads of its context (nothing is written)."""

    def __init__(self, name: str, seed: int, env):
        self.name, self.seed, self.env = name, seed, env

    def log(self, text: str) -> None:  # NOTE: the loader's notes (a Keras 3 translation) are not findings
        pass


class Checker:
    """Checks stages of one pipeline; models and conversions are built once and reused.

    ``thorough`` also has tfmot make each QAT stage's model quantization-aware (minutes for a
    large model): ``check`` does, the check at the start of a run does not.
    """

    def __init__(self, pipeline, graph, env, *, thorough: bool = True):
        self.pipeline, self.graph, self.env, self.thorough = pipeline, graph, env, thorough
        self.stages = {name: graph.nodes[name]["stage"] for name in graph.nodes}
        self._models: dict[str, ModelInfo | None] = {}
        self._load_failures: dict[str, str] = {}
        self._shapes: dict[str, DataShape | None] = {}
        self._conversions: dict = {}
        self._qat_models: dict[str, Any] = {}  # QAT stage -> the quantization-aware model (thorough only)

    # -- models ---------------------------------------------------------------------

    def model_of(self, name: str) -> ModelInfo | None:
        """The architecture stage ``name`` outputs, or None when it is not known before a run."""
        if name not in self._models:
            self._models[name] = self._output_model(name)
        return self._models[name]

    def _output_model(self, name: str) -> ModelInfo | None:
        stage = self.stages[name]
        if stage.kind == "load":
            return self._build(name, stage)
        if stage.kind in PASS_THROUGH:
            return self.model_of(getattr(stage, PASS_THROUGH[stage.kind]))
        if stage.kind == "quantize" and stage.method == "qat":
            upstream = self.model_of(stage.model)
            return ModelInfo(upstream.model, upstream.source, qat=True) if upstream else None
        return None

    def _build(self, name: str, stage) -> ModelInfo | None:
        from compressflow.executor.process_setup import prepare_for_stage
        from compressflow.stages import saved_model, tfutil
        from compressflow.stages.base import derive_seed
        from compressflow.stages.load import _check_keras_model

        try:
            prepare_for_stage(stage, self.env)
            ctx = _LoadContext(name, derive_seed(self.env.seed, name), self.env)
            tfutil.seed_everything(ctx.seed)
            if stage.path:
                path = self.env.resolve_path(stage.path, what="model path")
                if saved_model.is_plain_saved_model(path):
                    self._load_failures[name] = "a plain SavedModel has no Keras layers to check"
                    return None
                model = stage._from_file(ctx)[0]
            elif stage.builder:
                model = stage._from_builder(ctx)[0]
            else:
                model = stage._from_application(ctx)
            _check_keras_model(model, stage._what())
        except CompressflowError as exc:
            self._load_failures[name] = exc.render().removeprefix("error: ")
            return None
        except Exception as exc:  # noqa: BLE001 - the user's builder or file: any failure is said the same way
            self._load_failures[name] = f"{type(exc).__name__}: {exc}"
            return None
        return ModelInfo(model, name)

    def data_shape(self, dataset: str) -> DataShape | None:
        if dataset not in self._shapes:
            config = self.env.datasets.get(dataset)
            self._shapes[dataset] = data_shape(config, self.env) if config is not None else None
        return self._shapes[dataset]

    # -- stages ---------------------------------------------------------------------

    def check(self, name: str) -> StageCheck:
        """The findings of stage ``name``."""
        stage = self.stages[name]
        check = StageCheck(name, stage.kind)
        handler = getattr(self, f"_check_{stage.kind}", None)
        if handler is None:
            check.add(NOTE, "nothing to check before it runs")
        else:
            handler(check, stage)
            if not check.findings:
                check.add(OK, "nothing found that would fail")
        return check

    def _input(self, check: StageCheck, stage, field: str) -> ModelInfo | None:
        """The model of input ``field``; a note says why it is unknown when it is."""
        ref = getattr(stage, field)
        info = self.model_of(ref)
        if info is None:
            why = self._why_unknown(ref)
            check.add(NOTE, f"{field} {ref!r} not checked: {why}")
        return info

    def _why_unknown(self, name: str) -> str:
        stage = self.stages[name]
        if stage.kind == "load":
            failure = self._load_failures.get(name, "its model could not be built")
            return failure if failure.startswith("a plain") else f"load stage {name!r} fails: {failure}"
        if stage.kind in PASS_THROUGH:
            return self._why_unknown(getattr(stage, PASS_THROUGH[stage.kind]))
        if stage.kind == "quantize" and stage.method == "qat":
            return self._why_unknown(stage.model)
        return f"its output ({stage.kind}) is known only after it runs"

    def _check_load(self, check: StageCheck, stage) -> None:
        info = self.model_of(check.name)
        if info is None:
            failure = self._load_failures.get(check.name, "")
            if failure.startswith("a plain"):
                check.add(NOTE, failure)
            else:
                check.add(ERROR, f"loading fails: {failure}")
            return
        model = info.model
        check.add(OK, f"{len(model.layers)} layers, {model.count_params():,} parameters, input "
                      f"{_shape_text(model.input_shape)}, output {_shape_text(model.output_shape)}")

    def _check_fine_tune(self, check: StageCheck, stage) -> None:
        info = self._input(check, stage, "model")
        if info is None or self._refuses_qat(check, info, stage.model) or _refuses_outputs(check, info.model):
            return
        self._check_fit(check, info.model, stage.data)

    def _check_prune(self, check: StageCheck, stage) -> None:
        from compressflow.preflight.layer_checks import check_prune

        self._layer_technique(check, stage, check_prune)

    def _check_cluster(self, check: StageCheck, stage) -> None:
        from compressflow.preflight.layer_checks import check_cluster

        self._layer_technique(check, stage, check_cluster)

    def _layer_technique(self, check: StageCheck, stage, checker) -> None:
        info = self._input(check, stage, "model")
        if info is None or self._refuses_qat(check, info, stage.model) or _refuses_outputs(check, info.model):
            return
        self._check_fit(check, info.model, stage.data)
        checker(check, stage, info.model)

    def _check_distill(self, check: StageCheck, stage) -> None:
        for field in ("teacher", "student"):
            info = self._input(check, stage, field)
            what = f"{field} {getattr(stage, field)!r}"
            if info is not None and not _refuses_outputs(check, info.model, what):
                self._check_fit(check, info.model, stage.data, what=what)

    def _check_quantize(self, check: StageCheck, stage) -> None:
        from compressflow.preflight.int8_check import check_conversion
        from compressflow.preflight.layer_checks import check_qat

        if stage.method not in ("qat", *CONVERTED_METHODS):
            check.add(NOTE, f"method {stage.method}: nothing to check before it runs")
            return
        info = self._input(check, stage, "model")
        if info is None:
            return
        if stage.method == "qat":
            if info.qat:
                check.add(ERROR, f"{stage.model!r} is already a quantization-aware model; convert it with a "
                                 "post-training method (dynamic or int8)")
                return
            if _refuses_outputs(check, info.model):
                return
            self._check_fit(check, info.model, stage.data)
            self._qat_models[check.name] = check_qat(check, stage, info.model, apply=self.thorough)
            return
        model = self._qat_models.get(stage.model) if info.qat else info.model
        if model is None:
            check.add(NOTE, f"{stage.model!r} is quantization-aware: its conversion is checked only when "
                            f"{stage.model!r} is checked too (`compressflow check`)")
            return
        shape = self.data_shape(stage.data) if stage.data else None
        if stage.data and not self._check_fit(check, model, stage.data):
            return
        check_conversion(check, stage.method, model, shape.sample if shape else None, self._conversions,
                         int8_io=stage.int8_io)

    def _check_evaluate(self, check: StageCheck, stage) -> None:
        for ref in stage.models:
            info = self.model_of(ref)
            if info is not None and not _refuses_outputs(check, info.model, f"model {ref!r}"):
                self._check_fit(check, info.model, stage.data, what=f"model {ref!r}", outputs=False)

    def _refuses_qat(self, check: StageCheck, info: ModelInfo, ref: str) -> bool:
        if info.qat:
            check.add(ERROR, f"stage {check.name!r} cannot take {ref!r}: it is a quantization-aware model; "
                             "convert it with a quantize stage, or use the model it was made from")
        return info.qat

    def _check_fit(self, check: StageCheck, model, dataset: str, *, what: str = "the model",
                   outputs: bool = True) -> bool:
        """Whether the dataset's samples (and labels) fit ``model``; an error for each mismatch."""
        shape = self.data_shape(dataset)
        if shape is None or isinstance(model.input_shape, list):
            return True
        fits = True
        expected = tuple(model.input_shape[1:])
        if len(expected) != len(shape.sample) or any(e not in (None, g) for e, g in zip(expected, shape.sample)):
            check.add(ERROR, f"dataset {dataset!r} gives samples of shape {shape.sample} but {what} expects "
                             f"{expected}")
            fits = False
        output = model.output_shape
        if outputs and shape.classes and not isinstance(output, list) and len(output) == 2:
            units = output[-1]
            if units is not None and 1 < units < shape.classes:
                check.add(ERROR, f"dataset {dataset!r} has {shape.classes} classes (labels 0..{shape.classes - 1}) "
                                 f"but {what} has {units} output units")
                fits = False
        return fits


def _refuses_outputs(check: StageCheck, model, what: str = "the model") -> bool:
    """An error when ``model`` has several outputs: the stage trains or measures one (one loss, one task)."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) < 2:
        return False
    names = ", ".join(getattr(model, "output_names", None) or [str(len(outputs))])
    check.add(ERROR, f"{what} has {len(outputs)} outputs ({names}); stage {check.name!r} trains and measures a "
                     "model with one output (one loss, one task). Compress a model that ends in the output you "
                     "ship (e.g. a builder returning `keras.Model(inputs, outputs[0])`); post-training "
                     "quantization (int8, dynamic, float16) converts a model with several outputs as it is")
    return True


def _shape_text(shape) -> str:
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join("batch" if d is None and i == 0 else str(d) for i, d in enumerate(shape)) + ")"


def check_pipeline(pipeline, *, names: Iterable[str] | None = None, allow_outside_paths: bool = False,
                   plan=None, thorough: bool = True) -> Report:
    """Check every stage of ``pipeline`` (or those in ``names``), in execution order.

    ``plan`` (a :class:`compressflow.executor.plan.Plan`) gives the graph and environment when a
    run has one already; ``thorough``: see :class:`Checker`.
    """
    from compressflow.executor.graph import build_graph, execution_order
    from compressflow.stages.base import Environment

    if plan is not None:
        graph, env = plan.graph, plan.env
    else:
        graph = build_graph(pipeline)
        env = Environment(pipeline_dir=pipeline.root, seed=pipeline.seed, datasets=dict(pipeline.datasets),
                          allow_outside_paths=allow_outside_paths, imports=pipeline.imports)
    wanted = None if names is None else set(names)
    checker = Checker(pipeline, graph, env, thorough=thorough)
    report = Report(pipeline.name)
    try:
        for name in execution_order(graph):
            if wanted is None or name in wanted:
                report.stages.append(checker.check(name))
    finally:
        _forget_models(checker)
    return report


def _forget_models(checker: Checker) -> None:
    """Drop the built models and reset Keras' layer names, so that stages run after the check name
    their layers as in a process that never checked (``conv2d``, not ``conv2d_1``)."""
    import sys

    checker._models.clear()
    checker._qat_models.clear()
    if "tf_keras" in sys.modules:
        sys.modules["tf_keras"].backend.clear_session()
    keras3 = sys.modules.get("keras")
    if keras3 is not None and getattr(keras3, "__version__", "2").split(".")[0] >= "3":
        keras3.backend.clear_session()
