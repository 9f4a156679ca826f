"""Model files of stages: a stage's input model loaded fresh, its output model saved and declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressflow.errors import StageFailed
from compressflow.stages.tfutil import (
    KERAS_FILE, is_known_keras_class, load_keras_model, model_has_code, without_training_state,
)


def load_artifact_model(artifact):
    """A fresh copy of the Keras model in a stage's output artifact."""
    from compressflow.stages.base import KERAS_MODEL

    if artifact.kind != KERAS_MODEL:
        raise StageFailed(f"stage {artifact.stage!r} gives a {artifact.kind}, not a Keras model")
    from compressflow.stages.model_trust import code_trusted

    # NOTE: custom classes were checked where the model came into the pipeline, so they are not refused
    # here. Lambda bytecode runs only if the pipeline being run lets it (a load stage upstream says
    # `trust: true` or is a builder): never because the entry's artifact.json says `trusted`, which
    # whoever wrote a shared cache entry decides. Untrusted, safe_mode refuses it in a .keras file,
    # and the inspection refuses it in an .h5 one (a QAT model), where tf-keras ignores safe_mode.
    trusted = code_trusted()
    path = artifact.file()
    if not trusted and path.suffix == ".h5":
        _refuse_code_in_entry(artifact, path)
    return load_keras_model(path, trust=trusted, check=False)


def _refuse_code_in_entry(artifact, path: Path) -> None:
    """Refuse Lambda code in the model file of a cache entry that the running pipeline does not trust."""
    from compressflow.errors import UnsafeModelError
    from compressflow.models.safety import HDF5, find_code, read_stored_config

    lambdas = [f for f in find_code(read_stored_config(path, HDF5), is_known_keras_class) if not f.custom_class]
    if lambdas:
        listed = "; ".join(f.describe() for f in lambdas)
        raise UnsafeModelError(f"refusing to load the model of stage {artifact.stage!r} from its cache entry "
                               f"{artifact.path}: {listed}, and no load stage upstream says `trust: true`. "
                               "Loading it would run code from the entry; if the pipeline's own model has "
                               "that layer, set `trust: true` on its load stage")


def load_input_model(ctx, field: str = "model"):
    """A fresh copy of the Keras model given by input ``field``; never a shared object (design §5).

    Quantization-aware models are refused: only a quantize stage can carry them on.
    """
    from compressflow.stages.saved_model import SAVED_MODEL, why_not_trainable

    artifact = ctx.input(field)
    if artifact.meta.get("qat"):
        raise StageFailed(f"stage {ctx.name!r} cannot take {artifact.stage!r}: it is a quantization-aware "
                          "model; convert it with a quantize stage, or use the model it was made from")
    if artifact.kind == SAVED_MODEL:
        raise StageFailed(why_not_trainable(f"stage {ctx.name!r}", artifact.stage))
    return load_artifact_model(artifact)


def save_keras_model(model, ctx, **meta: Any) -> None:
    """Save ``model`` as the stage's Keras output (``model.keras``) and declare it.

    The saved model holds architecture and weights only (no optimizer or compile state).
    ``meta`` goes to ``artifact.json``; ``params`` and ``trusted`` are added.
    """
    from compressflow.stages.base import KERAS_MODEL

    meta = {**carried_meta(ctx), **meta}
    path = ctx.out_dir / KERAS_FILE
    plain = without_training_state(model)
    meta.setdefault("params", int(plain.count_params()))
    if model_has_code(plain):
        meta["trusted"] = True
    plain.save(path)
    ctx.set_output(KERAS_MODEL, KERAS_FILE, **meta)


def carried_meta(ctx) -> dict[str, Any]:
    """Meta a model keeps through every stage that remakes it: where it came from (Keras 3).

    Taken from the stage's ``model`` input (``student`` for distillation).
    """
    from compressflow.models.keras3 import CARRIED_META

    inputs = getattr(ctx, "inputs", None) or {}
    for field in ("model", "student"):
        source = inputs.get(field)
        if source is not None and not isinstance(source, list):
            return {key: source.meta[key] for key in CARRIED_META if key in source.meta}
    return {}
