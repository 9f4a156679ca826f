"""A plugin that fails to import breaks only the pipelines that use its types, and says why."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from helpers import cli, write

BROKEN_MODULE = '''
from typing import Literal

from compressflow.stages.base import Stage
from compressflow.stages.registry import register_stage


@register_stage
class BrokenThing(Stage):
    """Registered, and then its module fails."""

    type: Literal["broken_thing"] = "broken_thing"


RATIO = 1 / 0
'''

WORKING = """
version: 1
name: fine
stages:
  one: {type: toy_number, value: 1}
  two: {type: toy_scale, model: one}
"""

USING_IT = """
version: 1
name: uses
stages:
  one: {type: toy_number, value: 1}
  odd: {type: broken_thing}
"""


@pytest.fixture
def broken_plugin(tmp_path) -> dict[str, str]:
    write(tmp_path / "plugins" / "broken_plugin.py", BROKEN_MODULE)
    return {"COMPRESSFLOW_PLUGINS": "toy_stages,broken_plugin",
            "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), os.environ["PYTHONPATH"]])}


def test_pipelines_that_do_not_use_a_broken_plugin_validate_plan_and_run(tmp_path, broken_plugin):
    pipeline = write(tmp_path / "fine.yaml", WORKING)
    for command in ("validate", "plan", "run"):
        result = cli(command, pipeline, env=broken_plugin)
        assert result.code == 0, result.text
        assert "broken_plugin" not in result.text
    assert "0 to run, 2 cached" in cli("run", pipeline, env=broken_plugin).out


def test_a_pipeline_naming_a_type_of_the_broken_plugin_gets_a_located_error_saying_why(tmp_path, broken_plugin):
    pipeline = write(tmp_path / "uses.yaml", USING_IT)
    for command in ("validate", "plan", "run"):
        result = cli(command, pipeline, env=broken_plugin)
        assert result.code == 2, result.text
        assert "Traceback" not in result.text
        assert (f"{pipeline}:5:15: error: stage type 'broken_thing' in stage 'odd' is not available: plugin module "
                "'broken_plugin' (named in COMPRESSFLOW_PLUGINS) failed to import: ZeroDivisionError: division by zero"
                in result.err), result.err
        assert "hint: fix the module (python -c 'import broken_plugin' shows the traceback)" in result.err


def test_stages_lists_the_types_that_loaded_and_a_line_for_the_plugin_that_did_not(broken_plugin):
    result = cli("stages", env=broken_plugin)
    assert result.code == 0, result.text
    assert re.search(r"^\s*toy_number\s", result.out, re.M)
    assert not re.search(r"^\s*broken_thing\s", result.out, re.M), "a type of a module that failed is withdrawn"
    assert ("not loaded: plugin module 'broken_plugin' (named in COMPRESSFLOW_PLUGINS) failed to import: "
            "ZeroDivisionError: division by zero") in result.out


def test_a_misspelt_plugin_module_is_named_where_an_unknown_type_is_reported(tmp_path):
    pipeline = write(tmp_path / "uses.yaml", USING_IT)
    result = cli("validate", pipeline, env={"COMPRESSFLOW_PLUGINS": "toy_stages,brokn_plugin"})
    assert result.code == 2, result.text
    assert "error: unknown stage type 'broken_thing' in stage 'odd'" in result.err
    assert ("plugins that failed to load may define it: plugin module 'brokn_plugin' (named in "
            "COMPRESSFLOW_PLUGINS) failed to import: ModuleNotFoundError: No module named 'brokn_plugin'") in result.err


# --------------------------------------------------------------------------- entry points


def installed_broken_entry_point(site: Path) -> None:
    """A distribution as pip leaves it in site-packages: its metadata, entry points and module."""
    write(site / "broken_dist-0.1.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: broken-dist\nVersion: 0.1\n")
    write(site / "broken_dist-0.1.dist-info" / "entry_points.txt",
          "[compressflow.stages]\nbroken_ep = broken_ep_module:Thing\n")
    write(site / "broken_ep_module.py", "raise ImportError('needs libthing, which is not installed')\n")


def test_a_broken_entry_point_is_reported_where_its_type_is_used_and_can_be_skipped(tmp_path):
    site = tmp_path / "site"
    installed_broken_entry_point(site)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ["PYTHONPATH"]])}
    pipeline = write(tmp_path / "uses.yaml", USING_IT.replace("broken_thing", "broken_ep"))
    result = cli("validate", pipeline, env=env, fresh=True)
    assert result.code == 2, result.text
    assert ("error: stage type 'broken_ep' in stage 'odd' is not available: plugin 'broken_ep_module:Thing' "
            "(entry point 'broken_ep' of compressflow.stages, installed by 'broken-dist') failed to import: "
            "ImportError: needs libthing, which is not installed") in result.err
    assert "hint: fix or reinstall the distribution 'broken-dist'" in result.err
    assert "not loaded: plugin 'broken_ep_module:Thing'" in cli("stages", env=env, fresh=True).out
    assert cli("validate", write(tmp_path / "fine.yaml", WORKING), env=env, fresh=True).code == 0

    skipping = {**env, "COMPRESSFLOW_NO_ENTRY_POINTS": "1"}
    listed = cli("stages", env=skipping, fresh=True)
    assert listed.code == 0 and "not loaded" not in listed.out, listed.text
    result = cli("validate", pipeline, env=skipping, fresh=True)
    assert result.code == 2
    assert "error: unknown stage type 'broken_ep' in stage 'odd'" in result.err
    assert "broken_ep_module" not in result.err
