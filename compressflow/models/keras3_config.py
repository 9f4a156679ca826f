"""Translate a model's config between Keras 3 and tf-keras (plain Python: no TensorFlow, no Keras).

Keras 3 (the default ``import keras`` since TensorFlow 2.16) and tf-keras (Keras 2, which tfmot
needs) describe a layer with mostly the same config, but differ in how they write it: Keras 3
gives every object a ``module`` and ``registered_name``, writes dtype policies as objects,
calls an input's shape ``batch_shape`` and records each layer call as ``args``/``kwargs`` with
serialised tensors; tf-keras writes ``batch_input_shape`` and lists of ``[layer, node, tensor,
kwargs]``. :func:`to_tf_keras_config` and :func:`to_keras3_config` rewrite one form into the
other, layer by layer, following the tables of :mod:`compressflow.models.keras3_layers`; what
has no counterpart is collected as :class:`Untranslatable` (all of it, not only the first) and
raised as one :class:`KerasTranslationError`. :func:`translation_problems` gives the same list
without raising, so a pipeline can be refused from the stored config before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compressflow.errors import StageFailed
from compressflow.models import keras3_layers as tables

KERAS3 = "keras3"
TF_KERAS = "tf_keras"
_TENSOR = "__keras_tensor__"
_TUPLE = "__tuple__"
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy", "Policy")
_OBJECT_KEYS = ("module", "registered_name", "shared_object_id", "build_config", "compile_config")


@dataclass(frozen=True)
class Untranslatable:
    """One part of a model that has no counterpart in the other Keras version."""

    layer: str | None
    class_name: str
    reason: str

    def describe(self) -> str:
        where = f"layer {self.layer!r} ({self.class_name})" if self.layer else self.class_name
        return f"{where}: {self.reason}"


class KerasTranslationError(StageFailed):
    """A model cannot be translated between Keras 3 and tf-keras; the message names each layer."""


def to_tf_keras_config(serialized: dict[str, Any]) -> dict[str, Any]:
    """The tf-keras form (``{"class_name", "config"}``) of a serialised Keras 3 model.

    ``serialized`` is what Keras 3 stores in a ``.keras`` file's ``config.json`` (or
    ``keras.saving.serialize_keras_object(model)``). Raises :class:`KerasTranslationError`.
    """
    walk = _Walk(KERAS3)
    translated = walk.model(serialized)
    walk.raise_problems("Keras 3", "tf-keras")
    return translated


def to_keras3_config(serialized: dict[str, Any]) -> dict[str, Any]:
    """The Keras 3 form (legacy layout, which Keras 3 reads) of a serialised tf-keras model.

    ``serialized`` is ``{"class_name": ..., "config": model.get_config()}`` of a tf-keras model.
    Raises :class:`KerasTranslationError`.
    """
    walk = _Walk(TF_KERAS)
    translated = walk.model(serialized)
    walk.raise_problems("tf-keras", "Keras 3")
    return translated


def translation_problems(serialized: dict[str, Any]) -> list[Untranslatable]:
    """Every part of a serialised Keras 3 model that tf-keras cannot rebuild (empty: it translates)."""
    walk = _Walk(KERAS3)
    walk.model(serialized)
    return walk.problems


def describe_problems(problems: list[Untranslatable]) -> str:
    """The problems as one sentence fragment: ``layer 'a' (X): why; layer 'b' (Y): why``."""
    return "; ".join(problem.describe() for problem in problems)


def is_keras3_module(module: Any) -> bool:
    """Whether a config's ``module`` names Keras itself (``keras``, ``keras.layers``, ``keras.src...``)."""
    return isinstance(module, str) and module.split(".")[0] == "keras"


