"""Run fine_tune -> prune -> int8 (and float32) -> evaluate on a dataset named ``digits``, outside the executor."""

from __future__ import annotations

import itertools
from pathlib import Path

from compressflow.stages.base import Artifact, Environment, StageContext, derive_seed
from compressflow.stages.evaluate import EvaluateStage, LatencyOptions
from compressflow.stages.fine_tune import FineTuneStage
from compressflow.stages.load import LoadStage
from compressflow.stages.prune import PruneStage
from compressflow.stages.quantize import QuantizeStage

MODELS = ["float", "trained", "pruned", "int8"]
CALIBRATION = 50
_counter = itertools.count()


def run(stage, env: Environment, inputs=None, *, name: str, logs: list | None = None) -> Artifact:
    """Run ``stage`` into a fresh folder under the pipeline's and return its output artifact."""
    out_dir = env.pipeline_dir / "outputs" / f"{name}-{next(_counter)}"
    out_dir.mkdir(parents=True)
    ctx = StageContext(name=name, seed=derive_seed(env.seed, name), out_dir=out_dir, env=env,
                       inputs=inputs or {}, log=(logs.append if logs is not None else (lambda _: None)))
    stage.run(ctx)
    return Artifact.read(name, "0" * 64, out_dir)


def compress(env: Environment, logs: list | None = None) -> dict[str, Artifact]:
    """The models of the digits example (a small CNN, few epochs) and the evaluate stage's output as ``check``."""
    found = {"base": run(LoadStage(builder="compressflow.models:small_cnn",
                                   args={"filters": [8, 16], "dense": 32}), env, name="base")}
    found["trained"] = run(FineTuneStage(model="base", data="digits", epochs=4, batch_size=32, learning_rate=3e-3),
                           env, {"model": found["base"]}, name="trained", logs=logs)
    found["pruned"] = run(PruneStage(model="trained", data="digits", epochs=2, batch_size=32,
                                     schedule={"type": "constant", "target_sparsity": 0.5}),
                          env, {"model": found["trained"]}, name="pruned", logs=logs)
    found["int8"] = run(QuantizeStage(model="pruned", method="int8", data="digits",
                                      representative_samples=CALIBRATION),
                        env, {"model": found["pruned"]}, name="int8", logs=logs)
    found["float"] = run(QuantizeStage(model="trained", method="float32"), env, {"model": found["trained"]},
                         name="float")
    check = EvaluateStage(models=MODELS, baseline="float", data="digits", latency=LatencyOptions(runs=3, warmup=1))
    found["check"] = run(check, env, {"models": [found[name] for name in MODELS], "baseline": found["float"]},
                         name="check", logs=logs)
    return found


def digits_arrays(count: int = 600):
    """The first ``count`` bundled digits: (8, 8, 1) float32 images in 0..1 and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images[:count, :, :, None] / 16).astype("float32"), digits.target[:count].astype("int64")


def accuracy(model_file: Path, x, y) -> float:
    """The Keras model's accuracy on arrays (its own predictions, not the stage's)."""
    from compressflow.stages.tfutil import keras

    model = keras().models.load_model(model_file, compile=False)
    return float((model.predict(x, verbose=0).argmax(axis=1) == y).mean())
