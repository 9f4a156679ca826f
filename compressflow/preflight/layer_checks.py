"""Which layers prune, cluster and QAT will take, skip or refuse: asked of tfmot's own registries
through the stages' own rules (imports TensorFlow; call with a built tf-keras model)."""

from __future__ import annotations

from compressflow.errors import StageFailed
from compressflow.preflight.findings import ERROR, OK, WARNING, StageCheck

NOT_SELECTED = "not selected by include/exclude"


def weighted_layers(model):
    """Each layer with trainable weights, inside nested models too (what the stages wrap)."""
    from compressflow.stages.tfutil import keras

    k = keras()
    for layer in model.layers:
        if isinstance(layer, k.Model):
            yield from weighted_layers(layer)
        elif layer.trainable_weights:
            yield layer


def sort_layers(model, selection, why_not) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(taken layers, {skipped layer: reason}, {skipped layer: class}) as ``wrap_selected_layers`` decides."""
    from compressflow.stages.layer_selection import selected

    taken, skipped, classes = [], {}, {}
    for layer in weighted_layers(model):
        if not selected(layer.name, selection.include, selection.exclude):
            skipped[layer.name] = NOT_SELECTED
            continue
        reason = why_not(layer)
        if reason:
            skipped[layer.name] = reason
            classes[layer.name] = type(layer).__name__
        else:
            taken.append(layer.name)
    return taken, skipped, classes


def is_custom(layer) -> bool:
    """Whether ``layer``'s class comes from outside tf-keras (a custom layer of the user's)."""
    module = type(layer).__module__
    return not (module.startswith("tf_keras.") or module.startswith("keras."))


def report_layers(check: StageCheck, model, selection, why_not, verb: str, done: str, interface: str) -> None:
    """Add what ``verb`` (``prune``, ``cluster``) does with each layer; an error when no layer is left."""
    taken, skipped, classes = sort_layers(model, selection, why_not)
    layer_of = {layer.name: layer for layer in weighted_layers(model)}
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    if not taken:
        listed = "; ".join(f"{name}: {why}" for name, why in skipped.items()) or "the model has no weights"
        check.add(ERROR, f"no layer to {verb} ({listed})", list(skipped))
    else:
        check.add(OK, f"will {verb} {len(taken)} layer{'s' if len(taken) != 1 else ''}", taken)
    for reason, names in by_reason.items():
        if reason == NOT_SELECTED:
            continue
        custom = [n for n in names if is_custom(layer_of[n])]
        text = f"will not {verb} {len(names)} layer{'s' if len(names) != 1 else ''} ({_classes(names, classes)}): " \
               f"{reason}"
        if custom:
            text += f"; a custom layer is {done} only if it implements tfmot's {interface}"
        check.add(WARNING, text, names)


def _classes(names, classes) -> str:
    from collections import Counter

    return ", ".join(f"{c} x{n}" if n > 1 else c for c, n in Counter(classes[name] for name in names).most_common())


def check_prune(check: StageCheck, stage, model) -> None:
    from compressflow.stages.prune import _why_not_prunable

    report_layers(check, model, stage, lambda layer: _why_not_prunable(layer, stage), "prune", "pruned",
                  "PrunableLayer (get_prunable_weights)")


def check_cluster(check: StageCheck, stage, model) -> None:
    from compressflow.stages.cluster import _why_not_clusterable

    report_layers(check, model, stage, lambda layer: _why_not_clusterable(layer, stage), "cluster", "clustered",
                  "ClusterableLayer (get_clusterable_weights)")


def check_qat(check: StageCheck, stage, model, *, apply: bool = True):
    """The layers QAT annotates and keeps float (tfmot's 8-bit QuantizeRegistry), then, with ``apply``,
    whether tfmot accepts the annotated model (``quantize_apply`` on the untrained architecture).

    Returns the quantization-aware model when it was made (else None).
    """
    from compressflow.stages import qat

    try:
        plan = qat.plan_layers(model, include=stage.include, exclude=stage.exclude, configs=stage.quantize_configs)
    except StageFailed as exc:
        check.add(ERROR, str(exc))
        return None
    check.add(OK, f"will make {len(plan.quantized)} layer{'s' if len(plan.quantized) != 1 else ''} "
                  "quantization-aware", plan.quantized)
    unsupported = [name for name, why in plan.float_layers.items() if why == qat.UNSUPPORTED]
    if unsupported:
        check.add(WARNING, f"{len(unsupported)} layer{'s' if len(unsupported) != 1 else ''} "
                           f"({_classes(unsupported, plan.classes)}) stay float: {qat.UNSUPPORTED}", unsupported)
    if not apply:
        return None
    try:
        return qat.make_quantization_aware(model, stage.scheme, plan)
    except StageFailed as exc:
        check.add(ERROR, str(exc))
        return None