class _Walk:
    """One translation in one direction, collecting what cannot be translated."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Untranslatable] = []

    def problem(self, layer: str | None, class_name: str, reason: str) -> None:
        found = Untranslatable(layer, class_name, reason)
        if found not in self.problems:
            self.problems.append(found)

    def raise_problems(self, source: str, target: str) -> None:
        if self.problems:
            raise KerasTranslationError(f"this {source} model cannot be rebuilt in {target}: "
                                        f"{describe_problems(self.problems)}")

    # -- models and layers ---------------------------------------------------------

    def model(self, entry: Any) -> dict[str, Any]:
        if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
            self.problem(None, type(entry).__name__, "not a serialised Keras model (no class_name)")
            return {}
        return self.layer(entry)

    def layer(self, entry: dict[str, Any]) -> dict[str, Any]:
        class_name = entry.get("class_name", "?")
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        name = config.get("name", entry.get("name"))
        module = entry.get("module")
        if module is not None and not is_keras3_module(module) and module.split(".")[0] != "tf_keras":
            self.problem(name, class_name, f"a custom class from module {module!r}, which the other Keras "
                                           "version cannot build")
            translated: dict[str, Any] = {}
        elif class_name in tables.MODEL_CLASSES:
            translated = self.graph(class_name, config, name)
        elif class_name == "Lambda":
            self.problem(name, class_name, "a Lambda layer: its Python function is stored in a form only the "
                                           "Keras version that saved it reads")
            translated = {}
        elif class_name in tables.KERAS3_ONLY_LAYERS:
            self.problem(name, class_name, "a Keras 3 layer class that tf-keras does not have")
            translated = {}
        elif class_name not in tables.SHARED_LAYERS:
            self.problem(name, class_name, "both Keras versions have this class, but it is not among the layers "
                                           "checked to build alike in both (their configs or weights differ)")
            translated = {}
        else:
            translated = self.layer_config(class_name, config, name)
        out: dict[str, Any] = {"class_name": "Functional" if class_name == "Model" else class_name,
                               "config": translated}
        if "name" in entry:
            out["name"] = entry["name"]
        if "inbound_nodes" in entry:
            out["inbound_nodes"] = [self.node(node, name, class_name) for node in entry["inbound_nodes"]]
        return out

    def graph(self, class_name: str, config: dict[str, Any], name: str | None) -> dict[str, Any]:
        raw_layers = config.get("layers", [])
        if class_name == "Sequential" and self.source == TF_KERAS:
            raw_layers = _sequential_input_first(raw_layers)
        layers = [self.layer(item) if isinstance(item, dict) else item for item in raw_layers]
        if class_name == "Sequential":
            out: dict[str, Any] = {"name": name, "layers": layers}
            if config.get("build_input_shape") is not None:
                out["build_input_shape"] = config["build_input_shape"]
            return out
        out = {"name": name, "trainable": config.get("trainable", True), "layers": layers}
        for key in ("input_layers", "output_layers"):
            out[key] = self.endpoints(config.get(key, []), name, class_name)
        self.renumber_calls(out)
        return out

    def renumber_calls(self, graph: dict[str, Any]) -> None:
        """Make references to calls of nested models count as the target version counts them.

        NOTE: tf-keras numbers the calls of a nested model from 1 (call 0 is the model built on its
        own inputs, left out of configs); Keras 3 numbers them from 0. A reference to a call that
        does not exist would make either loader wait for it forever, so every reference is checked.
        """
        entries = {entry.get("name"): entry for entry in graph["layers"] if isinstance(entry, dict)}
        shifts = {name: _first_call(entry, TF_KERAS) - _first_call(entry, KERAS3) for name, entry in entries.items()}
        if self.source == TF_KERAS:
            shifts = {name: -shift for name, shift in shifts.items()}
        target = KERAS3 if self.source == TF_KERAS else TF_KERAS

        def renumber(history: list[Any], user: dict[str, Any]) -> list[Any]:
            name, call = history[0], history[1]
            entry = entries.get(name)
            if entry is None:
                self.problem(user.get("name"), user.get("class_name", "?"),
                             f"uses layer {name!r}, which the model does not hold")
                return history
            call += shifts[name]
            first = _first_call(entry, target)
            calls = 1 if entry.get("class_name") == "InputLayer" else len(entry.get("inbound_nodes", []))
            if not first <= call < first + calls:
                self.problem(user.get("name"), user.get("class_name", "?"),
                             f"uses call {history[1]} of layer {name!r}, which the model does not hold")
            return [name, call, *history[2:]]

        for entry in entries.values():
            entry["inbound_nodes"] = [[renumber(item, entry) if isinstance(item, list) and len(item) >= 3 else item
                                       for item in node] for node in entry.get("inbound_nodes", [])]
        model = {"name": graph["name"], "class_name": "Functional"}
        for key in ("input_layers", "output_layers"):
            value = graph[key]
            graph[key] = (renumber(value, model) if _is_history(value)
                          else [renumber(item, model) if _is_history(item) else item for item in value])

    def endpoints(self, value: Any, name: str | None, class_name: str) -> Any:
        if isinstance(value, dict):
            self.problem(name, class_name, "inputs or outputs given as a dict; only tensors or lists translate")
            return value
        if self.source == TF_KERAS and isinstance(value, list) and len(value) == 1 and _is_history(value[0]):
            return value[0]  # NOTE: tf-keras wraps a single input or output in a list; Keras 3 would keep the list
        return value

    def layer_config(self, class_name: str, config: dict[str, Any], name: str | None) -> dict[str, Any]:
        if self.source == KERAS3:
            dropped = {**tables.KERAS3_ONLY_KEYS["*"], **tables.KERAS3_ONLY_KEYS.get(class_name, {})}
            renames = tables.RENAMED_KEYS.get(class_name, {})
            target = "tf-keras"
        else:
            dropped = dict(tables.TF_KERAS_ONLY_KEYS.get(class_name, {}))
            renames = {new: old for old, new in tables.RENAMED_KEYS.get(class_name, {}).items()}
            target = "Keras 3"
            if class_name != "InputLayer":
                dropped["batch_input_shape"] = tables.ANY  # a Sequential's first layer: see _sequential_input_first
        out: dict[str, Any] = {}
        for key, value in config.items():
            if key in dropped:
                if dropped[key] is not tables.ANY and not _same(value, dropped[key]):
                    self.problem(name, class_name, f"`{key}: {value!r}` has no {target} equivalent")
                continue
            if key == "dtype":
                out[key] = self.dtype(value, name, class_name)
            elif key == "axis" and self.source == TF_KERAS and isinstance(value, list) and len(value) == 1:
                out[key] = value[0]  # NOTE: tf-keras writes an axis as a list; Keras 3 BatchNormalization wants an int
            elif key in tables.ACTIVATION_KEYS:
                out[key] = self.activation(value, name, class_name)
            else:
                out[renames.get(key, key)] = self.value(value, name, class_name)
        return out

    # -- values inside a layer's config ----------------------------------------------

    def dtype(self, value: Any, name: str | None, class_name: str) -> Any:
        if isinstance(value, dict):
            policy = value.get("class_name")
            inner = value.get("config") if isinstance(value.get("config"), dict) else {}
            if policy not in _DTYPE_POLICIES:
                self.problem(name, class_name, f"dtype policy {policy} (a quantized layer) has no counterpart")
                return None
            value = inner.get("name")
        if isinstance(value, str) and "_from_" in value:
            self.problem(name, class_name, f"dtype policy {value!r} (a quantized layer) has no counterpart")
        return value

    def activation(self, value: Any, name: str | None, class_name: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(name, class_name, "a custom activation function, which the other Keras version cannot "
                                           "build")
            return value
        if self.source == TF_KERAS:
            return value  # NOTE: every tf-keras activation exists in Keras 3 under the same name
        value = tables.RENAMED_ACTIVATIONS.get(value, value)
        if value not in tables.TF_KERAS_ACTIVATIONS:
            self.problem(name, class_name, f"activation {value!r} is Keras 3 only; use one of "
                                           f"{', '.join(sorted(tables.TF_KERAS_ACTIVATIONS))}")
        return value

    def value(self, value: Any, name: str | None, class_name: str) -> Any:
        if isinstance(value, list):
            return [self.value(item, name, class_name) for item in value]
        if not isinstance(value, dict):
            return value
        inner_class = value.get("class_name")
        if inner_class == _TUPLE:
            return [self.value(item, name, class_name) for item in (value.get("config") or {}).get("value", [])]
        if not isinstance(inner_class, str) or "config" not in value:
            return {key: self.value(item, name, class_name) for key, item in value.items()}
        return self.object(value, name, class_name)

    def object(self, value: dict[str, Any], name: str | None, class_name: str) -> dict[str, Any]:
        """An initializer, regularizer or constraint: ``{"class_name", "config"}`` without Keras 3's extras."""
        inner_class = value["class_name"]
        module = value.get("module")
        if module is not None and not is_keras3_module(module) and module.split(".")[0] != "tf_keras":
            self.problem(name, class_name, f"{inner_class} is a custom class from module {module!r}")
        elif inner_class in tables.KERAS3_ONLY_OBJECTS and self.source == KERAS3:
            self.problem(name, class_name, f"{inner_class} is Keras 3 only")
        config = value.get("config")
        if isinstance(config, dict):
            config = {key: self.value(item, name, class_name) for key, item in config.items()
                      if not (self.source == KERAS3 and key in tables.KERAS3_ONLY_OBJECT_KEYS
                              and _same(item, tables.KERAS3_ONLY_OBJECT_KEYS[key]))}
        return {"class_name": inner_class, "config": config}

    # -- layer calls -------------------------------------------------------------------

    def node(self, node: Any, name: str | None, class_name: str) -> Any:
        if self.source == TF_KERAS:
            if isinstance(node, list) and any(_holds_history(entry[3]) for entry in node
                                              if isinstance(entry, list) and len(entry) == 4):
                self.problem(name, class_name, "is called with a tensor as a keyword argument")
            return node
        if isinstance(node, list):
            return node  # already the layout tf-keras reads (a Keras 3 legacy .h5 file)
        args, kwargs = node.get("args", []), node.get("kwargs", {}) or {}
        if len(args) != 1:
            self.problem(name, class_name, f"is called with {len(args)} positional inputs; only calls on one "
                                           "tensor or one list of tensors translate")
            return []
        tensors = _tensors(args[0])
        if tensors is None:
            self.problem(name, class_name, "is called on a structure other than a tensor or a list of tensors")
            return []
        # NOTE: Keras 3 records the `training` flag of the call that built the graph; tf-keras would
        # replay it on every later call (Dropout off while fine-tuning), so it is left to the caller.
        call = {key: _history_or_value(item) for key, item in kwargs.items()
                if key != "training" and not (key == "mask" and item is None)}
        return [[*history, call] for history in tensors]


