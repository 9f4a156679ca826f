"""The code behind a stage type (and the dataset types it reads) is in its cache key."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

from compressflow.stages.prune import PruneStage
from compressflow.stages.registry import dataset_types, stage_types

from helpers import cli, write

REPO = Path(__file__).resolve().parents[2]

STAGE_PLUGIN = '''
import json
from typing import ClassVar, Literal

from compressflow.stages.base import DatasetName, Stage, StageName
from compressflow.stages.registry import register_stage


def _value(artifact):
    return json.loads(artifact.file().read_text())


@register_stage
class Times(Stage):
    """Another stage's number times a constant of this module's code."""

    produces: ClassVar[str] = "number"
    type: Literal["code_times"] = "code_times"
    model: StageName

    def run(self, ctx):
        ctx.write_json("value.json", _value(ctx.input("model")) * 2)
        ctx.set_output("number", "value.json")


@register_stage
class Count(Stage):
    """How many samples a dataset has."""

    produces: ClassVar[str] = "number"
    type: Literal["code_count"] = "code_count"
    data: DatasetName

    def run(self, ctx):
        x, _ = ctx.dataset(self.data).load_arrays(ctx.env)
        ctx.write_json("value.json", len(x))
        ctx.set_output("number", "value.json")
'''

DATASET_PLUGIN = '''
from typing import Literal

from compressflow.stages.base import Dataset
from compressflow.stages.registry import register_dataset


@register_dataset
class Range(Dataset):
    """The numbers 0 .. 9."""

    type: Literal["code_range"] = "code_range"

    def load_arrays(self, env):
        import numpy as np

        return np.arange(10).reshape(10, 1), np.zeros(10)
'''

PIPELINE = """
version: 1
name: coded
datasets:
  numbers: {type: code_range}
stages:
  base: {type: toy_number, value: 3}
  times: {type: code_times, model: base}
  count: {type: code_count, data: numbers}
  other: {type: toy_number, value: 4}
