"""Plain SavedModels: a folder written by ``tf.saved_model.save``, not by Keras, as a model artifact.

Such a folder holds a graph, its variables and serving signatures, but no Keras layers (no
``keras_metadata.pb``; Keras 3's ``model.export()`` writes one too). A ``load`` stage gives it as
a ``saved_model`` artifact: post-training ``quantize`` methods convert it with
``tf.lite.TFLiteConverter.from_saved_model`` and ``evaluate`` runs its serving signature. Stages
that train Keras layers (fine_tune, prune, cluster, distill, quantize with method qat) refuse it,
when the pipeline is validated (see :func:`plain_saved_model_inputs`) and when they run.

Here: the TF-free checks and loading (TensorFlow imported inside); converting and running such a
model is in :mod:`compressflow.stages.saved_model_run`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


SAVED_MODEL = "saved_model"  # the artifact kind
SAVED_MODEL_DIR = "saved_model"  # its folder inside the artifact
SERVING = "serving_default"
POST_TRAINING = "float32, dynamic, float16, int8, int16x8"


def is_plain_saved_model(path: Path) -> bool:
    """Whether ``path`` is a SavedModel folder that Keras did not write (no ``keras_metadata.pb``)."""
    path = Path(path)
    return path.is_dir() and (path / "saved_model.pb").is_file() and not (path / "keras_metadata.pb").is_file()


def why_not_trainable(stage_type: str, source: str, shown_path: str | None = None) -> str:
    """What to tell when a stage that trains Keras layers is given a plain SavedModel."""
    where = f" ({shown_path})" if shown_path else ""
    return (f"{stage_type} trains Keras layers, and {source!r} is a plain SavedModel{where}: saved with "
            "tf.saved_model.save, it holds a graph and no Keras layers. Load the Keras model it was made from "
            "(.keras, .h5, or a SavedModel saved by Keras) to train it; a plain SavedModel can go to quantize "
            f"with a post-training method ({POST_TRAINING}) and to evaluate")


def plain_saved_model_inputs(stage, fields: tuple[str, ...], env) -> list:
    """A :class:`FieldProblem` for each of ``fields`` that names a load stage of a plain SavedModel.

    Needs ``env.stages`` (the pipeline's stages, given while it is validated); TF-free.
    """
    from compressflow.errors import UsageError
    from compressflow.stages.base import FieldProblem

    stages = getattr(env, "stages", None) or {}
    problems = []
    for field in fields:
        name = getattr(stage, field, None)
        source = stages.get(name) if isinstance(name, str) else None
        raw = getattr(source, "path", None) if getattr(source, "kind", None) == "load" else None
        if not raw:
            continue
        try:
            path = env.resolve_path(raw, what="model path")
        except (UsageError, OSError, ValueError):
            continue  # the load stage's own check reports it
        if is_plain_saved_model(path):
            problems.append(FieldProblem(field, why_not_trainable(stage.kind, name, raw)))
    return problems


# --------------------------------------------------------------------------- load (TensorFlow inside)


def load_plain_saved_model(ctx, path: Path, shown: str) -> None:
    """Copy the SavedModel at ``path`` into the stage's output and declare it a ``saved_model`` artifact.

    Its serving signature must take one input and give one output, as the other model kinds do. A link
    in the folder to something outside it is refused (the cache key hashes the folder's own files).
    """
    from compressflow.errors import StageFailed
    from compressflow.models.file_limits import check_links_stay_inside

    check_links_stay_inside(path)  # NOTE: validate refused it already; a folder may change before the run
    signature, function, _loaded = serving_function(path, shown)
    inputs, outputs = signature_tensors(function)
    if len(inputs) != 1 or len(outputs) != 1:
        raise StageFailed(f"SavedModel {shown}: signature {signature!r} has {len(inputs)} inputs "
                          f"({', '.join(inputs) or 'none'}) and {len(outputs)} outputs "
                          f"({', '.join(outputs) or 'none'}); only models with one input and one output are supported")
    (input_name, input_spec), = inputs.items()
    (output_name, output_spec), = outputs.items()
    shutil.copytree(path, ctx.out_dir / SAVED_MODEL_DIR)
    import numpy as np  # NOTE: here, not at the top: every validation imports this module

    params = int(sum(int(np.prod(variable.shape)) for variable in function.variables))
    ctx.write_json("metrics.json", {"params": params, "signature": signature})
    ctx.log(f"SavedModel {shown} (not saved by Keras: it can be converted and evaluated, not trained): "
            f"signature {signature!r}, input {input_name} {_shape(input_spec)}, output {output_name} "
            f"{_shape(output_spec)}, {params:,} parameters")
    ctx.set_output(SAVED_MODEL, SAVED_MODEL_DIR, source="path", format="saved_model", signature=signature,
                   params=params, input=_describe(input_name, input_spec), output=_describe(output_name, output_spec),
                   input_shape=_shape(input_spec), output_shape=_shape(output_spec))


def serving_function(path: Path, shown: str):
    """``(signature name, concrete function, loaded object)`` of a SavedModel: ``serving_default``, or its
    only signature. Keep the loaded object while calling the function: it owns the variables."""
    from compressflow.errors import StageFailed
    from compressflow.models.safety import ModelFileError
    from compressflow.stages.tfutil import import_tensorflow

    graph = Path(path) / "saved_model.pb"
    if graph.is_file() and graph.stat().st_size == 0:
        raise ModelFileError(f"cannot load SavedModel {shown}: its saved_model.pb is empty (a truncated copy?)")
    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a corrupt folder fails in many ways; say it once
        raise ModelFileError(f"cannot load SavedModel {shown} (not saved by Keras, so read as a plain SavedModel): "
                             f"{type(exc).__name__}: {first_line(exc)}") from exc
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if SERVING in signatures:
        name = SERVING
    elif len(signatures) == 1:
        name = next(iter(signatures))
    else:
        listed = ", ".join(sorted(signatures)) or "none"
        raise StageFailed(f"SavedModel {shown} has no {SERVING!r} signature to run (its signatures: {listed}); "
                          "save it with signatures={'serving_default': ...}")
    return name, signatures[name], loaded


def signature_tensors(function) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``{name: TensorSpec}`` of a signature function's inputs and of its outputs."""
    _, kwargs = function.structured_input_signature
    outputs = function.structured_outputs
    if not isinstance(outputs, dict):
        outputs = {"output_0": outputs}
    return dict(kwargs), dict(outputs)


def _shape(spec) -> list | None:
    return None if spec.shape.rank is None else [None if d is None else int(d) for d in spec.shape.as_list()]


def _describe(name: str, spec) -> dict[str, Any]:
    return {"name": name, "dtype": spec.dtype.name, "shape": _shape(spec)}


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:400] if lines else type(exc).__name__
