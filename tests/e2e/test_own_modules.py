"""The user's own modules beside the pipeline: builders, dataset functions and ``imports:``.

A project folder holds ``mymodels.py`` (a builder), ``mydata.py`` (a python dataset) and
``mylayers.py``, which registers a custom layer and a custom activation function with tf-keras.
Runs start in another folder with no ``PYTHONPATH`` pointing at the project, in one process
and with ``--jobs 2``. The activation is found only through its registration (tf-keras stores
``shop>swishy`` and no module to import), so a stage that deserializes the model in a process
where ``mylayers`` was not imported fails: forcing ``trained`` while ``base`` is cached shows
that ``imports:`` are imported where a model is loaded, not where it was built.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from helpers import cli, write

MYLAYERS = '''
"""Custom objects of the project."""
import tf_keras


@tf_keras.saving.register_keras_serializable(package="shop")
def swishy(x):
    return x * tf_keras.activations.sigmoid(x)


@tf_keras.saving.register_keras_serializable(package="shop")
class Scale(tf_keras.layers.Layer):
    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''

MYMODELS = '''
import tf_keras

from mylayers import Scale, swishy


def net(width=16, classes=10):
    inputs = tf_keras.Input((64,), name="pixels")
    x = tf_keras.layers.Dense(width, activation=swishy, name="hidden")(inputs)
    x = Scale(0.5, name="scale")(x)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(classes, activation="softmax", name="probs")(x))
'''

MYDATA = '''
import numpy as np
from sklearn.datasets import load_digits


def digits(limit=300):
    x, y = load_digits(return_X_y=True)
    return np.asarray(x[:limit], "float32") / 16.0, y[:limit]
'''

PIPELINE = """
version: 1
name: own
imports: [mylayers]
datasets:
  digits: {type: python, function: "mydata:digits", args: {limit: 300}}
stages:
  base: {type: load, builder: "mymodels:net"}
  wide: {type: load, builder: "mymodels:net", args: {width: 24}}
  trained: {type: fine_tune, model: base, data: digits, epochs: 1}
  trained_wide: {type: fine_tune, model: wide, data: digits, epochs: 1}
  check: {type: evaluate, models: [trained, trained_wide], data: digits, latency: null}
"""


def make_project(folder: Path, pipeline: str = PIPELINE) -> Path:
    """The project's modules and pipeline in ``folder``; returns the pipeline file."""
    write(folder / "mylayers.py", MYLAYERS)
    write(folder / "mymodels.py", MYMODELS)
    write(folder / "mydata.py", MYDATA)
    return write(folder / "own.yaml", pipeline)


def keys(pipeline: Path, env: dict | None = None) -> dict[str, str]:
    result = cli("plan", pipeline, "--json", cwd=pipeline.parent.parent, env=env)
    assert result.code == 0, result.text
    return {name: item["key"] for name, item in json.loads(result.out).items()}


def outcomes(result) -> dict[str, str]:
    """Stage name -> ``done`` or ``cached``, from a plain run's lines."""
    found = {}
    for line in result.out.splitlines():
        name, _, rest = line.strip().partition(": ")
        if rest.startswith(("done in", "cached")):
            found[name] = rest.split()[0]
    return found


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory that is not the project's."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def test_keys_depend_on_the_sources_not_on_the_folder_or_pythonpath(tmp_path: Path):
    first = make_project(tmp_path / "first")
    moved = make_project(tmp_path / "somewhere" / "else")
    decoy = tmp_path / "decoy"  # other modules of the same names, earlier on PYTHONPATH
    write(decoy / "mymodels.py", MYMODELS.replace("width=16", "width=99"))
    write(decoy / "mylayers.py", MYLAYERS + "\nEXTRA = 1\n")
    plain = keys(first)
    assert set(plain) == {"base", "wide", "trained", "trained_wide", "check"}
    assert keys(moved) == plain
    for pythonpath in (first.parent, decoy):
        assert keys(first, env={"PYTHONPATH": os.pathsep.join([str(pythonpath), os.environ["PYTHONPATH"]])}) == plain

    (moved.parent / "mylayers.py").write_text(MYLAYERS + "\n# a comment changes the source\n")
    edited = keys(moved)
    assert all(edited[name] != plain[name] for name in plain)  # every stage loads models


PLUGIN = '''
import json
import os
from typing import Literal

from compressflow.stages.base import Stage
from compressflow.stages.registry import register_stage


@register_stage
class Stamp(Stage):
    type: Literal["stamp"] = "stamp"
    text: str

    def run(self, ctx):
        ctx.write_json("value.json", {"text": self.text, "pid": os.getpid()})
        ctx.set_output("number", "value.json")
'''


