"""The tasks of a plan: each carries its lineage, built from entries made once per stage of the plan."""

from __future__ import annotations

from pathlib import Path

from compressflow.cache.local import Cache
from compressflow.dsl import load_pipeline
from compressflow.executor.plan import make_plan
from compressflow.executor.scheduler import make_task
from compressflow.stages.base import Stage


def sweep_yaml(variants: int) -> str:
    values = ", ".join(str(i) for i in range(variants))
    return f"""\
version: 1
name: sweep
stages:
  one:
    type: toy_number
    value: 1
  scaled:
    type: toy_scale
    model: one
    factor: 1
    matrix:
      factor: [{values}]
"""


def tasks_of(tmp_path: Path, variants: int, monkeypatch) -> tuple[dict, int]:
    """Every task of a sweep of ``variants`` variants, and how many stage configs were serialised for them."""
    path = tmp_path / f"sweep-{variants}.yaml"
    path.write_text(sweep_yaml(variants))
    cache = Cache(tmp_path / f"cache-{variants}", log=lambda text: None)
    plan = make_plan(load_pipeline(path), cache)
    calls = []
    original = Stage.model_dump

    def counted(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Stage, "model_dump", counted)
    tasks = {name: make_task(plan, name, str(cache.root), verify=False) for name in plan.stages}
    monkeypatch.setattr(Stage, "model_dump", original)
    return tasks, len(calls)


def test_each_task_has_its_upstream_stages_in_plan_order(tmp_path: Path, monkeypatch):
    tasks, _ = tasks_of(tmp_path, 3, monkeypatch)
    assert [item["stage"] for item in tasks["one"].lineage] == ["one"]
    variant = "scaled[factor=2]"
    lineage = tasks[variant].lineage
    assert [item["stage"] for item in lineage] == ["one", variant]
    assert lineage[1]["type"] == "toy_scale" and lineage[1]["config"]["factor"] == 2
    assert lineage[1]["key"] == tasks[variant].key
    assert lineage[0]["key"] == tasks["one"].key and lineage[0]["config"]["value"] == 1
    assert lineage[1]["versions"]["python"]


def test_the_tasks_of_a_sweep_serialise_each_stage_once(tmp_path: Path, monkeypatch):
    # NOTE: counts calls, not time: one config dump per stage, however many variants share an upstream stage
    for variants in (10, 200):
        tasks, dumps = tasks_of(tmp_path, variants, monkeypatch)
        assert len(tasks) == variants + 1
        assert dumps == variants + 1
