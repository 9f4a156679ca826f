"""Long sweep variant names wrap in the report's tables, and show whole on hover."""

from __future__ import annotations

import re

from compressflow.report.html import render_html
from report_helpers import ReportPage

VARIANTS = [f"quantized[final_sparsity={s},method={m}]" for s in (0.7, 0.8, 0.9) for m in ("int8", "dynamic")]


def sweep_record() -> dict:
    """A run record of an evaluate stage over a sweep's variants (what records.build_record writes)."""
    models = {"float": {"kind": "tflite_model", "label": "tflite float32", "accuracy": 0.99, "gzip_bytes": 140_000}}
    for i, name in enumerate(VARIANTS):
        models[name] = {"kind": "tflite_model", "label": "tflite int8", "accuracy": 0.98 - i / 1000,
                        "gzip_bytes": 10_000 + 1000 * i, "accuracy_delta": -0.01 - i / 1000}
    stages = {name: {"type": "quantize", "status": "ran", "seconds": 1.0, "key": "ab" * 32, "reasons": ["new"]}
              for name in models}
    stages["check"] = {"type": "evaluate", "status": "ran", "seconds": 1.0, "key": "cd" * 32, "reasons": ["new"],
                       "config": {"models": list(models)}, "inputs": {"models": list(models)},
                       "metrics": {"baseline": "float", "models": models}}
    return {"id": "r1", "status": "ok", "pipeline": {"name": "sweep"}, "stages": stages,
            "edges": [[name, "check"] for name in models]}


def test_models_table_wraps_long_variant_names_and_shows_them_whole_on_hover():
    html = render_html(sweep_record())
    page = ReportPage(html)
    assert set(page.models) == {"float", *VARIANTS}
    for name in VARIANTS:
        assert page.models[name][0].startswith(name), "the cell reads as the whole name"
    titles = re.findall(r"<td class='name wrap' title='([^']*)'>", html)
    assert all(titles.count(name) == 2 for name in VARIANTS), "in the stage table and the models table"
    cell = "<b>quantized<wbr>[final_sparsity=0.8,<wbr>method=int8]</b>"
    assert html.count(cell) == 2, "breaks before [ and after , only"
    assert "td.wrap b{white-space:normal}" in html, "long names may wrap (the other cells stay on one line)"
    assert "<td class='name' title='float'><b>float</b><span class='tag'>baseline</span>" in html
