"""Sweeps and sub-pipelines under random input: a Pipeline or a PipelineError, never another exception, and
every problem located in the pipeline or the recipe it names (``file:line:column`` inside it, no traceback)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressflow.dsl import Pipeline, load_pipeline
from compressflow.dsl.names import base_name
from compressflow.errors import PipelineError
from dsl_helpers import assert_every_problem_located, texts_in

pytestmark = pytest.mark.slow  # hundreds of generated documents per test

FIELDS = st.sampled_from(["epochs", "schedule.final_sparsity", "schedule", "model", "method", "type", "matrix",
                          "learning_rate", "", "a..b", "epochs.x", "data", "after", "to", "path", "params.x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True),
                    st.sampled_from(["int8", "dynamic", "trained", "pruned", "pruned[epochs=1]", "r", "r.a",
                                     "${params.xs}", "[", "]", "a,b=c", "digits", "recipe.yaml"]))
VALUES = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=3),
                                                         st.dictionaries(st.text(max_size=4), children, max_size=3)),
                      max_leaves=12)
MATRICES = st.one_of(VALUES, st.dictionaries(FIELDS, st.one_of(st.lists(SCALARS, max_size=4), SCALARS), max_size=3))
NAMES = st.sampled_from(["trained", "pruned", "int8", "check", "r", "pruned[epochs=1]", "r.a", "x y"])
STAGE = st.fixed_dictionaries(
    {"type": st.sampled_from(["fine_tune", "prune", "quantize", "evaluate", "export", "select", "pipeline", "nope"])},
    optional={"model": NAMES, "models": st.lists(NAMES, max_size=3), "candidates": st.lists(NAMES, max_size=2),
              "evaluation": NAMES, "baseline": NAMES, "data": st.just("digits"), "matrix": MATRICES,
              "path": st.sampled_from(["recipe.yaml", "self.yaml", "missing.yaml", "", "../x.yaml"]),
              "inputs": st.one_of(st.dictionaries(st.sampled_from(["model", "x"]), NAMES, max_size=2), VALUES),
              "params": st.one_of(st.dictionaries(st.sampled_from(["s", "t", "xs"]), VALUES, max_size=2), VALUES),
              "to": st.sampled_from(["out/a.tflite", "out/b.tflite"]), "after": st.lists(NAMES, max_size=2)})
DOCUMENT = st.fixed_dictionaries({"name": st.just("fuzz"), "stages": st.dictionaries(NAMES, STAGE, max_size=5)},
                                 optional={"params": st.fixed_dictionaries({"xs": VALUES}),
                                           "inputs": st.lists(NAMES, max_size=2), "output": NAMES})
RECIPE = """
inputs: [model]
output: a
params: {s: 0.5}
stages:
  a: {type: fine_tune, model: model, data: digits, matrix: {epochs: [1, 2]}}
"""


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=DOCUMENT, recipe=st.one_of(st.just(RECIPE), DOCUMENT.map(yaml.safe_dump)))
def test_sweeps_and_recipes_load_or_report(tmp_path, document, recipe):
    document = {**document, "datasets": {"digits": {"type": "sklearn_digits"}}}
    stages = document["stages"]
    stages.setdefault("trained", {"type": "load", "builder": "m:f"})
    (tmp_path / "recipe.yaml").write_text(recipe)
    path = tmp_path / "self.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        pipeline = load_pipeline(path)
    except PipelineError as exc:
        assert_every_problem_located(exc, texts_in(tmp_path))
        return
    assert isinstance(pipeline, Pipeline)
    for name, stage in pipeline.stages.items():
        assert stage.kind != "pipeline"
        for targets in stage.stage_refs().values():
            assert all(target in pipeline.stages for target in targets)
        assert base_name(name).split(".")[0] in stages


@st.composite
def toy_sweeps(draw):
    """A valid DAG of toy stages, some swept; returns (stages, expected variant count per stage)."""
    stages, counts = {}, {}
    for index in range(draw(st.integers(1, 5))):
        name = f"s{index}"
        kind = "toy_number" if index == 0 else draw(st.sampled_from(["toy_number", "toy_scale", "toy_sum"]))
        config: dict = {"type": kind}
        field = {"toy_number": "value", "toy_scale": "factor", "toy_sum": "add"}[kind]
        values = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3, unique=True))
        own = 1
        if draw(st.booleans()):
            config["matrix"] = {field: values}
            own = len(values)
        else:
            config[field] = values[0]
        if kind == "toy_scale":
            config["model"] = draw(st.sampled_from(sorted(stages)))
            counts[name] = own * counts[config["model"]]
        elif kind == "toy_sum":
            config["inputs"] = draw(st.lists(st.sampled_from(sorted(stages)), min_size=1, max_size=3, unique=True))
            counts[name] = own
        else:
            counts[name] = own
        stages[name] = config
    return stages, counts


@settings(max_examples=60, deadline=None)
@given(case=toy_sweeps())
def test_swept_toy_pipelines_expand_as_counted(case):
    stages, counts = case
    pipeline = load_pipeline({"name": "toys", "stages": stages})
    for name, count in counts.items():
        variants = [n for n in pipeline.stages if base_name(n) == name]
        assert len(variants) == count
        assert len(set(variants)) == count
    for name, stage in pipeline.stages.items():
        if stage.kind == "toy_sum":
            listed = stages[base_name(name)]["inputs"]
            assert len(stage.inputs) == sum(counts[t] for t in listed)
        if stage.kind == "toy_scale":  # a fanned-out variant carries its input's labels (maybe qualified)
            upstream = [label for label in stage.model[len(base_name(stage.model)):].strip("[]").split(",") if label]
            own = name[len(base_name(name)):].strip("[]").split(",")
            assert all(any(mine.endswith(label.rpartition(".")[2]) for mine in own) for label in upstream)
