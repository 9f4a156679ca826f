"""select: ranking, constraints, ties, the table, and the copied artifact (no TensorFlow needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compressflow.errors import StageFailed
from compressflow.stages.base import Artifact, Environment
from compressflow.stages.gates import is_named, unmet_requirements
from compressflow.stages.select import SelectStage
from compressflow.stages.selection import METRICS, Constraints, choose, judge, selection_table


def model(accuracy: float, gzip: int, latency: float | None = 1.0, **more) -> dict:
    return {"kind": "tflite_model", "label": "tflite int8", "accuracy": accuracy, "file_bytes": gzip * 2,
            "gzip_bytes": gzip, "latency_ms_median": latency, "params": 100, **more}


MODELS = {
    "float": model(0.99, 10_000, 2.0),
    "a": model(0.985, 900),
    "b": model(0.97, 500),      # smallest, but 2 points below the baseline
    "c": model(0.982, 900),     # ties with a on size, less accurate
}


def test_smallest_that_keeps_accuracy_wins():
    judged = judge(["a", "b", "c"], MODELS, "float", METRICS["gzip_size"], Constraints(max_accuracy_drop=0.01))
    assert [(c.name, c.passed) for c in judged] == [("a", True), ("b", False), ("c", True)]
    assert judged[1].reasons == ["accuracy 2.00 pt below baseline (max 1)"]
    assert choose(judged, "minimize").name == "a"  # tie on size goes to higher accuracy


def test_ties_on_every_figure_go_to_the_first_listed():
    models = {"x": model(0.9, 100), "y": model(0.9, 100)}
    for order in (["x", "y"], ["y", "x"]):
        judged = judge(order, models, None, METRICS["gzip_size"], Constraints())
        assert choose(judged, "minimize").name == order[0]


def test_goal_maximize_and_latency_constraint():
    judged = judge(["a", "b", "c"], {**MODELS, "b": model(0.97, 500, 5.0)}, "float", METRICS["accuracy"],
                   Constraints(max_latency_ms=2.0))
    assert [c.passed for c in judged] == [True, False, True]
    assert judged[1].reasons == ["latency 5 ms (max 2)"]
    assert choose(judged, "maximize").name == "a"


def test_an_exact_one_point_drop_passes_despite_rounding():
    models = {"base": model(0.9861111111111112, 1000), "m": model(0.9761111111111112, 100)}
    judged = judge(["m"], models, "base", METRICS["gzip_size"], Constraints(max_accuracy_drop=0.01))
    assert judged[0].passed


def test_missing_metric_and_compression_constraint_fail_with_reasons():
    models = {"base": model(0.9, 1000), "m": model(0.9, 500, latency=None)}
    judged = judge(["m"], models, "base", METRICS["latency_ms"], Constraints(min_compression=4))
    assert judged[0].reasons == ["no median latency (ms) measured", "gzip compression 2.00x (min 4x)"]
    assert choose(judged, "minimize") is None


def test_table_lists_every_candidate_with_verdict_and_reason():
    judged = judge(["a", "b", "c"], MODELS, "float", METRICS["gzip_size"], Constraints(max_accuracy_drop=0.01))
    table = selection_table(judged, choose(judged, "minimize"), "gzip_size", "minimize", "float",
                            MODELS["float"], Constraints(max_accuracy_drop=0.01))
    lines = table.splitlines()
    assert lines[0].split() == ["candidate", "kind", "accuracy", "delta", "size", "gzip", "size", "latency", "ms",
                                "gzip_size", "passed", "why", "not"]
    assert lines[2].startswith("a *") and lines[2].split()[-1] == "yes"
    assert lines[3].split()[:2] == ["b", "tflite"]
    assert re.search(r"\bno\s+accuracy 2\.00 pt below baseline \(max 1\)$", lines[3])
    assert "* selected: a, the smallest gzip size of the 2 of 3 candidates that passed." in table
    assert "baseline: float (accuracy 0.9900)" in table


def test_gates_and_require_models_understand_variants():
    assert is_named("int8[method=dynamic]", ["int8"]) and not is_named("int8x", ["int8"])

    class Require:
        max_accuracy_drop, min_compression, max_latency_ms, models = 0.01, None, None, ["b"]

    models = {"float": MODELS["float"], "b[sparsity=0.9]": MODELS["b"], "a": model(0.5, 1)}
    assert [p.split(":")[0] for p in unmet_requirements(Require, models, "float")] == ["model 'b[sparsity=0.9]'"]


# --------------------------------------------------------------------------- the stage


def _artifact(root: Path, name: str, kind: str, files: dict[str, bytes], **meta) -> Artifact:
    path = root / name
    (path / "sub").mkdir(parents=True)
    for file, data in files.items():
        (path / file).write_bytes(data)
    main = next(iter(files)) if files else None
    (path / "artifact.json").write_text(json.dumps({"kind": kind, "file": main, **meta}))
    (path / "manifest.json").write_text("{}")
    return Artifact.read(name, name.ljust(64, "0")[:64], path)


@pytest.fixture
def inputs(tmp_path):
    root = tmp_path / "inputs"
    metrics = _artifact(root, "check", "metrics", {"metrics.json": json.dumps(
        {"baseline": "float", "models": MODELS}).encode()})
    candidates = [_artifact(root, name, "tflite_model", {"model.tflite": name.encode() * 10},
                            method="int8") for name in ("a", "b", "c")]
    (candidates[0].path / "sub" / "extra.bin").write_bytes(b"x")
    return {"evaluation": metrics, "candidates": candidates}


def test_stage_copies_the_chosen_artifact_and_writes_its_table(run_stage, tmp_path, inputs):
    stage = SelectStage(candidates=["a", "b", "c"], evaluation="check", max_accuracy_drop=0.01)
    output = run_stage(stage, Environment(pipeline_dir=tmp_path), inputs, name="best")
    assert output.kind == "tflite_model" and output.meta["method"] == "int8" and output.meta["selected"] == "a"
    assert output.file().read_bytes() == inputs["candidates"][0].file().read_bytes()
    assert (output.path / "sub" / "extra.bin").read_bytes() == b"x"
    assert not (output.path / "manifest.json").exists()
    assert json.loads((output.path / "selection.json").read_text())["selected"] == "a"
    assert "a *" in stage.summary(output)


def test_stage_fails_with_the_table_when_nothing_passes(run_stage, tmp_path, inputs):
    stage = SelectStage(candidates=["a", "b", "c"], evaluation="check", max_accuracy_drop=0.001)
    with pytest.raises(StageFailed) as info:
        run_stage(stage, Environment(pipeline_dir=tmp_path), inputs, name="best")
    text = str(info.value)
    assert "no candidate passed the constraints" in text
    assert text.count(" no ") >= 3 and "candidate" in text.splitlines()[1]


def test_stage_refuses_candidates_the_evaluation_did_not_measure(run_stage, tmp_path, inputs):
    inputs["candidates"].append(_artifact(tmp_path / "more", "d", "tflite_model", {"m.tflite": b"d"}))
    with pytest.raises(StageFailed, match="did not measure d"):
        run_stage(SelectStage(candidates=["a", "d"], evaluation="check"), Environment(pipeline_dir=tmp_path),
                  inputs, name="best")