def test_a_plugin_module_beside_the_pipeline_defines_stage_types_in_every_process(tmp_path, elsewhere):
    write(tmp_path / "project" / "shop_plugin.py", PLUGIN)
    pipeline = write(tmp_path / "project" / "stamps.yaml", """
        version: 1
        name: stamps
        stages:
          one: {type: stamp, text: a}
          two: {type: stamp, text: b}
        """)
    env = {"COMPRESSFLOW_PLUGINS": "toy_stages,shop_plugin"}
    assert cli("validate", pipeline, cwd=elsewhere, env=env).code == 0
    for jobs in ("1", "2"):
        result = cli("run", pipeline, "--progress", "plain", "--jobs", jobs, "--force", cwd=elsewhere, env=env)
        assert result.code == 0, result.text
        assert outcomes(result) == {"one": "done", "two": "done"}


@pytest.mark.slow  # a local Dask cluster
def test_dask_workers_import_the_plugin_beside_the_pipeline(tmp_path, elsewhere):
    write(tmp_path / "project" / "shop_plugin.py", PLUGIN)
    pipeline = write(tmp_path / "project" / "stamps.yaml", """
        version: 1
        name: stamps
        stages:
          one: {type: stamp, text: a}
        """)
    result = cli("run", pipeline, "--progress", "plain", "--executor", "dask", "--workers", "1", cwd=elsewhere,
                 env={"COMPRESSFLOW_PLUGINS": "toy_stages,shop_plugin"})
    assert result.code == 0, result.text
    assert outcomes(result) == {"one": "done"}


def test_what_imports_register_is_read_from_their_source(tmp_path: Path):
    from compressflow.models.registrations import find_registrations

    write(tmp_path / "plain.py", """
        import tf_keras
        from tf_keras.saving import register_keras_serializable as register

        @tf_keras.saving.register_keras_serializable(package="shop", name="Gain")
        class GainLayer(tf_keras.layers.Layer):
            pass

        @register("shop")
        def swishy(x):
            return x

        class Later(tf_keras.layers.Layer):
            pass

        register("late")(Later)
        """)
    write(tmp_path / "computed.py", """
        import tf_keras
        NAME = "x"

        @tf_keras.saving.register_keras_serializable("calc", name=NAME)
        class Calc(tf_keras.layers.Layer):
            pass
        """)
    write(tmp_path / "by_hand.py", """
        import tf_keras

        class Hand:
            pass

        tf_keras.saving.get_custom_objects()["Hand"] = Hand
        """)
    write(tmp_path / "outer.py", "import inner  # noqa\n")
    write(tmp_path / "inner.py", """
        import tf_keras

        @tf_keras.saving.register_keras_serializable()
        class Deep(tf_keras.layers.Layer):
            pass
        """)

    plain = find_registrations(("plain",), tmp_path)
    assert plain.names == {"shop>Gain", "shop>swishy", "late>Later"} and not plain.dynamic
    assert not plain.registers("shop>GainLayer") and not plain.registers("Gain")
    computed = find_registrations(("computed",), tmp_path)
    assert computed.registers("calc>anything") and not computed.registers("shop>Gain")
    assert find_registrations(("by_hand",), tmp_path).registers("Hand")  # cannot tell: the stage checks
    assert find_registrations(("outer",), tmp_path).registers("Custom>Deep")  # through a module beside it


def test_a_builder_fingerprint_holds_the_modules_beside_the_pipeline_it_imports(tmp_path: Path):
    from compressflow.user_modules import module_source_fingerprint

    make_project(tmp_path)
    write(tmp_path / "unrelated.py", "X = 1\n")
    before = module_source_fingerprint("mymodels", tmp_path)
    (tmp_path / "unrelated.py").write_text("X = 2\n")
    assert module_source_fingerprint("mymodels", tmp_path) == before
    (tmp_path / "mylayers.py").write_text(MYLAYERS + "\n# edited\n")
    assert module_source_fingerprint("mymodels", tmp_path) != before


def unregistered_model_file(path: Path) -> Path:
    """A .keras file whose layer 'scale' is class Scale of module trainer_layers, registered as shop>Scale."""
    layer = {"module": "trainer_layers", "class_name": "Scale", "registered_name": "shop>Scale", "name": "scale",
             "config": {"name": "scale", "trainable": True, "dtype": "float32", "factor": 0.5},
             "inbound_nodes": [[["pixels", 0, 0, {}]]]}
    pixels = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "pixels",
              "config": {"batch_input_shape": [None, 64], "dtype": "float32", "name": "pixels"}, "inbound_nodes": []}
    config = {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
              "config": {"name": "net", "layers": [pixels, layer], "input_layers": [["pixels", 0, 0]],
                         "output_layers": [["scale", 0, 0]]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "2.21.0"}))
    return path


