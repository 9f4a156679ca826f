"""Section 2, second half: ``dvc repro`` with nothing to do, against a fully cached ``compressflow run``.

DVC is installed only for the benchmark, in its own virtual environment
(``bench/.venv-dvc``), never as a dependency of compressflow. The DVC project lives in a
temporary folder (``dvc init --no-scm``); its stages call ``bench/dvc_stages.py``, which
does the digits recipe's steps with the hand-written script's functions.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from common import BENCH_DIR, PYTHON, Series, bench_env, log, paired_ratios, run_timed
from settings import Settings

DVC_VENV = BENCH_DIR / ".venv-dvc"
DVC_REQUIREMENT = "dvc>=3,<4"


def dvc_executable() -> Path:
    """The benchmark's own ``dvc``, installed into its own virtual environment on first use."""
    dvc = DVC_VENV / "bin" / "dvc"
    if dvc.exists():
        return dvc
    log(f"installing {DVC_REQUIREMENT} into {DVC_VENV} (benchmark only)")
    subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
    subprocess.run([str(DVC_VENV / "bin" / "pip"), "install", "-q", DVC_REQUIREMENT], check=True)
    return dvc


def dvc_version(dvc: Path) -> str:
    return subprocess.run([str(dvc), "--version"], capture_output=True, text=True, env=_env()).stdout.strip()


def _env() -> dict[str, str]:
    return bench_env(DVC_NO_ANALYTICS="1")


def dvc_yaml(settings: Settings) -> str:
    """The digits recipe as DVC stages, one script call each (same epochs as the pipeline)."""
    epochs = settings.recipe_epochs
    run = f"{PYTHON} dvc_stages.py"
    code = ["dvc_stages.py", "digits_script.py"]

    def stage(name: str, cmd: str, deps: list[str], outs: list[str]) -> str:
        lines = [f"  {name}:", f"    cmd: {cmd}", "    deps:"]
        lines += [f"      - {d}" for d in [*code, *deps]]
        lines += ["    outs:"] + [f"      - {o}" for o in outs]
        return "\n".join(lines)

    stages = [
        stage("trained", f"{run} train --epochs {epochs['train']}", [], ["trained.keras"]),
        stage("float", f"{run} convert trained.keras float32 float.tflite", ["trained.keras"], ["float.tflite"]),
        stage("pruned", f"{run} prune --epochs {epochs['prune']} --end-epoch {epochs['prune_end']}",
              ["trained.keras"], ["pruned.keras"]),
        stage("int8", f"{run} convert pruned.keras int8 int8.tflite", ["pruned.keras"], ["int8.tflite"]),
        stage("check", f"{run} evaluate", ["float.tflite", "trained.keras", "pruned.keras", "int8.tflite"],
              ["metrics.json"]),
        stage("release", f"{run} export int8.tflite out/digits-int8.tflite", ["int8.tflite"],
              ["out/digits-int8.tflite"]),
    ]
    return "stages:\n" + "\n".join(stages) + "\n"


def prepare_project(settings: Settings, dvc: Path) -> Path:
    """A fresh DVC project (no git) holding the stage scripts and ``dvc.yaml``."""
    project = settings.workdir / "dvc-project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    for name in ("dvc_stages.py", "digits_script.py"):
        shutil.copyfile(BENCH_DIR / name, project / name)
    (project / "dvc.yaml").write_text(dvc_yaml(settings))
    env = _env()
    for args in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"],
                 ["config", "core.check_update", "false"]):
        subprocess.run([str(dvc), *args], cwd=project, env=env, check=True, capture_output=True)
    return project


def measure(settings: Settings, cached_compressflow) -> dict:
    """Time a cold ``dvc repro`` once, then no-op ``dvc repro`` interleaved with ``cached_compressflow()``.

    ``cached_compressflow`` runs a fully cached compressflow run and returns its seconds.
    """
    if not settings.dvc:
        return {"skipped": "skipped (--no-dvc)"}
    dvc = dvc_executable()
    project = prepare_project(settings, dvc)
    log("dvc: cold repro")
    cold = run_timed([str(dvc), "repro", "-q"], cwd=project, env=_env()).seconds
    noop, cached = Series(), Series()
    for rep in range(settings.cached_repetitions):
        log(f"dvc: repro with nothing to do {rep + 1}/{settings.cached_repetitions}")
        noop.add(run_timed([str(dvc), "repro", "-q"], cwd=project, env=_env()).seconds)
        cached.add(cached_compressflow())
    return {"version": dvc_version(dvc), "cold_repro": cold, "noop_repro": noop.to_json(),
            "compressflow_cached": cached.to_json(), "cached_over_dvc": paired_ratios(cached, noop).to_json(),
            "dvc_yaml": dvc_yaml(settings)}
