"""Inspect a model file's stored config before anything is deserialised.

tf-keras runs Python code from a model file in several ways: a ``Lambda`` layer
carries marshalled bytecode (and legacy ``.h5``/SavedModel loading ignores
``safe_mode``), and the ``.keras`` loader imports whatever module a config entry
names. So the stored config is read with plain ``zipfile``/``h5py``/protobuf
wire decoding, every object in it is checked, and the file is refused unless the
stage says ``trust: true``.

This module does not import TensorFlow. The classes of tf-keras, Keras and Python's builtins
are known, and so are TensorFlow's own initializers, regularizers and constraints (a model built
with ``tf.constant_initializer`` names one); whether any other class counts is decided by a
callable the caller passes: what is registered in the running process (see
``compressflow.stages.tfutil``), or, before anything runs, what the modules of ``imports:``
register (see :mod:`compressflow.models.registrations`).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from compressflow.errors import StageFailed, UnsafeModelError
from compressflow.models import file_limits

KERAS_ZIP = "keras"
HDF5 = "h5"
SAVED_MODEL = "saved_model"

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CODE_CLASSES = {"Lambda": "a Lambda layer: its Python bytecode would run",
                 "__lambda__": "a serialised Python lambda: its bytecode would run"}
_KERAS_MODULES = ("keras", "tf_keras")
# Config keys under which TensorFlow's own initializers, regularizers and constraints are trusted.
_TF_OBJECT_ROLE = re.compile(r"(^|_)(initializer|regularizer|constraint)$")
#: How a custom class becomes known without ``trust:``.
IMPORTS_WAY = ("register the class with tf_keras.saving.register_keras_serializable in a module of yours "
               "and list that module under `imports:`")
# SavedModel metadata nodes that are deserialised as layers or models.
_LAYER_NODE_PREFIXES = ("_tf_keras_layer", "_tf_keras_input_layer", "_tf_keras_network",
                        "_tf_keras_model", "_tf_keras_sequential", "_tf_keras_rnn_layer")

# (class_name, module or None, registered_name or None) -> True when the class is safe to build.
IsKnownClass = Callable[[str, "str | None", "str | None"], bool]


class ModelFileError(StageFailed):
    """A model file is missing, truncated, corrupt or not a Keras model."""


@dataclass(frozen=True)
class StoredObject:
    """One serialised object (layer, initializer, function...) found in a stored config."""

    class_name: str
    layer: str | None
    module: str | None
    registered_name: str | None
    is_layer: bool
    role: str | None = None  # the config key the object is the value of, e.g. "bias_initializer"


@dataclass(frozen=True)
class Finding:
    """Something in a model file that would run code on load."""

    layer: str | None
    class_name: str
    reason: str
    custom_class: bool = False  # a class to import (registering it makes it known), not code in the file

    def describe(self) -> str:
        where = f"layer {self.layer!r}" if self.layer else "an object"
        return f"{where} is {self.reason}"


def detect_format(path: Path) -> str:
    """``keras`` (zip), ``h5`` or ``saved_model``, from the file's bytes (then its suffix)."""
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SAVED_MODEL
        raise ModelFileError(f"{path} is a folder without saved_model.pb, so not a SavedModel")
    if not path.is_file():  # NOTE: a FIFO would block the open below forever
        raise ModelFileError(f"model file {path} is not a regular file (a FIFO, a device or a socket)")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_ZIP_MAGIC):
        return KERAS_ZIP
    if head == _HDF5_MAGIC:
        return HDF5
    if path.suffix in (".keras", ".h5", ".hdf5"):
        raise ModelFileError(f"model file {path} is corrupt: it does not start like a {path.suffix} file "
                             f"({len(head)} bytes read)")
    raise ModelFileError(f"{path} is not a Keras model file (.keras, .h5) or a SavedModel folder")


def read_stored_config(path: Path, fmt: str) -> list[tuple[Any, bool]]:
    """The stored configs of a model file, each with whether it is in the new (.keras) format."""
    try:
        if fmt == KERAS_ZIP:
            return [(_read_keras_zip_config(path), True)]
        if fmt == HDF5:
            return [(_read_h5_config(path), False)]
        return [(meta, False) for meta in _read_saved_model_metadata(path)]
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ModelFileError(f"model file {path} is corrupt or truncated: {exc}") from exc


