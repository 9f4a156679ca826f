"""Exploring variants: one cold run of a swept pipeline against one hand-written script run per variant.

``bench/pipelines/sweep_vs_scripts.yaml`` sweeps the digits recipe over final sparsity x quantize
method (8 variants; 2 in smoke mode). Without compressflow a user runs ``bench/digits_script.py``
once per variant (``--sparsity S --quantize-method M``), training the same baseline each time.
A repetition times one cold ``compressflow run`` on an empty cache and the scripts one after the
other (which side goes first alternates between repetitions); the figure is compressflow's time
over the scripts' total.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

from common import BENCH_DIR, PYTHON, Series, compressflow_cmd, log, paired_ratios, run_timed
from settings import Settings, set_args

PIPELINE = BENCH_DIR / "pipelines" / "sweep_vs_scripts.yaml"
SPARSITIES = (0.6, 0.7, 0.8, 0.9)
METHODS = ("int8", "dynamic")
SMOKE_SPARSITIES, SMOKE_METHODS = (0.8, 0.9), ("int8",)


def variants(settings: Settings) -> list[tuple[float, str]]:
    """(final sparsity, quantize method) of every variant, in the sweep's order."""
    sparsities, methods = (SMOKE_SPARSITIES, SMOKE_METHODS) if settings.smoke else (SPARSITIES, METHODS)
    return list(itertools.product(sparsities, methods))


def overrides(settings: Settings) -> list[str]:
    """``--set`` arguments: the swept values, and the smoke mode's short epochs."""
    pairs = variants(settings)
    sparsities = sorted({s for s, _ in pairs})
    methods = list(dict.fromkeys(m for _, m in pairs))
    out = [f"params.sparsities=[{', '.join(map(str, sparsities))}]", f"params.methods=[{', '.join(methods)}]"]
    if settings.smoke:
        out += ["stages.trained.epochs=1", "stages.pruned.epochs=2", "stages.pruned.schedule.end_epoch=1"]
    return out


def run_pipeline(pipeline: Path, cache: Path, settings: Settings):
    shutil.rmtree(cache, ignore_errors=True)
    cmd = compressflow_cmd("run", str(pipeline), "--cache", str(cache), "-q", *set_args(overrides(settings)))
    return run_timed(cmd, cwd=pipeline.parent, timeout=3600)


def run_scripts(settings: Settings, folder: Path) -> list[float]:
    """Wall seconds of each script run, one per variant."""
    seconds = []
    for sparsity, method in variants(settings):
        out = folder / f"script-{sparsity}-{method}"
        shutil.rmtree(out, ignore_errors=True)
        seconds.append(run_timed([PYTHON, str(BENCH_DIR / "digits_script.py"), "--out", str(out),
                                  "--sparsity", str(sparsity), "--quantize-method", method, *settings.script_args],
                                 cwd=folder).seconds)
    return seconds


def measure(settings: Settings, repetitions: int | None = None) -> dict:
    folder = settings.workdir / "sweep_vs_scripts"
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = folder / PIPELINE.name
    shutil.copyfile(PIPELINE, pipeline)
    repetitions = repetitions or settings.repetitions
    load_before = list(os.getloadavg())
    compressflow, scripts, per_script = Series(), Series(), []
    for rep in range(repetitions):
        order = ("compressflow", "scripts") if rep % 2 == 0 else ("scripts", "compressflow")
        for side in order:
            log(f"sweep_vs_scripts rep {rep + 1}/{repetitions}: {side} ({len(variants(settings))} variants)")
            if side == "compressflow":
                compressflow.add(run_pipeline(pipeline, folder / "cache", settings).seconds)
            else:
                runs = run_scripts(settings, folder)
                per_script.append(runs)
                scripts.add(sum(runs))
    return {"variants": [{"sparsity": s, "method": m} for s, m in variants(settings)],
            "overrides": overrides(settings), "script_args": settings.script_args,
            "compressflow": compressflow.to_json(), "scripts": scripts.to_json(), "script_runs": per_script,
            "ratio": paired_ratios(compressflow, scripts).to_json(),
            "load_average": load_before, "load_average_end": list(os.getloadavg())}


def section(results: dict) -> list[str]:
    """The BENCHMARKS.md section."""
    r = results
    n = len(r["variants"])
    ratio = r["ratio"]["median"]
    sparsities = sorted({v["sparsity"] for v in r["variants"]})
    methods = list(dict.fromkeys(v["method"] for v in r["variants"]))
    reps = len(r["ratio"]["values"])
    first = r["script_runs"][0] if r["script_runs"] else []
    per = (f" One script run took {min(first):.1f}–{max(first):.1f} s (first repetition)." if first else "")
    return [
        f"{n} variants of the digits recipe (final sparsity {', '.join(map(str, sparsities))} x quantize method "
        f"{', '.join(methods)}): one cold `compressflow run bench/pipelines/sweep_vs_scripts.yaml` (a `matrix:` on "
        "`pruned` and on `int8`; the trained model and the float baseline are computed once, each pruned model "
        f"is shared by its quantized variants, one evaluate measures all {2 + len(sparsities) + n} models) against "
        f"{n} runs of `bench/digits_script.py --sparsity S --quantize-method M`, one per variant, as a user "
        "without compressflow would run them (each trains the baseline again). "
        f"{reps} repetition(s), the two sides alternating which goes first; `bench/sweep_vs_scripts.py`.", "",
        "| | wall time |", "|---|---|",
        f"| compressflow, one cold sweep of {n} variants | {_spread(r['compressflow'], ' s')} |",
        f"| {n} hand-written script runs, total | {_spread(r['scripts'], ' s')} |",
        f"| ratio compressflow / scripts | {_spread(r['ratio'], '', 3)} |", "",
        f"Goal: ratio ≤ 0.5 — {'met' if ratio <= 0.5 else 'missed'} (median {ratio:.3f}).{per} "
        f"Load average (1 min) {r['load_average'][0]:.1f} at the start and {r['load_average_end'][0]:.1f} at the "
        "end, on 2 cores shared with other processes: both sides ran under the same load, so the ratio is the "
        "figure, not the seconds.", "",
    ]


def summary_row(results: dict) -> tuple[str, str, str, str]:
    ratio = results["ratio"]["median"]
    return (f"9. sweep of {len(results['variants'])} variants: compressflow / one script per variant",
            _spread(results["ratio"], "", 3), "≤ 0.5",
            "met" if ratio <= 0.5 else f"missed by {(ratio / 0.5 - 1) * 100:.0f}%")


def _spread(data: dict, unit: str, digits: int = 1) -> str:
    values = data["values"]
    if len(values) == 1:
        return f"{data['median']:.{digits}f}{unit}"
    return f"{data['median']:.{digits}f}{unit} ({data['min']:.{digits}f}–{data['max']:.{digits}f})"
