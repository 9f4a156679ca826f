"""LiteRT Quantizer on a float TFLite model: recipes, per-layer rules, checks and calibration.

A quantization is a list of *entries*: the library's recipe items (``regex``, ``operation``,
``algorithm_key``, ``op_config``), each from a named recipe, a rule of the stage, or a layer kept in
float. The library applies them in order, a later one winning where two select the same op; it
silently skips an entry an op does not support. So before quantizing, :func:`check_entries` works
out which ops each source really quantizes and refuses sources that quantize nothing.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from compressflow.errors import StageFailed
from compressflow.stages.litert_graph import GraphOp
from compressflow.stages.litert_recipes import ALGORITHMS, BlockGranularity, LiteRTRule

NO_QUANTIZE = "no_quantize"


@dataclass(frozen=True)
class Source:
    """Where entries come from, for messages: ``recipe 'weight_only_wi4_afp32'`` or ``rules[2]``."""

    label: str
    entries: tuple[dict[str, Any], ...]
    description: str = ""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the library's progress bars and debugging warnings out of the stage's output."""
    # NOTE: tqdm and warnings write to sys.stderr when called, so redirecting it silences both.
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def recipe_source(name: str) -> Source:
    """The entries of one of the library's named recipes."""
    from litert_quantizer import recipe

    return Source(f"recipe {name!r}", tuple(getattr(recipe, name)()))


def rule_source(rule: LiteRTRule, position: int) -> Source:
    """The entry of one rule (``position`` counts from 0, as the document path does)."""
    from litert_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    everything = qtyping.TFLOperationName.ALL_SUPPORTED
    label = f"rules[{position}] (layers: {rule.layers!r})"
    if rule.weights == "float":
        manager.add_quantization_config(rule.layers, everything, None, NO_QUANTIZE)
        return Source(label, tuple(manager.get_quantization_recipe()), rule.describe())
    if isinstance(rule.granularity, BlockGranularity):
        granularity = qtyping.QuantGranularity(f"BLOCKWISE_{rule.granularity.block}")
    else:
        granularity = qtyping.QuantGranularity.CHANNELWISE if rule.granularity == "channel" \
            else qtyping.QuantGranularity.TENSORWISE
    algorithm = ALGORITHMS[rule.algorithm]
    try:
        if rule.activations == "float":
            manager.add_weight_only_config(rule.layers, everything, rule.weights, granularity, algorithm)
        elif rule.activations == "dynamic":
            manager.add_dynamic_config(rule.layers, everything, rule.weights, granularity, algorithm)
        else:
            manager.add_static_config(rule.layers, everything, rule.activations, rule.weights, granularity,
                                      algorithm)
    except ValueError as exc:
        raise StageFailed(f"{label}: LiteRT Quantizer refuses {rule.describe()}: {exc}") from exc
    return Source(label, tuple(manager.get_quantization_recipe()), rule.describe())


def float_layers_source(ops: Sequence[GraphOp]) -> Source:
    """Entries that keep ``ops`` in float (each selected by its exact scope)."""
    entries = tuple({"regex": op.exact_regex, "operation": "*", "algorithm_key": NO_QUANTIZE} for op in ops)
    return Source("keep_float", entries)


def flatten(sources: Sequence[Source]) -> list[dict[str, Any]]:
    """The entries of ``sources`` in order, each regex distinct so that order decides between them.

    The library keys entries by regex: a second entry with a regex seen before would take the first
    one's place in the order instead of coming after the entries in between.
    """
    seen: set[str] = set()
    entries = []
    for source in sources:
        for entry in source.entries:
            regex = entry["regex"]
            while regex in seen:
                regex = f"(?:{regex})"
            seen.add(regex)
            entries.append({**entry, "regex": regex})
    return entries


def _manager(entries: list[dict[str, Any]]):
    from litert_quantizer import recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(entries)
    return manager


def quantized_ops(entries: list[dict[str, Any]], ops: Sequence[GraphOp]) -> dict[int, str]:
    """Ops these entries quantize: op index -> the library's algorithm key."""
    from litert_quantizer import qtyping

    manager = _manager(entries)
    chosen = {}
    for op in ops:
        try:
            name = qtyping.TFLOperationName(op.op)
        except ValueError:
            continue  # an op the library does not know: never quantized
        algorithm, _ = manager.get_quantization_configs(name, op.scope)
        if str(getattr(algorithm, "value", algorithm)) != NO_QUANTIZE:
            chosen[op.index] = str(getattr(algorithm, "value", algorithm))
    return chosen


def check_entries(sources: Sequence[Source], ops: Sequence[GraphOp]) -> dict[int, str]:
    """Refuse a source that selects no op, or only ops that cannot be quantized its way.

    Returns the ops the whole list quantizes (op index -> algorithm key).
    """
    import re

    layers = ", ".join(f"{op.layer} ({op.op})" for op in ops)
    for source in sources:
        selected = [op for op in ops if any(re.search(entry["regex"], op.scope) for entry in source.entries)]
        if not selected:
            raise StageFailed(f"{source.label} matches no layer of the model; its layers: {layers}. "
                              f"The regex is searched in each op's tensor names, e.g. {ops[0].scope!r}")
        if all(entry["algorithm_key"] == NO_QUANTIZE for entry in source.entries):
            continue  # it keeps layers in float: selecting some is all it has to do
        if not quantized_ops(list(source.entries), ops):
            what = f" ({source.description})" if source.description else ""
            raise StageFailed(
                f"{source.label}{what} quantizes none of the layers it selects: LiteRT Quantizer does not support "
                f"it for {', '.join(sorted({op.op for op in selected}))} "
                f"(layers {', '.join(op.layer for op in selected)}); "
                "choose other settings, e.g. channel-wise instead of block-wise, or 8-bit weights")
    chosen = quantized_ops(flatten(sources), ops)
    if not chosen:
        raise StageFailed("the rules leave every layer in float: nothing would be quantized")
    return chosen


def calibrate(float_model: bytes, entries: list[dict[str, Any]], signature: str, input_name: str,
              samples: np.ndarray) -> dict[str, Any]:
    """Activation ranges (the library's QSVs) of the float model on ``samples``."""
    from litert_quantizer import quantizer

    engine = quantizer.Quantizer(bytearray(float_model), entries)
    with quiet():
        return engine.calibrate({signature: [{input_name: sample[None, ...]} for sample in samples]},
                                num_threads=1)


def needs_calibration(entries: list[dict[str, Any]]) -> bool:
    """Whether the entries quantize activations (static), so that calibration samples are needed."""
    return bool(_manager(entries).need_calibration())


def quantize(float_model: bytes, entries: list[dict[str, Any]], calibration: dict[str, Any] | None) -> bytes:
    """The quantized model's flatbuffer bytes."""
    from litert_quantizer import quantizer

    engine = quantizer.Quantizer(bytearray(float_model), entries)
    with quiet():
        try:
            result = engine.quantize(calibration or None, enable_progress_bar=False, enable_progress_report=False)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise StageFailed(f"LiteRT Quantizer failed: {exc}") from exc
    return bytes(result.quantized_model)
