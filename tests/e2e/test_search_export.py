"""An export after a search: its sidecar records the search (settings, trials, the chosen trial) and the versions
of the libraries in the keys of the chosen trial's stages, directly after the search or through another stage.

No TensorFlow: the toy recipe ends in ``toy_tflite``, which writes its number into a ``.tflite`` file (an
export of a TFLite model only copies it), and declares ``networkx`` among its libraries, a distribution no
other stage of the pipeline has in its key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cli, write
from toy_search import RECIPE as TOY_RECIPE
from toy_search import entry as toy_entry
from toy_search import search_pipeline, write_project

PLUGINS = {"COMPRESSFLOW_PLUGINS": "toy_stages,toy_metrics,toy_tflite"}

TOY_TFLITE = '''
"""A toy number written as a TFLite model file, for exports without TensorFlow."""

import json
from typing import ClassVar, Literal

from compressflow.stages.base import TFLITE_MODEL, Stage, StageName
from compressflow.stages.registry import register_stage


@register_stage
class ToyTflite(Stage):
    """The number of ``model`` (scaled by ``factor``) in a .tflite file."""

    libraries: ClassVar[tuple[str, ...]] = ("networkx",)
    type: Literal["toy_tflite"] = "toy_tflite"
    model: StageName
    factor: float = 1.0

    def run(self, ctx) -> None:
        number = json.loads(ctx.input("model").file().read_text()) * self.factor
        (ctx.out_dir / "model.tflite").write_text(json.dumps(number))
        ctx.set_output(TFLITE_MODEL, "model.tflite")
'''

# The toy recipe, its output packed into a .tflite file.
RECIPE = TOY_RECIPE.replace("output: scaled", "output: packed").replace(
    "  scaled:\n    type: toy_scale", "  packed:\n    type: toy_tflite")

PIPELINE = search_pipeline(trials=6, drop=0.05, more="""\
  release:
    type: export
    model: best
    to: out/best.tflite
  repacked:
    type: toy_tflite
    model: best
  release_repacked:
    type: export
    model: repacked
    to: out/repacked.tflite
""").replace("    trials: 6\n", "    early_stop: {after: plus, metric: accuracy, margin: 0.0}\n    trials: 6\n")


def entry(folder: Path, stage: str) -> Path:
    return toy_entry(folder / "search.yaml", stage, env=PLUGINS)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("searchexport")
    write(folder / "toy_tflite.py", TOY_TFLITE)
    write_project(folder, PIPELINE, RECIPE)
    result = cli("run", folder / "search.yaml", cwd=folder, env=PLUGINS)
    assert result.code == 0, result.text
    return folder


@pytest.mark.parametrize("sidecar", ["out/best.tflite.json", "out/repacked.tflite.json"])
def test_the_sidecar_records_the_search_that_chose_the_model(searched, sidecar):
    record = json.loads((searched / sidecar).read_text())["search"]
    rows = json.loads((entry(searched, "best") / "trials.json").read_text())
    assert record["stage"] == "best"
    assert record["objective"] == [{"metric": "gzip_size", "goal": "min"}]
    assert record["constraints"] == {"max_accuracy_drop": 0.05}
    assert record["early_stop"] == {"after": "plus", "metric": "accuracy", "margin": 0.0}
    assert record["trials"] == len(rows) == 6
    assert record["pruned"] == sum(1 for r in rows if r["state"] == "PRUNED")
    chosen = min((r for r in rows if r["feasible"]), key=lambda r: (r["values"][0], r["number"]))
    assert record["chosen"]["number"] == chosen["number"]
    assert record["chosen"]["params"] == chosen["params"]
    assert record["chosen"]["metrics"] == chosen["metrics"]
    assert record["chosen"]["metrics"]["accuracy"] == pytest.approx(
        1 - (1 + chosen["params"]["a"]) * chosen["params"]["b"] / 100)


@pytest.mark.parametrize("sidecar", ["out/best.tflite.json", "out/repacked.tflite.json"])
def test_the_sidecar_lists_the_libraries_of_the_chosen_trials_stages(searched, sidecar):
    from importlib.metadata import version

    versions = json.loads((searched / sidecar).read_text())["versions"]
    assert versions["networkx"] == version("networkx")
    assert "compressflow" in versions and "python" in versions


def test_an_export_without_a_search_records_none(tmp_path):
    write(tmp_path / "toy_tflite.py", TOY_TFLITE)
    pipeline = write(tmp_path / "plain.yaml", """
version: 1
name: plain
stages:
  base: {type: toy_number, value: 3}
  packed: {type: toy_tflite, model: base}
  release: {type: export, model: packed, to: out/plain.tflite}
""")
    result = cli("run", pipeline, cwd=tmp_path, env=PLUGINS)
    assert result.code == 0, result.text
    sidecar = json.loads((tmp_path / "out" / "plain.tflite.json").read_text())
    assert sidecar["search"] is None
    assert sidecar["versions"]["networkx"], "the versions of the lineage's keys are listed"
