"""The executor end to end through the real CLI, on toy stages (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TOY_PIPELINE, cli, runs, write


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    monkeypatch.delenv("COMPRESSFLOW_CACHE", raising=False)
    pipeline = write(tmp_path / "toy.yaml", TOY_PIPELINE)
    return pipeline, log


def value_of(pipeline: Path, stage: str) -> float:
    plan = json.loads(cli("plan", pipeline, "--json").out)
    key = plan[stage]["key"]
    entry = pipeline.parent / ".compressflow" / "cache" / "entries" / key[:2] / key
    return json.loads((entry / "value.json").read_text())


def test_first_run_computes_everything_second_run_nothing(project):
    pipeline, log = project
    first = cli("run", pipeline)
    assert first.code == 0, first.text
    assert sorted(runs(log)) == ["one", "three", "total", "two"]
    assert value_of(pipeline, "total") == 1.0 * 3 + 2
    second = cli("run", pipeline)
    assert second.code == 0, second.text
    assert len(runs(log)) == 4, "a fully cached run computed something"
    assert "0 to run, 4 cached" in second.out


def test_changing_one_stage_reruns_it_and_its_descendants_only(project):
    pipeline, log = project
    assert cli("run", pipeline).code == 0
    log.unlink()
    pipeline.write_text(pipeline.read_text().replace("factor: 3", "factor: 4"))
    result = cli("run", pipeline)
    assert result.code == 0, result.text
    assert runs(log) == ["three", "total"]
    assert value_of(pipeline, "total") == 1.0 * 4 + 2


def test_override_reruns_what_the_param_reaches(project):
    pipeline, log = project
    assert cli("run", pipeline).code == 0
    log.unlink()
    result = cli("run", pipeline, "--set", "params.a=5")
    assert result.code == 0, result.text
    assert runs(log) == ["one", "three", "total"]


def test_plan_explains_each_decision(project):
    pipeline, _ = project
    before = json.loads(cli("plan", pipeline, "--json").out)
    assert {s["action"] for s in before.values()} == {"run"}
    assert before["one"]["reasons"] == ["new"]
    assert cli("run", pipeline).code == 0
    pipeline.write_text(pipeline.read_text().replace("factor: 3", "factor: 4"))
    after = json.loads(cli("plan", pipeline, "--json").out)
    assert after["one"]["action"] == "cached"
    assert after["three"]["reasons"] == ["config changed: factor 3.0 -> 4.0"]
    assert after["total"]["reasons"] == ["input changed: inputs"]
    lines = dict(line.split(None, 1) for line in cli("plan", pipeline, "--force", "two").out.splitlines()
                 if line.strip() and not line[0].isdigit())
    assert lines["two"] == "run (forced)"
    assert lines["one"] == "cached"


def test_description_and_stage_order_are_not_in_the_key(project):
    pipeline, log = project
    assert cli("run", pipeline).code == 0
    text = pipeline.read_text().replace("    factor: 3", "    factor: 3\n    description: triple it")
    pipeline.write_text(text)
    assert cli("run", pipeline).code == 0
    assert len(runs(log)) == 4


def test_selections(project):
    pipeline, log = project
    assert cli("run", pipeline, "--until", "three").code == 0
    assert sorted(runs(log)) == ["one", "three"]
    only = cli("run", pipeline, "--only", "total")
    assert only.code == 2 and "not cached: two" in only.err
    assert cli("run", pipeline, "--only", "two").code == 0
    assert cli("run", pipeline, "--only", "total").code == 0
    assert runs(log)[-2:] == ["two", "total"]
    log.unlink()
    assert cli("run", pipeline, "--from", "three", "--force").code == 0
    assert runs(log) == ["three", "total"]
    log.unlink()
    assert cli("run", pipeline, "--force", "one").code == 0
    assert runs(log) == ["one"]
    verify = cli("cache", "verify", pipeline)
    assert verify.code == 0 and "0 damaged" in verify.out, verify.text
    bad = cli("run", pipeline, "--only", "thre")
    assert bad.code == 2 and "did you mean 'three'" in bad.err and "Traceback" not in bad.text


def test_failure_stops_dependents_and_prints_the_resume_command(project):
    pipeline, log = project
    pipeline.write_text(pipeline.read_text().replace("factor: 3", "factor: 3\n    fail: true"))
    result = cli("run", pipeline)
    assert result.code == 1
    assert "three: FAILED" in result.out and "failed on purpose" in result.out
    assert "total" not in runs(log)
    assert f"compressflow run {pipeline}" in result.err
    assert "Traceback" not in result.text
    # the finished stages stay cached
    fixed = pipeline.read_text().replace("    fail: true\n", "")
    pipeline.write_text(fixed)
    log.unlink()
    assert cli("run", pipeline).code == 0
    assert sorted(runs(log)) in (["three", "total"], ["three", "total", "two"])


def test_keep_going_finishes_independent_branches(tmp_path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    pipeline = write(tmp_path / "p.yaml", """
        version: 1
        name: branches
        stages:
          bad: {type: toy_number, value: 1, fail: true}
          after_bad: {type: toy_scale, model: bad}
          good: {type: toy_number, value: 2}
          after_good: {type: toy_scale, model: good}
    """)
    stopped = cli("run", pipeline)
    assert stopped.code == 1 and runs(log) == ["bad"]
    log.unlink()
    going = cli("run", pipeline, "--keep-going")
    assert going.code == 1
    assert runs(log) == ["bad", "good", "after_good"]
    assert "after_bad: not run" in going.out


def test_jobs_run_branches_in_worker_processes(tmp_path, monkeypatch):
    log = tmp_path / "runs.log"
    monkeypatch.setenv("TOY_RUN_LOG", str(log))
    stages = "\n".join(f"  b{i}: {{type: toy_number, value: {i}, sleep: 0.2}}" for i in range(4))
    pipeline = write(tmp_path / "p.yaml", f"version: 1\nname: wide\nstages:\n{stages}\n"
                     "  total: {type: toy_sum, inputs: [b0, b1, b2, b3]}\n")
    result = cli("run", pipeline, "--jobs", "2")
    assert result.code == 0, result.text
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(pids) == 2, "two long-lived workers should have shared the five stages"
    assert sorted(runs(log)) == ["b0", "b1", "b2", "b3", "total"]


def test_cached_run_imports_no_tensorflow(project):
    pipeline, _ = project
    assert cli("run", pipeline).code == 0
    import subprocess
    import sys
    code = ("import sys\nfrom compressflow.cli.parser import main\n"
            f"rc = main(['run', {str(pipeline)!r}])\n"
            "assert rc == 0, rc\nassert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
