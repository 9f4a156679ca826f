"""Sections 1-3 on ``pipelines/digits.yaml``: cold run against the hand-written script, fully
cached rerun against ``import tensorflow``, and an incremental rerun after changing the
quantize method.

One repetition does, in a fresh cache: a cold ``compressflow run`` and the script (their
order alternates between repetitions so drift in the machine's load falls on both), then
reruns on that cache. Every command is a fresh subprocess.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from common import BENCH_DIR, PYTHON, Series, compressflow_cmd, log, paired_ratios, run_timed
from settings import DIGITS_PIPELINE, Settings, set_args

INCREMENTAL_CHANGE = "stages.int8.method=dynamic"
IMPORT_TENSORFLOW = [PYTHON, "-c", "import tensorflow"]


def prepare(settings: Settings) -> Path:
    """A copy of the digits pipeline in the work folder (its exports and logs land there)."""
    folder = settings.workdir / "digits"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "digits.yaml"
    shutil.copyfile(DIGITS_PIPELINE, target)
    return target


def warm_up(pipeline: Path, settings: Settings) -> None:
    """Untimed: fill the OS file cache and Python's bytecode caches for both sides."""
    run_timed(compressflow_cmd("validate", str(pipeline), *set_args(settings.digits_overrides)))
    run_timed(IMPORT_TENSORFLOW)


def planned_keys(pipeline: Path, cache: Path, overrides: list[str]) -> dict[str, str]:
    """Stage name -> cache key, from ``compressflow plan --json``."""
    out = run_timed(compressflow_cmd("plan", str(pipeline), "--cache", str(cache), "--json",
                                     *set_args(overrides))).stdout
    return {name: item["key"] for name, item in json.loads(out).items()}


def entry_exists(cache: Path, key: str) -> bool:
    return (cache / "entries" / key[:2] / key / "manifest.json").exists()


def run_compressflow(pipeline: Path, cache: Path, overrides: list[str], memory: bool = False):
    return run_timed(compressflow_cmd("run", str(pipeline), "--cache", str(cache), "-q", *set_args(overrides)),
                     cwd=pipeline.parent, memory=memory)


def run_script(settings: Settings, out_dir: Path):
    return run_timed([PYTHON, str(BENCH_DIR / "digits_script.py"), "--out", str(out_dir), *settings.script_args],
                     cwd=settings.workdir, memory=True)


def measure(settings: Settings) -> dict:
    """Run sections 1-3; return their figures (seconds, ratios, stages that ran)."""
    pipeline = prepare(settings)
    warm_up(pipeline, settings)
    overrides = settings.digits_overrides
    cold, script, cached, tf_import, incremental = Series(), Series(), Series(), Series(), Series()
    cold_mem, script_mem = Series(), Series()
    ran_incremental: list[str] = []
    caches = []
    for rep in range(settings.repetitions):
        cache = settings.workdir / f"digits-cache-{rep}"
        shutil.rmtree(cache, ignore_errors=True)
        caches.append(cache)
        order = ("compressflow", "script") if rep % 2 == 0 else ("script", "compressflow")
        for side in order:
            log(f"digits rep {rep + 1}/{settings.repetitions}: cold {side}")
            if side == "compressflow":
                timed = run_compressflow(pipeline, cache, overrides, memory=True)
                cold.add(timed.seconds)
                cold_mem.add(timed.peak_rss_mb)
            else:
                timed = run_script(settings, settings.workdir / f"script-out-{rep}")
                script.add(timed.seconds)
                script_mem.add(timed.peak_rss_mb)

    # Fully cached reruns, interleaved with a bare TensorFlow import.
    for rep in range(settings.cached_repetitions):
        cache = caches[rep % len(caches)]
        log(f"digits cached rerun {rep + 1}/{settings.cached_repetitions}")
        cached.add(run_compressflow(pipeline, cache, overrides).seconds)
        tf_import.add(run_timed(IMPORT_TENSORFLOW).seconds)

    # Incremental: change the quantize method; what ran is read from the cache.
    for rep, cache in enumerate(caches):
        changed = [*overrides, INCREMENTAL_CHANGE]
        keys = planned_keys(pipeline, cache, changed)
        before = {name for name, key in keys.items() if entry_exists(cache, key)}
        log(f"digits incremental rerun {rep + 1}/{len(caches)}")
        incremental.add(run_compressflow(pipeline, cache, changed).seconds)
        ran = [name for name, key in keys.items() if name not in before and entry_exists(cache, key)]
        if not ran_incremental:
            ran_incremental = ran
    return {
        "cold_compressflow": cold.to_json(), "script": script.to_json(),
        "cold_over_script": paired_ratios(cold, script).to_json(),
        "cold_peak_rss_mb": cold_mem.to_json(), "script_peak_rss_mb": script_mem.to_json(),
        "cached": cached.to_json(), "import_tensorflow": tf_import.to_json(),
        "cached_over_import": paired_ratios(cached, tf_import).to_json(),
        "incremental": incremental.to_json(),
        "incremental_over_cold": paired_ratios(incremental, cold).to_json(),
        "incremental_change": INCREMENTAL_CHANGE, "incremental_ran": ran_incremental,
        "stages": list(planned_keys(pipeline, caches[0], overrides)),
        "caches": [str(c) for c in caches], "pipeline": str(pipeline),
    }
