"""Which layers a technique applies to: include/exclude patterns, wrapping the selected ones, logging the rest."""

from __future__ import annotations

from fnmatch import fnmatch

from compressflow.stages.tfutil import keras


def selected(name: str, include: list[str], exclude: list[str]) -> bool:
    """Whether a layer name passes the include / exclude patterns (fnmatch)."""
    return (not include or any(fnmatch(name, p) for p in include)) and not any(fnmatch(name, p) for p in exclude)


def wrap_selected_layers(model, selection, why_not, apply, verb: str, log, details=None):
    """Clone ``model`` with ``apply(layer)`` in place of each selected layer that has weights.

    ``selection`` has fnmatch ``include``/``exclude`` patterns; ``why_not(layer)`` gives the
    reason a layer cannot take the technique (or None). Returns ``(model, applied layer
    names, {skipped layer: reason})``. Layers without weights are neither changed nor reported;
    layers skipped for the same reason are logged as one line (see :func:`log_skipped`).
    """
    k = keras()
    applied: list[str] = []
    skipped: dict[str, str] = {}
    classes: dict[str, str] = {}

    def wrap(layer):
        if isinstance(layer, k.Model):
            return k.models.clone_model(layer, clone_function=wrap)
        if not layer.trainable_weights:
            return layer
        if not selected(layer.name, selection.include, selection.exclude):
            skipped[layer.name] = "not selected by include/exclude"
            return layer
        reason = why_not(layer)
        if reason:
            skipped[layer.name] = reason
            classes[layer.name] = type(layer).__name__
            return layer
        applied.append(layer.name)
        return apply(layer)

    wrapped = k.models.clone_model(model, clone_function=wrap)
    log_skipped({name: skipped[name] for name in classes}, classes, verb, log, details or details_printer())
    return wrapped, applied, skipped


def log_skipped(skipped: dict[str, str], classes: dict[str, str], verb: str, log, details) -> None:
    """One ``log`` line per reason layers were left alone; their names go to ``details`` when several share one.

    ``not pruning 52 layers (BatchNormalization x52): has no prunable weights`` instead of a line per layer.
    """
    from collections import Counter

    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        if len(names) == 1:
            log(f"not {verb} {names[0]}: {reason}")
            continue
        counts = Counter(classes[name] for name in names).most_common()
        log(f"not {verb} {len(names)} layers ({', '.join(f'{c} x{n}' for c, n in counts)}): {reason}; "
            "--verbose lists them")
        details(f"not {verb} these {len(names)} layers ({reason}): {', '.join(names)}")


def details_printer(stage: str | None = None):
    """A log for detail lines, written to stderr (as ``  [stage] text``).

    ``compressflow run`` keeps stderr in the stage's log file (``.compressflow/logs/<stage>.log``)
    and shows it with ``--verbose``: the place for lists too long for the run's output.
    """
    import sys

    prefix = f"  [{stage}] " if stage else ""

    def details(text: str) -> None:
        print(prefix + text, file=sys.stderr, flush=True)

    return details
