"""Valid pipelines load into typed, validated config objects with locations and dependencies."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressflow.dsl import Pipeline, load_pipeline
from compressflow.errors import Location
from compressflow.stages.evaluate import EvaluateStage
from compressflow.stages.prune import PolynomialDecaySchedule, PruneStage
from dsl_helpers import DESIGN_EXAMPLE


@pytest.fixture
def design(write) -> Pipeline:
    return load_pipeline(write(DESIGN_EXAMPLE, "digits.yaml"))


def test_design_example_loads(design):
    assert (design.name, design.version, design.seed) == ("digits", 1, 0)
    assert list(design.stages) == ["base", "trained", "pruned", "int8", "check", "release"]
    assert list(design.datasets) == ["digits"]
    assert design.params == {"sparsity": 0.8}


def test_design_example_keeps_types(design):
    pruned = design.stages["pruned"]
    assert isinstance(pruned, PruneStage)
    assert isinstance(pruned.schedule, PolynomialDecaySchedule)
    assert pruned.schedule.final_sparsity == 0.8 and isinstance(pruned.schedule.final_sparsity, float)
    assert pruned.epochs == 3 and isinstance(pruned.epochs, int)
    assert design.stages["base"].args == {"input_shape": [8, 8, 1], "classes": 10}
    assert design.stages["base"].builder == "compressflow.models:small_cnn"
    assert isinstance(design.stages["check"], EvaluateStage)
    assert design.stages["check"].require.max_accuracy_drop == 0.01
    assert design.datasets["digits"].validation_fraction == 0.2


def test_paths(design, tmp_path):
    assert design.path == (tmp_path / "digits.yaml").resolve()
    assert design.root == tmp_path.resolve()


def test_dependencies_in_order_without_repeats(design):
    assert design.dependencies("base") == []
    assert design.dependencies("pruned") == ["trained"]
    assert design.dependencies("check") == ["trained", "pruned", "int8"]  # baseline repeats trained
    assert design.dependencies("release") == ["int8"]


def test_after_is_a_dependency(write):
    pipeline = load_pipeline(write("""
        version: 1
        name: t
        stages:
          a: {type: load, builder: 'm:f'}
          b: {type: load, builder: 'm:g', after: [a]}
    """))
    assert pipeline.dependencies("b") == ["a"]
    assert list(pipeline.graph().edges) == [("a", "b")]


def test_graph_edges_go_from_dependency_to_dependent(design):
    graph = design.graph()
    assert ("base", "trained") in graph.edges and ("int8", "release") in graph.edges
    assert set(graph.predecessors("check")) == {"trained", "pruned", "int8"}


def test_location_of(design, tmp_path):
    file = str(tmp_path / "digits.yaml")
    assert design.location_of(("stages", "pruned", "epochs")) == Location(file, 30, 13)
    assert design.location_of(("stages", "pruned", "schedule", "final_sparsity")) == Location(file, 29, 79)
    assert design.location_of(("stages", "check", "models", 2)) == Location(file, 40, 31)
    assert design.location_of(("stages", "pruned")) == Location(file, 26, 5)
    assert design.location_of(("stages", "pruned", "frequency")) is None  # a default
    assert design.location_of(("stages", "nope")) is None


def test_defaults(write):
    pipeline = load_pipeline(write("version: 1\nname: t\nstages:\n  a: {type: load, builder: 'm:f'}\n"))
    assert (pipeline.seed, pipeline.params, pipeline.datasets) == (0, {}, {})


def test_version_may_be_left_out(write):
    pipeline = load_pipeline(write("name: t\nstages:\n  a: {type: load, builder: 'm:f'}\n"))
    assert pipeline.version == 1


def test_load_from_dict():
    pipeline = load_pipeline({
        "version": 1, "name": "t", "params": {"n": 4},
        "stages": {"a": {"type": "load", "builder": "m:f"},
                   "b": {"type": "fine_tune", "model": "a", "data": "d", "epochs": "${params.n}"}},
        "datasets": {"d": {"type": "sklearn_digits"}},
    })
    assert pipeline.path is None
    assert pipeline.root == Path.cwd()
    assert pipeline.stages["b"].epochs == 4
    assert pipeline.location_of(("stages", "b", "epochs")).file == "<dict>"


def test_names_with_dash_and_underscore_are_fine(write):
    pipeline = load_pipeline(write("""
        name: my-pipeline_2
        stages:
          _base-1: {type: load, builder: 'm:f'}
          next_one: {type: load, builder: 'm:f', after: [_base-1]}
    """))
    assert pipeline.name == "my-pipeline_2"
    assert pipeline.dependencies("next_one") == ["_base-1"]


def test_stage_objects_are_frozen(design):
    with pytest.raises(Exception):
        design.stages["pruned"].epochs = 5


def test_plugin_stage_types_take_part(write):
    from typing import ClassVar, Literal

    from compressflow.stages.base import Stage, StageName
    from compressflow.stages.registry import register_stage

    @register_stage
    class DslTestDouble(Stage):
        kind: ClassVar[str] = "dsl_test_double"
        type: Literal["dsl_test_double"] = "dsl_test_double"
        source: StageName
        factor: int = 2

    pipeline = load_pipeline(write("""
        name: t
        stages:
          a: {type: load, builder: 'm:f'}
          b: {type: dsl_test_double, source: a, factor: 3}
    """))
    assert isinstance(pipeline.stages["b"], DslTestDouble)
    assert pipeline.dependencies("b") == ["a"]


def test_garbage_collection_is_back_on_after_loading(write):
    import gc

    from compressflow.errors import PipelineError

    assert gc.isenabled()
    load_pipeline(write("name: t\nstages:\n  a: {type: load, builder: 'm:f'}\n"))
    assert gc.isenabled()
    with pytest.raises(PipelineError):
        load_pipeline(write("name: t\nstages:\n  a: {type: lod}\n"))
    assert gc.isenabled()
