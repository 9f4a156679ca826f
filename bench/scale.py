"""Section 5: validate + plan time and peak memory of generated pipelines of 100 to 10,000 stages.

Two shapes: a *chain* (each ``fine_tune`` stage takes the previous stage's model) and a
*fan-out* (every ``prune`` stage takes the same loaded model). Real stage types are used:
planning never runs them, so no TensorFlow is imported. Each measurement is a fresh
subprocess (``scale_probe.py``) planning against an empty cache, so every stage is new.
"""

from __future__ import annotations

import json
import shutil

from common import BENCH_DIR, PYTHON, Series, log, run_timed
from settings import Settings

SHAPES = ("chain", "fan")


def generated_yaml(shape: str, stages: int) -> str:
    """A pipeline of ``stages`` stages: a load stage then a chain or a fan-out."""
    lines = ["version: 1", f"name: scale-{shape}-{stages}", "seed: 0",
             "datasets:", "  digits: {type: sklearn_digits}", "stages:",
             "  s0: {type: load, builder: 'compressflow.models:small_cnn',"
             " args: {input_shape: [8, 8, 1], classes: 10}}"]
    for i in range(1, stages):
        if shape == "chain":
            lines.append(f"  s{i}: {{type: fine_tune, model: s{i - 1}, data: digits, epochs: {1 + i % 7}}}")
        else:
            lines.append(f"  s{i}: {{type: prune, model: s0, data: digits, "
                         f"schedule: {{type: constant, target_sparsity: {(i % 90) / 100}}}, epochs: {1 + i % 3}}}")
    return "\n".join(lines) + "\n"


def measure(settings: Settings) -> dict:
    folder = settings.workdir / "scale"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for shape in SHAPES:
        for size in settings.scale_sizes:
            path = folder / f"{shape}-{size}.yaml"
            path.write_text(generated_yaml(shape, size))
            figures = {"validate_s": Series(), "plan_s": Series(), "total_s": Series(), "cpu_s": Series(),
                       "peak_rss_mb": Series(), "process_s": Series()}
            for rep in range(settings.repetitions):
                cache = folder / f"cache-{shape}-{size}"
                shutil.rmtree(cache, ignore_errors=True)
                log(f"scale {shape} {size}: rep {rep + 1}/{settings.repetitions}")
                timed = run_timed([PYTHON, str(BENCH_DIR / "scale_probe.py"), str(path), "--cache", str(cache)])
                probe = json.loads(timed.stdout.strip().splitlines()[-1])
                figures["validate_s"].add(probe["validate_s"])
                figures["plan_s"].add(probe["plan_s"])
                figures["total_s"].add(probe["validate_s"] + probe["plan_s"])
                figures["cpu_s"].add(probe["cpu_s"])
                figures["peak_rss_mb"].add(probe["peak_rss_mb"])
                figures["process_s"].add(timed.seconds)
            results[f"{shape}-{size}"] = {"shape": shape, "stages": size,
                                          **{key: series.to_json() for key, series in figures.items()}}
    return results