def stored_keras_version(path: Path, fmt: str) -> str | None:
    """The Keras version that saved a model file (``"3.15.1"``, ``"2.21.0"``), from its metadata.

    A ``.keras`` file has it in ``metadata.json``, an ``.h5`` file in its ``keras_version``
    attribute; None when the file does not say (a SavedModel is always tf-keras). Raises
    :class:`ModelFileError` for a corrupt file.
    """
    try:
        if fmt == KERAS_ZIP:
            with zipfile.ZipFile(path) as archive:
                file_limits.check_archive(archive, path)
                if "metadata.json" not in archive.namelist():
                    return None
                data = file_limits.read_member(archive, "metadata.json", path)
                file_limits.check_config_depth(data, path, "metadata.json")
                version = json.loads(data).get("keras_version")
        elif fmt == HDF5:
            import h5py

            with h5py.File(path, "r") as fh:
                version = fh.attrs.get("keras_version")
            version = version.decode() if isinstance(version, bytes) else version
        else:
            return None
    except (OSError, ValueError, KeyError, AttributeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ModelFileError(f"model file {path} is corrupt or truncated: {exc}") from exc
    return str(version) if version else None


def is_keras3_version(version: str | None) -> bool:
    """Whether a stored Keras version is Keras 3 (tf-keras writes 2.x)."""
    return bool(version) and str(version).split(".")[0] == "3"


def _read_keras_zip_config(path: Path) -> Any:
    # NOTE: only the members read here are decompressed (and CRC-checked by reading them whole); the
    # weights are checked by Keras when it reads them. Checking every member up front would decompress
    # gigabytes on every validate, once per entry of a zip whose entries all point at one member.
    with zipfile.ZipFile(path) as archive:
        file_limits.check_archive(archive, path)
        names = archive.namelist()
        if "config.json" not in names:
            raise ModelFileError(f"model file {path} has no config.json (it holds {', '.join(names) or 'nothing'})")
        data = file_limits.read_member(archive, "config.json", path)
    file_limits.check_config_depth(data, path, "config.json")
    return json.loads(data)


def _read_h5_config(path: Path) -> Any:
    import h5py

    with h5py.File(path, "r") as fh:
        if "model_config" not in fh.attrs:
            raise ModelFileError(f"{path} holds no model config (a weights-only file?); load the architecture "
                                 "with `builder` or `application` and give this file as `weights`")
        file_limits.check_config_size(fh.attrs.get_id("model_config").get_storage_size(), path,
                                      "model_config attribute is")
        raw = fh.attrs.get("model_config")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    file_limits.check_config_depth(text, path, "model_config attribute")
    return json.loads(text)


def _read_saved_model_metadata(path: Path) -> list[Any]:
    meta_file = path / "keras_metadata.pb"
    if not meta_file.is_file():
        raise ModelFileError(f"SavedModel {path} has no keras_metadata.pb: it was not saved by Keras, "
                             "so it cannot be loaded as a Keras model")
    file_limits.check_config_size(meta_file.stat().st_size, path, "keras_metadata.pb is")
    metadata = []
    for node in _proto_fields(meta_file.read_bytes(), want=1):
        fields = dict(_proto_pairs(node))
        identifier = fields.get(4, b"").decode()
        text = fields.get(5, b"").decode()
        if text:
            file_limits.check_config_depth(text, path, "keras_metadata.pb")
            metadata.append({"__identifier__": identifier, **json.loads(text)})
    return metadata


# --------------------------------------------------------------------------- protobuf wire format


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _proto_pairs(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) pairs of a serialised message; LEN fields give bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated protobuf field")
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _proto_fields(data: bytes, want: int) -> Iterator[bytes]:
    return (value for number, value in _proto_pairs(data) if number == want)


# --------------------------------------------------------------------------- config walk


def iter_objects(config: Any, new_format: bool) -> Iterator[StoredObject]:
    """Every serialised object in ``config`` with the name of the layer it belongs to."""
    yield from _walk(config, layer=None, new_format=new_format, in_layer_list=True)


def _walk(node: Any, layer: str | None, new_format: bool, in_layer_list: bool,
          role: str | None = None) -> Iterator[StoredObject]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, layer, new_format, in_layer_list, role)
        return
    if not isinstance(node, dict):
        return
    class_name = node.get("class_name")
    is_layer = False
    if isinstance(class_name, str):
        inner = node.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        identifier = node.get("__identifier__")
        is_layer = in_layer_list if identifier is None else identifier.startswith(_LAYER_NODE_PREFIXES)
        if is_layer:
            layer = name if isinstance(name, str) else node.get("name", layer)
        module = node.get("module") if new_format else None
        registered = node.get("registered_name") if new_format else None
        yield StoredObject(class_name, layer, module if isinstance(module, str) else None,
                           registered if isinstance(registered, str) else None, is_layer, role)
    for key, value in node.items():
        yield from _walk(value, layer, new_format, in_layer_list=key in ("layers", "layer"), role=key)


