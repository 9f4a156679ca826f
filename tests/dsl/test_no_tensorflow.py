"""The loader never imports TensorFlow: validation must stay fast and work without it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from dsl_helpers import DESIGN_EXAMPLE


def test_loading_a_pipeline_does_not_import_tensorflow(tmp_path):
    path = tmp_path / "digits.yaml"
    path.write_text(DESIGN_EXAMPLE)
    script = textwrap.dedent(f"""
        import json, sys
        from compressflow.dsl import load_pipeline, pipeline_json_schema
        pipeline = load_pipeline({str(path)!r}, overrides=["params.sparsity=0.9"])
        pipeline_json_schema()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        print(json.dumps({{"stages": list(pipeline.stages), "heavy": heavy}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["stages"] == ["base", "trained", "pruned", "int8", "check", "release"]
    assert report["heavy"] == []
