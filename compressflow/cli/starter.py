"""``compressflow init``: write a starter pipeline, for the user's own model file or the built-in example.

For a model file the pipeline loads it, converts it to a float TFLite baseline, prunes it,
quantizes it to int8, evaluates all of them and exports the int8 model. The input shape
and number of classes are read from the file without TensorFlow (the ``config.json`` of a
``.keras`` file, the ``model_config`` of an ``.h5`` file when h5py is there) to pick the
data: the bundled digits when the model fits them, else an ``.npz`` file to provide.

The pipeline starts with a ``yaml-language-server`` line naming the JSON Schema, written
beside it, so editors with YAML support complete and check it (see docs/editors.md).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressflow.errors import UsageError

EXIT_OK = 0
SCHEMA_FILE = ".compressflow/pipeline.schema.json"
#: The dataset a starter for a model of unknown input reads: the user provides the file afterwards.
DATA_FILE = "data.npz"

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TFLITE_MAGIC = b"TFL3"  # at offset 4 of a .tflite flatbuffer
MODEL_FORMATS = ("a .keras file is a zip archive holding config.json, an .h5 file starts with the HDF5 "
                 "signature, a SavedModel is a folder holding saved_model.pb")


@dataclass
class ModelFacts:
    """What the starter needs to know about a model, when the file says it."""

    input_shape: tuple[int | None, ...] | None = None
    classes: int | None = None
    activation: str | None = None


def model_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a model file the load stage can read (.keras, .h5, SavedModel), or None.

    Only the file's first bytes (and a .keras archive's member names) are read: no TensorFlow.
    """
    if path.is_dir():
        return None if (path / "saved_model.pb").is_file() else "it is a folder without saved_model.pb"
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        return f"it cannot be read: {exc.strerror or exc}"
    if head == _HDF5_MAGIC:
        return None
    if head.startswith(_ZIP_MAGIC):
        return _keras_archive_problem(path)
    if head[4:8] == _TFLITE_MAGIC:
        return "it is a TFLite model; start from the Keras model it was converted from"
    if not head:
        return "it is empty"
    return "it is neither a zip archive nor an HDF5 file"


def _keras_archive_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        return f"it is not a readable zip archive ({exc})"
    if "config.json" not in names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        return f"it is a zip archive without config.json (it holds {shown or 'nothing'})"
    if path.suffix != ".keras":
        return f"it is a .keras archive named {path.suffix or 'without a suffix'}; Keras loads one only as .keras"
    return None


def inspect_model_file(path: Path) -> ModelFacts:
    """Input shape, classes and last activation of a model file, read without TensorFlow.

    The config is read within the limits every model file is read with (archive size, member
    size, nesting depth): a file over one is refused with the limit's message, as ``validate``
    would refuse it; a file that holds no readable config gives a starter without those facts.
    """
    from compressflow.models.file_limits import ModelFileLimit
    from compressflow.models.safety import HDF5, KERAS_ZIP, ModelFileError, read_stored_config

    fmt = KERAS_ZIP if path.suffix == ".keras" else HDF5 if path.suffix in (".h5", ".hdf5") else None
    if fmt is None:
        return ModelFacts()
    try:
        [(config, _)] = read_stored_config(path, fmt)
    except ModelFileLimit as exc:
        raise UsageError(str(exc)) from exc
    except (ImportError, ModelFileError, ValueError):  # NOTE: h5py comes with TensorFlow; the starter works without it
        return ModelFacts()
    return _facts(config) if isinstance(config, dict) else ModelFacts()


def _facts(config: dict[str, Any]) -> ModelFacts:
    layers = (config.get("config") or {}).get("layers") or []
    facts = ModelFacts()
    for layer in layers:
        shape = (layer.get("config") or {}).get("batch_input_shape") or (layer.get("config") or {}).get("batch_shape")
        if shape:
            facts.input_shape = tuple(shape[1:])
            break
    if layers:
        last = layers[-1].get("config") or {}
        units = last.get("units")
        facts.classes = units if isinstance(units, int) else None
        activation = last.get("activation")
        facts.activation = activation if isinstance(activation, str) else None
    return facts