def test_a_custom_class_nothing_registers_is_refused_before_anything_runs(tmp_path: Path):
    project = tmp_path / "project"
    make_project(project)
    unregistered_model_file(project / "saved" / "net.keras")
    refused = write(project / "refused.yaml", """
        version: 1
        name: refused
        stages:
          net: {type: load, path: saved/net.keras}
        """)
    for command in ("validate", "run"):
        result = cli(command, refused, cwd=tmp_path)
        assert result.code == 2, result.text
        assert f"{refused}:4:" in result.err and "Traceback" not in result.text
        assert "layer 'scale' is a custom class Scale from module 'trainer_layers'" in result.err
        assert "`imports:`" in result.err and "register_keras_serializable" in result.err
        assert "`trust: true`" in result.err
    assert not (project / ".compressflow" / "cache").exists(), "something ran"

    other = write(project / "other.py", "import tf_keras\n\n\n@tf_keras.saving.register_keras_serializable('other')\n"
                                        "class Scale(tf_keras.layers.Layer):\n    pass\n")
    assert other.is_file()
    wrong = write(project / "wrong.yaml", refused.read_text().replace("stages:", "imports: [other]\nstages:"))
    assert cli("validate", wrong).code == 2  # registers other>Scale, not shop>Scale
    registered = write(project / "registered.yaml", refused.read_text().replace("stages:", "imports: [mylayers]\n"
                                                                                            "stages:"))
    result = cli("validate", registered, cwd=tmp_path)
    assert result.code == 0, result.text


def test_a_module_of_imports_that_is_not_there_is_located(tmp_path: Path):
    project = tmp_path / "project"
    make_project(project)
    pipeline = write(project / "typo.yaml", PIPELINE.replace("imports: [mylayers]", "imports: [mylayer]"))
    result = cli("validate", pipeline, cwd=tmp_path)
    assert result.code == 2, result.text
    assert f"{pipeline}:3:" in result.err and "no module 'mylayer'" in result.err
    assert "did you mean 'mylayers'?" in result.err and "Traceback" not in result.text


@pytest.mark.tf
def test_modules_beside_the_pipeline_run_from_another_folder_and_imports_serve_cached_models(tmp_path, elsewhere):
    pipeline = make_project(tmp_path / "project")

    cold = cli("run", pipeline, "--progress", "plain", cwd=elsewhere)
    assert cold.code == 0, cold.text
    assert outcomes(cold) == dict.fromkeys(["base", "wide", "trained", "trained_wide", "check"], "done")

    # `trained` deserializes base's model in a process that never ran the builder
    rerun = cli("run", pipeline, "--progress", "plain", "--force", "trained", cwd=elsewhere)
    assert rerun.code == 0, rerun.text
    assert outcomes(rerun)["base"] == "cached" and outcomes(rerun)["trained"] == "done"



@pytest.mark.tf
def test_jobs_2_workers_import_the_modules_beside_the_pipeline(tmp_path, elsewhere):
    pipeline = make_project(tmp_path / "project")

    cold = cli("run", pipeline, "--progress", "plain", "--jobs", "2", cwd=elsewhere)
    assert cold.code == 0, cold.text
    assert outcomes(cold) == dict.fromkeys(["base", "wide", "trained", "trained_wide", "check"], "done")

    rerun = cli("run", pipeline, "--progress", "plain", "--jobs", "2", "--force", "trained", "trained_wide",
                cwd=elsewhere)
    assert rerun.code == 0, rerun.text
    assert outcomes(rerun) == {"base": "cached", "wide": "cached", "trained": "done", "trained_wide": "done",
                               "check": "cached"}


@pytest.mark.tf
def test_a_model_file_with_registered_custom_classes_loads_without_trust(tmp_path, elsewhere):
    import importlib.util

    from compressflow.stages.tfutil import keras

    project = tmp_path / "project"
    make_project(project)
    # NOTE: saved in another project, where the classes lived in trainer_layers: the file names that module,
    # which is nowhere here; mylayers registers the same names.
    source = write(tmp_path / "trainer" / "trainer_layers.py", MYLAYERS)
    spec = importlib.util.spec_from_file_location("trainer_layers", source)
    trainer_layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer_layers)
    k = keras()
    inputs = k.Input((64,), name="pixels")
    hidden = k.layers.Dense(16, activation=trainer_layers.swishy, name="hidden")(inputs)
    outputs = k.layers.Dense(10, activation="softmax", name="probs")(trainer_layers.Scale(0.5, name="scale")(hidden))
    (project / "saved").mkdir()
    k.Model(inputs, outputs).save(project / "saved" / "net.keras")
    pipeline = write(project / "saved.yaml", """
        version: 1
        name: saved
        imports: [mylayers]
        datasets:
          digits: {type: python, function: "mydata:digits"}
        stages:
          net: {type: load, path: saved/net.keras}
          check: {type: evaluate, models: [net], data: digits, latency: null}
        """)

    result = cli("run", pipeline, "--progress", "plain", cwd=elsewhere)

    assert result.code == 0, result.text
    assert outcomes(result) == {"net": "done", "check": "done"}
