"""Loading and planning a pipeline import neither networkx nor numpy nor TensorFlow: a cached run stays quick."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

DIGITS = Path(__file__).resolve().parents[2] / "pipelines" / "digits.yaml"


def test_load_and_plan_of_the_digits_pipeline_import_no_graph_or_array_library(tmp_path):
    script = textwrap.dedent(f"""
        import json, sys
        from compressflow.cache.local import Cache
        from compressflow.dsl import load_pipeline
        from compressflow.executor.plan import make_plan
        from compressflow.executor.scheduler import make_task
        plan = make_plan(load_pipeline({str(DIGITS)!r}), Cache({str(tmp_path / "cache")!r}, log=lambda text: None))
        tasks = [make_task(plan, name, {str(tmp_path / "cache")!r}, verify=False) for name in plan.stages]
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"networkx", "numpy", "tensorflow", "optuna"}})
        print(json.dumps({{"actions": [s.action for s in plan.stages.values()], "tasks": len(tasks), "heavy": heavy}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["actions"] == ["run"] * 7 and report["tasks"] == 7
    assert report["heavy"] == []