# --------------------------------------------------------------------------- the pipeline text


def _dataset_block(facts: ModelFacts) -> tuple[str, str]:
    """(datasets YAML, a comment about the data) that fit the model's input."""
    if facts.input_shape in ((8, 8, 1), (64,)) and facts.classes in (None, 10):
        layout = "image" if facts.input_shape == (8, 8, 1) else "flat"
        return (f"  data:\n    type: sklearn_digits          # bundled with scikit-learn: works offline\n"
                f"    layout: {layout}\n    validation_fraction: 0.2\n", "")
    shape = "x".join("?" if d is None else str(d) for d in facts.input_shape) if facts.input_shape else "?"
    return ("  data:\n    type: npz                     # arrays x (inputs) and y (integer labels)\n"
            f"    path: {DATA_FILE}\n    validation_fraction: 0.2\n",
            f"# Put your data in {DATA_FILE} beside this file: x of shape (samples, {shape}) as float32, y the\n"
            "# class of each sample (0, 1, ...). Other dataset types: compressflow stages (see docs/stages.md).\n")


def model_pipeline(name: str, model_path: str, facts: ModelFacts, schema: str, *, trainable: bool = True) -> str:
    """A starter pipeline compressing the model at ``model_path`` (relative to the pipeline).

    ``trainable`` False (a plain SavedModel: a graph, no Keras layers) leaves pruning out: the
    model goes straight to post-training int8.
    """
    datasets, data_note = _dataset_block(facts)
    stem = Path(model_path).stem.replace(" ", "-") or "model"
    seen = ", ".join(filter(None, [
        f"input {tuple(facts.input_shape)}" if facts.input_shape else "",
        f"{facts.classes} outputs" if facts.classes else "",
        f"last activation {facts.activation}" if facts.activation else ""]))
    return f"""# yaml-language-server: $schema={schema}
# Compress {model_path}{f' ({seen})' if seen else ''}: {'prune it, ' if trainable else ''}quantize it to int8, compare
# with a float TFLite baseline and export the int8 model.
#   compressflow validate {name}.yaml   # check this file
#   compressflow run {name}.yaml        # run it; re-runs reuse what did not change
#   compressflow report {name}.yaml     # HTML report of the last run
{data_note}version: 1
name: {name}
seed: 0

{_PARAMS if trainable else ""}datasets:
{datasets}
stages:
  base:
    type: load
    path: {json.dumps(model_path)}

  float:                          # the float TFLite conversion: the fair size baseline
    type: quantize
    model: base
    method: float32

{_pruning_block() if trainable else ""}  int8:
    type: quantize
    model: {"pruned" if trainable else "base"}
    method: int8                  # full integer; data gives the representative samples
    data: data

  check:
    type: evaluate
    models: [float, base, {"pruned, " if trainable else ""}int8]
    baseline: float
    data: data
    require: {{max_accuracy_drop: 0.02}}

  release:
    type: export
    model: int8
    format: tflite
    to: out/{stem}-int8.tflite
    metrics: check
"""


_PARAMS = """params:
  sparsity: 0.8                   # override: --set params.sparsity=0.9

"""


def _pruning_block() -> str:
    return """  pruned:
    type: prune
    model: base
    data: data
    schedule: {type: polynomial_decay, initial_sparsity: 0.5, final_sparsity: "${params.sparsity}"}
    epochs: 5

"""