def _first_call(entry: dict[str, Any], version: str) -> int:
    """The number ``version`` gives the first call recorded in a config of a layer (see renumber_calls)."""
    if version == KERAS3:
        return 0
    class_name = entry.get("class_name")
    layers = (entry.get("config") or {}).get("layers") or [{}]
    if class_name in ("Functional", "Model"):
        return 1
    starts_with_input = isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer"
    return int(class_name == "Sequential" and starts_with_input)


def _same(value: Any, default: Any) -> bool:
    if default is None or isinstance(default, bool):
        return value is default
    return not isinstance(value, bool) and value == default


def _is_history(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and isinstance(value[1], int) and isinstance(value[2], int))


def _holds_history(value: Any) -> bool:
    if _is_history(value):
        return True
    if isinstance(value, dict):
        return any(_holds_history(item) for item in value.values())
    return isinstance(value, list) and any(_holds_history(item) for item in value)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == _TENSOR


def _tensors(value: Any) -> list[list[Any]] | None:
    """``[layer, node, tensor]`` of a serialised tensor or list of them; None for another structure."""
    if _is_tensor(value):
        return [list(value["config"]["keras_history"])]
    if isinstance(value, dict) and value.get("class_name") == _TUPLE:
        value = (value.get("config") or {}).get("value", [])
    if isinstance(value, list) and value and all(_is_tensor(item) for item in value):
        return [list(item["config"]["keras_history"]) for item in value]
    return None


def _history_or_value(value: Any) -> Any:
    if _is_tensor(value):
        return list(value["config"]["keras_history"])
    if isinstance(value, list):
        return [_history_or_value(item) for item in value]
    return value


def _sequential_input_first(layers: list[Any]) -> list[Any]:
    """A tf-keras Sequential's layers with an InputLayer first.

    tf-keras keeps the input shape of a Sequential built without ``keras.Input`` on its first
    layer (``batch_input_shape``), which Keras 3 layers do not accept.
    """
    first = layers[0] if layers and isinstance(layers[0], dict) else None
    config = first.get("config") if first is not None else None
    if not isinstance(config, dict) or first.get("class_name") == "InputLayer" or "batch_input_shape" not in config:
        return layers
    shape = {"batch_input_shape": config["batch_input_shape"], "dtype": config.get("dtype"),
             "name": f"{config.get('name', 'input')}_input"}
    return [{"class_name": "InputLayer", "config": shape}, *layers]