def find_code(configs: list[tuple[Any, bool]], is_known: IsKnownClass) -> list[Finding]:
    """Objects that would run Python code from the file (or import code it names) on load."""
    findings: dict[tuple[str | None, str], Finding] = {}
    for config, new_format in configs:
        for obj in iter_objects(config, new_format):
            if obj.class_name in _CODE_CLASSES:
                finding = Finding(obj.layer, obj.class_name, _CODE_CLASSES[obj.class_name])
            else:
                reason = _custom_class_reason(obj, new_format, is_known)
                finding = Finding(obj.layer, obj.class_name, reason, custom_class=True) if reason else None
            if finding:
                findings.setdefault((obj.layer, obj.class_name), finding)
    return list(findings.values())


def _custom_class_reason(obj: StoredObject, new_format: bool, is_known: IsKnownClass) -> str | None:
    if new_format:
        if obj.module is None or obj.module == "builtins" or obj.module.split(".")[0] in _KERAS_MODULES:
            return None
        if is_tensorflow_object(obj) or is_known(obj.class_name, obj.module, obj.registered_name):
            return None
        registered = (f" (registered name {obj.registered_name!r})"
                      if obj.registered_name and obj.registered_name != obj.class_name else "")
        return f"a custom class {obj.class_name} from module {obj.module!r}{registered}, which would be imported"
    if obj.is_layer and not is_known(obj.class_name, None, None):
        return f"a custom layer class {obj.class_name}, neither built into tf-keras nor registered"
    return None


def is_tensorflow_object(obj: StoredObject) -> bool:
    """Whether ``obj`` is one of TensorFlow's own initializers, regularizers or constraints.

    Such as ``Constant`` from ``tensorflow.python.ops.init_ops_v2`` (``tf.constant_initializer``, which
    keras.applications' EfficientNets use): the class must be defined in that TensorFlow module and
    stand where the layer expects an initializer, regularizer or constraint. tf-keras imports the
    module, which is TensorFlow's, not code from the file.
    """
    if not obj.module or obj.module.split(".")[0] != "tensorflow" or not obj.role:
        return False
    return bool(_TF_OBJECT_ROLE.search(obj.role)) and obj.class_name in _classes_defined_in(obj.module)


@functools.lru_cache(maxsize=64)
def _classes_defined_in(module: str) -> frozenset[str]:
    """Names of the public classes a module's source defines at its top level (read, not imported)."""
    from compressflow.user_modules import find_module_source

    source = find_module_source(module)
    if source is None or source.suffix != ".py":
        return frozenset()
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (SyntaxError, ValueError, OSError):
        return frozenset()
    return frozenset(node.name for node in tree.body
                     if isinstance(node, ast.ClassDef) and not node.name.startswith("_"))


def check_model_file(path: Path, *, trust: bool, is_known: IsKnownClass, opt_in: str) -> str:
    """Refuse a model file that would run code on load, unless ``trust``; return its format.

    Raises :class:`UnsafeModelError` naming each offending layer and ``opt_in``
    (how to allow it), or :class:`ModelFileError` for a missing or corrupt file.
    """
    fmt = check_file_limits(path)
    if trust:
        return fmt
    findings = find_code(read_stored_config(path, fmt), is_known)
    if findings:
        raise UnsafeModelError(refusal(path, findings, opt_in))
    return fmt


def check_file_limits(path: Path) -> str:
    """Refuse a model file that is over a bound of :mod:`~compressflow.models.file_limits`; return its format.

    Run whether or not the file is trusted: ``trust: true`` lets a file run code, not exhaust the
    machine while it is read. Raises :class:`~compressflow.models.file_limits.ModelFileLimit`, or
    :class:`ModelFileError` for a missing file; a corrupt one is left to the reader that needs it.
    """
    fmt = detect_format(path)
    if fmt == SAVED_MODEL:
        file_limits.check_links_stay_inside(path)
        if not (path / "keras_metadata.pb").is_file():
            return fmt  # a plain SavedModel: TensorFlow reads its graph
    try:
        read_stored_config(path, fmt)
        stored_keras_version(path, fmt)
    except (ModelFileError, ImportError):
        pass
    return fmt


def refusal(path: Path, findings: list[Finding], opt_in: str) -> str:
    """Why ``path`` is refused and the ways forward: ``imports:`` for custom classes, ``opt_in`` (trust)."""
    listed = "; ".join(f.describe() for f in findings)
    if all(f.custom_class for f in findings):
        return (f"refusing to load {path}: {listed}. To load it, {IMPORTS_WAY}; or, if you trust this file "
                f"and the module it names, {opt_in}.")
    code = " Loading it would run code from the file."
    custom = f" For the custom classes, {IMPORTS_WAY}." if any(f.custom_class for f in findings) else ""
    return f"refusing to load {path}: {listed}.{code}{custom} If you trust this file, {opt_in}."