def example_pipeline(name: str, schema: str) -> str:
    """The built-in example: a small CNN built by a function, trained and compressed on digits."""
    return f"""# yaml-language-server: $schema={schema}
# A starter pipeline: train a small CNN on scikit-learn's bundled digits (offline), prune it,
# quantize it to int8, compare with a float TFLite baseline and export the int8 model.
# For your own model: compressflow init --model path/to/model.keras
#   compressflow run {name}.yaml && compressflow report {name}.yaml
version: 1
name: {name}
seed: 0

params:
  sparsity: 0.9

datasets:
  digits:
    type: sklearn_digits
    validation_fraction: 0.2

stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
    args: {{input_shape: [8, 8, 1], classes: 10}}

  trained:
    type: fine_tune
    model: base
    data: digits
    epochs: 15

  float:
    type: quantize
    model: trained
    method: float32

  pruned:
    type: prune
    model: trained
    data: digits
    schedule: {{type: polynomial_decay, initial_sparsity: 0.5, final_sparsity: "${{params.sparsity}}", end_epoch: 6}}
    epochs: 16

  int8:
    type: quantize
    model: pruned
    method: int8
    data: digits

  check:
    type: evaluate
    models: [float, trained, pruned, int8]
    baseline: float
    data: digits
    require: {{max_accuracy_drop: 0.01}}

  release:
    type: export
    model: int8
    format: tflite
    to: out/{name}-int8.tflite
    metrics: check
"""


def _pipeline_name(output: Path) -> str:
    name = "".join(c if c.isalnum() or c in "_-" else "-" for c in output.stem).strip("-") or "pipeline"
    return name if name[0].isalpha() else f"p-{name}"


def write_starter(args) -> int:
    """``compressflow init``: write the pipeline and its schema, then check that it validates."""
    from compressflow.dsl import pipeline_json_schema
    from compressflow.stages.saved_model import is_plain_saved_model

    output = Path(args.output)
    if output.exists() and not args.force:
        raise UsageError(f"{output} exists; pass --force to overwrite it, or -o to write elsewhere")
    folder = output.resolve().parent
    schema_path = folder / SCHEMA_FILE
    name = _pipeline_name(output)
    outside = False
    if args.model:
        model = Path(args.model)
        _check_model_argument(args.model, model)
        relative = os.path.relpath(model.resolve(), folder)
        outside = relative.startswith("..")
        text = model_pipeline(name, Path(relative).as_posix(), inspect_model_file(model), SCHEMA_FILE,
                              trainable=not is_plain_saved_model(model))
    else:
        text = example_pipeline(name, SCHEMA_FILE)
    folder.mkdir(parents=True, exist_ok=True)
    schema_path.parent.mkdir(parents=True, exist_ok=True)
    schema_path.write_text(json.dumps(pipeline_json_schema(), indent=2))
    output.write_text(text)
    _validate_starter(output, outside)
    print(f"wrote {output} (and its JSON Schema {schema_path.relative_to(folder)} for editors)")
    if outside:
        print(f"note: the model is outside {folder}; pass --allow-outside-paths to validate, plan and run, "
              "or move it beside the pipeline")
    if "type: npz" in text:
        print(f"next: put your data in {folder / DATA_FILE} (arrays x and y), then: compressflow run {output}")
    else:
        print(f"next: compressflow run {output}")
    return EXIT_OK


def _check_model_argument(given: str, model: Path) -> None:
    """Refuse ``--model`` when it names nothing, or something that is not a Keras model."""
    from compressflow.dsl.file_checks import missing_path

    missing = missing_path(given, model.resolve(), Path.cwd(), "model file")
    if missing:
        message, hint = missing
        raise UsageError(message + (f"; {hint}" if hint else ""))
    problem = model_file_problem(model)
    if problem:
        raise UsageError(f"{given} is not a Keras model file: {problem} ({MODEL_FORMATS})")


def _validate_starter(output: Path, outside: bool) -> None:
    """Load the written pipeline: a starter that does not validate is a bug.

    The one problem allowed is the data file a starter for an unknown input asks the user for.
    """
    from compressflow.dsl import load_pipeline
    from compressflow.errors import PipelineError

    try:
        load_pipeline(output, allow_outside_paths=outside)
    except PipelineError as exc:
        left = [p for p in exc.problems if p.path != ("datasets", "data", "path")]
        if left or (output.parent / DATA_FILE).exists():
            raise
