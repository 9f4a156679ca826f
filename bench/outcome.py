"""Section 6: what each compression technique gives on the digits model.

Runs ``bench/pipelines/outcome.yaml`` (every technique, each result converted to TFLite and
measured by one ``evaluate`` stage), reads that stage's ``metrics.json`` from the cache,
plots accuracy against gzip size, and probes LiteRT latency of the float and int8 files
under several interpreter settings (``litert_probe.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from common import BENCH_DIR, PYTHON, compressflow_cmd, log, run_timed
from settings import OUTCOME_PIPELINE, Settings, set_args

EVALUATE_STAGE = "check"
# Files compared by the latency probe: the float baseline and the quantized variants.
PROBED = ("float", "dynamic", "int8", "int8_io", "pruned_int8")
MIN_COMPRESSION, MAX_DROP = 10.0, 0.01
# Table order: the pipeline's order of techniques (metrics.json keeps models sorted by name).
ROW_ORDER = ("float", "pruned", "clustered", "qat", "dynamic", "float16", "int8", "int8_io", "int16x8",
             "distilled", "pruned_int8", "distilled_int8", "int8_weights", "int4_weights", "dynamic_int8",
             "dynamic_int4", "pruned_int4", "pruned_mixed", "pruned95_int4", "pruned97_int4", "pruned_clustered_int4")


def run_pipeline(settings: Settings) -> tuple[Path, Path, dict[str, str]]:
    """Run the outcome pipeline in the work folder; return (pipeline, cache, stage -> key)."""
    folder = settings.workdir / "outcome"
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = folder / "outcome.yaml"
    shutil.copyfile(OUTCOME_PIPELINE, pipeline)
    cache = folder / "cache"
    overrides = set_args(settings.outcome_overrides)
    log("outcome: running bench/pipelines/outcome.yaml")
    # NOTE: --until: in smoke mode the evaluate stage measures fewer models, and only what it needs runs.
    timed = run_timed(compressflow_cmd("run", str(pipeline), "--cache", str(cache), "-q", "--until", EVALUATE_STAGE,
                                       *overrides), cwd=folder)
    plan = run_timed(compressflow_cmd("plan", str(pipeline), "--cache", str(cache), "--json", *overrides)).stdout
    keys = {name: item["key"] for name, item in json.loads(plan).items()}
    return pipeline, cache, {"__seconds__": timed.seconds, **keys}


def entry(cache: Path, key: str) -> Path:
    return cache / "entries" / key[:2] / key


def rows_from_metrics(metrics: dict) -> list[dict]:
    """One row per model: the figures of the table, in the evaluate stage's order."""
    rows = []
    order = {name: i for i, name in enumerate(ROW_ORDER)}
    baseline = metrics.get("baseline")
    names = sorted(metrics["models"], key=lambda n: (n != baseline, order.get(n, len(order)), n))
    for name in names:
        m = metrics["models"][name]
        rows.append({"model": name, "label": m.get("label"), "accuracy": m["accuracy"],
                     "accuracy_delta": m.get("accuracy_delta", 0.0), "params": m.get("params"),
                     "sparsity": m.get("sparsity"), "file_bytes": m["file_bytes"], "gzip_bytes": m["gzip_bytes"],
                     "gzip_compression": m.get("gzip_compression", 1.0),
                     "latency_ms": m.get("latency_ms_median"), "speedup": m.get("speedup", 1.0),
                     "baseline": name == metrics.get("baseline")})
    return rows


def targets(rows: list[dict]) -> dict:
    """Which models meet >= 10x smaller (gzip) within 1 point, the smallest of those within 1 point
    (the headline), and whether int8 beats float."""
    accurate = [r for r in rows if not r["baseline"] and r["accuracy_delta"] >= -MAX_DROP - 1e-9]
    small = [r["model"] for r in accurate if r["gzip_compression"] >= MIN_COMPRESSION]
    smallest = min(accurate, key=lambda r: r["gzip_bytes"], default=None)
    int8 = next((r for r in rows if r["model"] == "int8"), None)
    return {"small_and_accurate": small, "smallest_within_1pt": smallest["model"] if smallest else None,
            "int8_speedup": int8["speedup"] if int8 else None}


def probe_latency(cache: Path, keys: dict[str, str], settings: Settings) -> dict:
    files = {name: entry(cache, keys[name]) / "model.tflite" for name in PROBED if name in keys}
    models = {name: str(path) for name, path in files.items() if path.exists()}
    spec = settings.workdir / "outcome" / "probe-models.json"
    spec.write_text(json.dumps(models))
    rounds, calls = (3, 50) if settings.smoke else (15, 300)
    log("outcome: LiteRT latency probe")
    out = run_timed([PYTHON, str(BENCH_DIR / "litert_probe.py"), str(spec), "--rounds", str(rounds),
                     "--calls", str(calls)]).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(settings: Settings) -> dict:
    from plot import plot_accuracy_vs_size

    _, cache, keys = run_pipeline(settings)
    seconds = keys.pop("__seconds__")
    metrics = json.loads((entry(cache, keys[EVALUATE_STAGE]) / "metrics.json").read_text())
    rows = rows_from_metrics(metrics)
    plot = plot_accuracy_vs_size(rows, settings.results_dir / "accuracy_vs_size.png")
    return {"seconds": seconds, "rows": rows, "targets": targets(rows), "plot": plot,
            "samples": metrics.get("data", {}).get("samples"), "probe": probe_latency(cache, keys, settings)}
