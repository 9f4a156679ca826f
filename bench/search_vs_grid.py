"""Section 7: how many trials TPE needs to find what a full grid finds, on one shared cache.

Runs ``bench/pipelines/search_vs_grid.yaml``: first its ``grid`` search (every point of the
space), then three TPE searches of the same space on the same cache. For each TPE search it
counts the trials until one first reaches the grid's best feasible gzip size. A trial's stages
are keyed by their recipe stage and params, not by the search asking for them, so a TPE trial
whose params the grid already tried is a cache hit: the section also reports the compute time
those hits saved (the grid run's time for the same stages).
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import yaml

from common import BENCH_DIR, REPO_DIR, compressflow_cmd, log, run_timed
from settings import Settings, set_args

from compressflow.stages.base import derive_seed

PIPELINE = BENCH_DIR / "pipelines" / "search_vs_grid.yaml"
RECIPE = REPO_DIR / "pipelines" / "recipes" / "prune-cluster-int8.yaml"
GRID = "grid"
TPE = ("tpe_0", "tpe_1", "tpe_2")


def prepare(settings: Settings) -> tuple[Path, Path]:
    """The pipeline and its recipe copied into the work folder (the recipe shortened in smoke mode)."""
    folder = settings.workdir / "search"
    (folder / "recipes").mkdir(parents=True, exist_ok=True)
    pipeline = folder / PIPELINE.name
    shutil.copyfile(PIPELINE, pipeline)
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["params"].update(settings.search_recipe_params)
    if settings.smoke:  # NOTE: a schedule must end within the (one) pruning epoch
        recipe["stages"]["prune"]["schedule"]["end_epoch"] = 1
    (folder / "recipes" / RECIPE.name).write_text(yaml.safe_dump(recipe, sort_keys=False))
    return pipeline, folder / "cache"


def run_search(pipeline: Path, cache: Path, stage: str, overrides: list[str], jobs: int = 1) -> dict:
    """Run one search stage (and what it needs); its wall time and the run record's stages (key, status, time).

    The record holds the search as one stage: its trials' stages are not in it.
    """
    runs = pipeline.parent / ".compressflow" / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    log(f"search: running {stage}")
    # NOTE: --no-check: the check before a run imports TensorFlow (a minute on a loaded machine) for each of
    # the four runs; the figures are the search stage's own time, which it does not change.
    timed = run_timed(compressflow_cmd("run", str(pipeline), "--cache", str(cache), "-q", "--until", stage,
                                       "--jobs", str(jobs), "--no-check", *overrides), cwd=pipeline.parent)
    new = sorted(set(runs.iterdir()) - before)
    record = json.loads((new[-1] / "run.json").read_text()) if new else {}
    stages = {name: {"status": item.get("status"), "seconds": item.get("seconds") or 0.0, "key": item.get("key")}
              for name, item in record.get("stages", {}).items()}
    if stage not in stages:
        raise RuntimeError(f"the run record of {pipeline} has no stage {stage}")
    return {"seconds": timed.seconds, "stages": stages}


def search_trials(cache: Path, run: dict, stage: str) -> list[dict]:
    """The trials of a finished search, read from its cache entry's ``trials.json``."""
    key = run["stages"][stage]["key"]
    return json.loads((cache / "entries" / key[:2] / key / "trials.json").read_text())


def best_feasible(trials: list[dict]) -> dict | None:
    """The feasible finished trial of smallest gzip size (ties: the earlier one)."""
    done = [t for t in trials if t["state"] == "COMPLETE" and t["feasible"]]
    return min(done, key=lambda t: (t["values"][0], t["number"]), default=None)


def trials_to_reach(trials: list[dict], target: float) -> int | None:
    """How many trials (counting every one asked, in order) until a feasible one is at most ``target``."""
    for count, trial in enumerate(sorted(trials, key=lambda t: t["number"]), start=1):
        if trial["state"] == "COMPLETE" and trial["feasible"] and trial["values"][0] <= target:
            return count
    return None


def summarize_tpe(name: str, trials: list[dict], run: dict, target: float, seconds_per_trial: float) -> dict:
    """One TPE search: trials to reach ``target``, its best, and what its cache hits saved."""
    best = best_feasible(trials)
    cached = sum(1 for t in trials if t.get("cached"))
    return {"trials": len(trials), "distinct_params": len({json.dumps(t["params"], sort_keys=True) for t in trials}),
            "cached_trials": cached, "reached_after": trials_to_reach(trials, target),
            "best_gzip_bytes": best["values"][0] if best else None, "best_params": best["params"] if best else None,
            "stage_seed": derive_seed(0, name),
            "run_seconds": run["seconds"], "search_seconds": run["stages"][name]["seconds"],
            # NOTE: alone on an empty cache the search would compute each distinct setting once (its repeats are
            # hits of its own), at about what a grid trial cost.
            "saved_seconds": len({json.dumps(t["params"], sort_keys=True) for t in trials if t.get("cached")})
            * seconds_per_trial}


def measure(settings: Settings) -> dict:
    pipeline, cache = prepare(settings)
    overrides = set_args(settings.search_overrides)
    grid_run = run_search(pipeline, cache, GRID, overrides, jobs=settings.search_grid_jobs)
    grid_trials = search_trials(cache, grid_run, GRID)
    best = best_feasible(grid_trials)
    grid_seconds = grid_run["stages"][GRID]["seconds"]
    computed = sum(1 for t in grid_trials if not t.get("cached")) or 1
    result = {
        "space": yaml.safe_load(pipeline.read_text())["stages"][GRID]["space"], "overrides": settings.search_overrides,
        "recipe_params": settings.search_recipe_params, "grid_jobs": settings.search_grid_jobs,
        "grid": {"trials": len(grid_trials), "feasible": sum(1 for t in grid_trials if t["feasible"]),
                 "run_seconds": grid_run["seconds"], "search_seconds": grid_seconds,
                 "seconds_per_trial": grid_seconds / computed,
                 "best_gzip_bytes": best["values"][0] if best else None,
                 "best_params": best["params"] if best else None,
                 "best_accuracy": best["metrics"].get("accuracy") if best else None,
                 "baseline_gzip_bytes": _baseline_gzip(grid_trials, best),
                 "table": [{"number": t["number"], "params": t["params"], "feasible": t["feasible"],
                            "gzip_bytes": t["values"][0] if t["values"] else None,
                            "accuracy": t["metrics"].get("accuracy")} for t in grid_trials]},
        "tpe": {},
    }
    if best is None:
        return result
    for name in TPE:
        run = run_search(pipeline, cache, name, overrides)
        result["tpe"][name] = summarize_tpe(name, search_trials(cache, run, name), run, best["values"][0],
                                            grid_seconds / computed)
    reached = [item["reached_after"] for item in result["tpe"].values()]
    result["median_reached_after"] = statistics.median(reached) if None not in reached else None
    return result


def _baseline_gzip(trials: list[dict], best: dict | None) -> float | None:
    if best is None:
        return None
    ratio = best["metrics"].get("gzip_compression")
    return best["values"][0] * ratio if ratio else None
