"""Sections 9 (a sweep against one script per variant) and 10 (MobileNetV2 in LiteRT) render from results.

No TensorFlow: the report is rendered (``--render``) from the committed results with these two
sections set to figures written here, so the goals' verdicts are known.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"


def _series(values):
    return {"values": values, "median": sorted(values)[len(values) // 2], "min": min(values), "max": max(values)}


def _latency_row(batch, threads, float_ms, int8_ms, int4_ms):
    ms = {"float32": float_ms, "int8": int8_ms, "int4": int4_ms}
    return {"batch": batch, "threads": threads, "calls_per_round": 4, "ms_per_sample": ms,
            "values": {k: [v] for k, v in ms.items()}, "speedup_over_float": {k: float_ms / v for k, v in ms.items()}}


def render(tmp_path: Path, sweep_ratio: float, int8_ms: float) -> str:
    results = json.loads((REPO / "bench" / "results" / "results.json").read_text())
    results["sweep_vs_scripts"] = {
        "variants": [{"sparsity": s, "method": m} for s in (0.6, 0.7, 0.8, 0.9) for m in ("int8", "dynamic")],
        "overrides": [], "script_args": [], "compressflow": _series([100.0 * sweep_ratio]),
        "scripts": _series([100.0]), "script_runs": [[12.5] * 8], "ratio": _series([sweep_ratio]),
        "load_average": [3.5, 3.0, 2.0], "load_average_end": [4.25, 3.0, 2.0]}
    results["real_size_latency"] = {
        "model": "MobileNetV2(alpha=0.35, input 96x96x3, weights=None, 10 classes)", "params": 412_770,
        "trained_images": 320, "int4_recipe": "dynamic_wi4_afp32", "rounds": 7, "calls": 40,
        "bytes": {"float32": 1_643_740, "int8": 633_208, "int4": 397_824},
        "rows": [_latency_row(1, 1, 2.0, int8_ms, 5.0), _latency_row(1, 2, 1.5, int8_ms, 4.0),
                 _latency_row(16, 1, 0.8, int8_ms, 2.0), _latency_row(16, 2, 0.5, int8_ms, 1.0)],
        "load_average": [3.5, 3.0, 2.0], "load_average_end": [4.25, 3.0, 2.0]}
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run([sys.executable, str(RUN), "--render", str(saved), "--out", str(out)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    return out.read_text()


def test_sections_give_the_tables_ratios_goals_and_load(tmp_path):
    text = render(tmp_path, sweep_ratio=0.4, int8_ms=1.0)
    sweep = text.split("## 9. Exploring variants")[1].split("## 10.")[0]
    assert "| ratio compressflow / scripts | 0.400 |" in sweep
    assert "| 8 hand-written script runs, total | 100.0 s |" in sweep
    assert "Goal: ratio ≤ 0.5 — met" in sweep
    assert "Load average (1 min) 3.5 at the start and 4.2 at the end" in sweep
    latency = text.split("## 10. A real-size model: MobileNetV2 in LiteRT")[1].split("## How to reproduce")[0]
    assert "| 1 | 1 | 2.000 | 1.000 | 5.000 | 2.00x | 0.40x |" in latency
    assert "| 16 | 2 | 0.500 | 1.000 | 1.000 | 0.50x | 0.50x |" in latency
    assert "Goal: int8 at least 1.5x faster than float — met at batch 1, 1 thread (2.00x)" in latency
    summary = text.split("## Machine")[0]
    assert "| 9. sweep of 8 variants: compressflow / one script per variant | 0.400 | ≤ 0.5 | met |" in summary
    assert "| 10. MobileNetV2 int8 speed-up over float32 in LiteRT (batch 1, 1 thread) | 2.00x | ≥ 1.5x | met |" \
        in summary


def test_missed_goals_say_by_how_much(tmp_path):
    summary = render(tmp_path, sweep_ratio=0.75, int8_ms=2.5).split("## Machine")[0]
    assert "| 0.750 | ≤ 0.5 | missed by 50% |" in summary
    assert "| 0.80x | ≥ 1.5x | missed by 47% |" in summary