"""


def plugin_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    write(tmp_path / "plugins" / "code_stage_plugin.py", STAGE_PLUGIN)
    write(tmp_path / "plugins" / "code_dataset_plugin.py", DATASET_PLUGIN)
    env = {"COMPRESSFLOW_PLUGINS": "toy_stages,code_stage_plugin,code_dataset_plugin",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), os.environ["PYTHONPATH"]]),
           # NOTE: an edit within the same second must not be hidden by a cached .pyc
           "PYTHONDONTWRITEBYTECODE": "1"}
    return write(tmp_path / "coded.yaml", PIPELINE), env


def plan_of(pipeline: Path, env: dict[str, str]) -> dict:
    # NOTE: fresh interpreters: a forked server would keep the plugin as first imported
    result = cli("plan", pipeline, "--json", env=env, fresh=True)
    assert result.code == 0, result.text
    return json.loads(result.out)


def value_of(pipeline: Path, key: str) -> float:
    return json.loads((pipeline.parent / ".compressflow" / "cache" / "entries" / key[:2] / key / "value.json")
                      .read_text())


def test_editing_a_plugin_stage_reruns_it_and_plan_says_its_code_changed(tmp_path):
    pipeline, env = plugin_project(tmp_path)
    assert cli("run", pipeline, env=env, fresh=True).code == 0
    assert {item["action"] for item in plan_of(pipeline, env).values()} == {"cached"}
    source = tmp_path / "plugins" / "code_stage_plugin.py"
    source.write_text(source.read_text().replace('_value(ctx.input("model")) * 2', '_value(ctx.input("model")) * 5'))
    plan = plan_of(pipeline, env)
    assert {name: item["action"] for name, item in plan.items()} == {
        "base": "cached", "times": "run", "count": "run", "other": "cached"}
    assert plan["times"]["reasons"] == ["code changed: code_stage_plugin"]
    result = cli("run", pipeline, env=env, fresh=True)
    assert result.code == 0, result.text
    assert "2 to run, 2 cached" in result.out
    assert value_of(pipeline, plan["times"]["key"]) == 15


def test_editing_a_dataset_type_reruns_the_stages_that_read_it(tmp_path):
    pipeline, env = plugin_project(tmp_path)
    assert cli("run", pipeline, env=env, fresh=True).code == 0
    source = tmp_path / "plugins" / "code_dataset_plugin.py"
    source.write_text(source.read_text().replace("np.arange(10).reshape(10, 1), np.zeros(10)",
                                                 "np.arange(12).reshape(12, 1), np.zeros(12)"))
    plan = plan_of(pipeline, env)
    assert {name for name, item in plan.items() if item["action"] == "run"} == {"count"}
    assert plan["count"]["reasons"] == ["code changed: code_dataset_plugin"]
    assert cli("run", pipeline, env=env, fresh=True).code == 0
    assert value_of(pipeline, plan["count"]["key"]) == 12


def test_a_subclass_of_a_built_in_type_is_keyed_by_its_own_code_and_the_built_ins():
    class StrongerPrune(PruneStage):
        type: Literal["stronger_prune"] = "stronger_prune"
        code_dependencies = ("compressflow.stages.measure",)

    modules = StrongerPrune.code_modules()
    assert modules[0] == __name__
    assert {"compressflow.stages.prune", "compressflow.stages.options", "compressflow.stages.tfutil",
            "compressflow.stages.measure"} <= set(modules)
    assert len(modules) == len(set(modules))


# --------------------------------------------------------------------------- built-in declarations

# Framework modules: they hold names and the stage interface, not what a stage computes.
NOT_STAGE_CODE = {"compressflow", "compressflow.stages", "compressflow.errors", "compressflow.stages.base",
                  "compressflow.stages.registry", "compressflow.stages.code_sets", "compressflow.stages.code_sources"}


def _module_file(name: str) -> Path | None:
    path = REPO.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _code_imports(name: str) -> set[str]:
    """compressflow modules ``name`` imports code from, anywhere in it (importing only CONSTANTS does not count)."""
    found = set()
    for node in ast.walk(ast.parse(_module_file(name).read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("compressflow"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names
                          if _module_file(f"{node.module}.{alias.name}")}
            found |= submodules
            if any(not alias.name.isupper() for alias in node.names if f"{node.module}.{alias.name}" not in submodules):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("compressflow")}
    return found - NOT_STAGE_CODE


def test_every_built_in_type_declares_the_helpers_its_code_reaches():
    built_in = {cls for cls in [*stage_types().values(), *dataset_types().values()]
                if cls.__module__.startswith("compressflow.")}
    assert len(built_in) >= 15
    for cls in built_in:
        declared = set(cls.code_modules())
        assert all(_module_file(module) for module in declared), f"{cls.kind}: a declared module does not exist"
        reached = set().union(*(_code_imports(module) for module in declared))
        assert reached <= declared, f"{cls.kind}: declare {sorted(reached - declared)} in code_dependencies"


def test_keys_hold_the_source_of_the_built_in_helpers_without_importing_tensorflow(tmp_path):
    write(tmp_path / "p.yaml", """
        version: 1
        name: p
        datasets:
          digits: {type: sklearn_digits}
        stages:
          base: {type: load, builder: "compressflow.models:small_cnn", args: {input_shape: [8, 8, 1], classes: 10}}
          pruned:
            {type: prune, model: base, data: digits, epochs: 1, schedule: {type: constant, target_sparsity: 0.5}}
    """)
    script = textwrap.dedent(f"""
        import json, sys
        from compressflow.dsl import load_pipeline
        from compressflow.cache.local import Cache
        from compressflow.executor.plan import make_plan
        plan = make_plan(load_pipeline({str(tmp_path / 'p.yaml')!r}), Cache({str(tmp_path / 'cache')!r}))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print(json.dumps({{"code": plan.stages["pruned"].key.doc["code"], "heavy": heavy}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    code = report["code"]
    tfutil = (REPO / "compressflow" / "stages" / "tfutil.py").read_bytes()
    assert code["compressflow.stages.tfutil"] == hashlib.sha256(tfutil).hexdigest()
    assert {"compressflow.stages.prune", "compressflow.data.datasets"} <= set(code)
