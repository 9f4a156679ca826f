"""LiteRT latency of a real-size model: MobileNetV2 (alpha 0.35, 96x96x3, 10 classes) as float32, int8 and int4.

    python bench/real_size_latency.py [--rounds 7] [--calls 40] [--train-images 320] [--out FILE]

Builds ``tf_keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None,
classes=10)``, trains it one epoch on generated images (each class brightens one region; latency
does not depend on the weights, the epoch only gives calibration realistic activations), and
converts it three ways:

* **float32**: ``TFLiteConverter`` without optimisation;
* **int8**: full integer (``TFLITE_BUILTINS_INT8``, 100 representative images, int8 input and output);
* **int4**: the LiteRT Quantizer's ``dynamic_wi4_afp32`` recipe on the float file (int4 weights,
  activations quantized on the fly), as the ``litert`` quantize method does.

For each of batch 1 and 16 and ``num_threads`` 1 and 2, one ``ai_edge_litert`` Interpreter per model
is made; ``rounds`` rounds then time ``calls`` ``invoke()`` calls of each model in rotation (float,
int8, int4), so load from other processes falls on all three alike. The figure is the median over
rounds of the time per sample. Prints JSON (``--out`` also writes it).

It is a script, not a pipeline: the evaluate stage times batch 1 at its own thread count; the
thread x batch grid needs interpreters held side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = ("float32", "int8", "int4")
BATCHES = (1, 16)
THREADS = (1, 2)
SHAPE = (96, 96, 3)
CLASSES = 10
INT4_RECIPE = "dynamic_wi4_afp32"


def generated_images(count: int, seed: int = 0):
    """``count`` images in [0, 1] of SHAPE and their labels: class k brightens the k-th horizontal band."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((count, *SHAPE), dtype=np.float32) * 0.5
    y = np.arange(count) % CLASSES
    band = SHAPE[0] // CLASSES
    for i, label in enumerate(y):
        x[i, label * band:(label + 1) * band] += 0.5
    return x, y.astype("int64")


def build_and_train(train_images: int):
    """MobileNetV2 alpha 0.35 from scratch, one epoch on generated images (no epoch if ``train_images`` is 0)."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=SHAPE, weights=None, classes=CLASSES)
    if train_images:
        x, y = generated_images(train_images)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model


def convert(model, method: str, samples) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if method == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([s[None, ...]] for s in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def int4(float_model: bytes) -> bytes:
    """The LiteRT Quantizer's int4 recipe on the float flatbuffer (the calls of the ``litert`` method)."""
    from litert_quantizer import quantizer, recipe

    engine = quantizer.Quantizer(bytearray(float_model), list(getattr(recipe, INT4_RECIPE)()))
    result = engine.quantize(None, enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)


def interpreter(path: Path, threads: int, batch: int):
    """An interpreter with its input resized to ``batch`` and set once (only ``invoke()`` is timed)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], [batch, *SHAPE])
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    if np.issubdtype(detail["dtype"], np.integer):
        data = rng.integers(-128, 127, size=(batch, *SHAPE)).astype(detail["dtype"])
    else:
        data = rng.random((batch, *SHAPE), dtype=np.float32)
    interp.set_tensor(detail["index"], data)
    return interp


def ms_per_sample(interp, calls: int, batch: int) -> float:
    invoke, clock = interp.invoke, time.perf_counter
    start = clock()
    for _ in range(calls):
        invoke()
    return (clock() - start) / calls / batch * 1000


def time_models(paths: dict[str, Path], rounds: int, calls: int) -> list[dict]:
    """One row per (batch, threads): median ms per sample of each model, its values, ratio of float to it."""
    rows = []
    for batch in BATCHES:
        for threads in THREADS:
            interps = {name: interpreter(path, threads, batch) for name, path in paths.items()}
            n = max(3, calls // batch)
            for interp in interps.values():  # warm-up: first calls pack weights and allocate
                ms_per_sample(interp, 2, batch)
            values: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(rounds):
                for name, interp in interps.items():
                    values[name].append(ms_per_sample(interp, n, batch))
            medians = {name: statistics.median(v) for name, v in values.items()}
            rows.append({"batch": batch, "threads": threads, "calls_per_round": n, "ms_per_sample": medians,
                         "values": values,
                         "speedup_over_float": {name: medians["float32"] / m for name, m in medians.items()}})
    return rows


def measure_all(rounds: int, calls: int, train_images: int, folder: Path) -> dict:
    started = time.perf_counter()
    model = build_and_train(train_images)
    samples, _ = generated_images(100, seed=1)
    flatbuffers = {"float32": convert(model, "float32", samples)}
    flatbuffers["int8"] = convert(model, "int8", samples)
    flatbuffers["int4"] = int4(flatbuffers["float32"])
    paths = {}
    for name in MODELS:
        paths[name] = folder / f"mobilenet_v2_{name}.tflite"
        paths[name].write_bytes(flatbuffers[name])
    prepared = time.perf_counter() - started
    rows = time_models(paths, rounds, calls)
    return {"model": "MobileNetV2(alpha=0.35, input 96x96x3, weights=None, 10 classes)",
            "params": int(model.count_params()), "trained_images": train_images, "int4_recipe": INT4_RECIPE,
            "bytes": {name: len(b) for name, b in flatbuffers.items()}, "rounds": rounds, "calls": calls,
            "prepare_seconds": prepared, "timing_seconds": time.perf_counter() - started - prepared,
            "load_average_start": list(os.getloadavg()), "rows": rows}


def measure(settings) -> dict:
    """The section of bench/run.py: the script in its own process (fewer rounds in smoke mode)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import PYTHON, log, run_timed

    rounds, calls, images = (2, 4, 64) if settings.smoke else (7, 40, 320)
    out = settings.workdir / "real_size_latency.json"
    log(f"real_size_latency: MobileNetV2, {rounds} rounds of {calls} calls")
    load_before = list(os.getloadavg())
    run_timed([PYTHON, __file__, "--rounds", str(rounds), "--calls", str(calls), "--train-images", str(images),
               "--out", str(out), "--workdir", str(settings.workdir / "real_size_latency")], timeout=2400)
    result = json.loads(out.read_text())
    result["load_average"] = load_before
    result["load_average_end"] = list(os.getloadavg())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=40, help="invoke() calls per round at batch 1 (÷ batch)")
    parser.add_argument("--train-images", type=int, default=320, help="0: no training epoch")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="real-size-"))
    folder.mkdir(parents=True, exist_ok=True)
    result = measure_all(args.rounds, args.calls, args.train_images, folder)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()


def section(results: dict) -> list[str]:
    """The BENCHMARKS.md section: ms per sample per setting, and each model's speed-up over float."""
    r = results
    rows = r["rows"]
    lines = [
        f"{r['model']}, {r['params']:,} parameters, trained one epoch on {r['trained_images']} generated images "
        "(latency does not depend on the weights; the epoch gives the int8 calibration realistic activations). "
        "float32 (no optimisation), int8 (full integer, int8 input and output) and int4 (LiteRT Quantizer "
        f"`{r['int4_recipe']}`: int4 weights, activations quantized on the fly) in `ai_edge_litert`'s Interpreter "
        "with its default XNNPACK delegate. Only `invoke()` is timed, on an input set once; per setting, "
        f"{r['rounds']} rounds time the three models in rotation "
        f"({' / '.join(str(row['calls_per_round']) for row in rows)} calls a round in the rows below), "
        "the figure is the median over rounds of the time per sample (`bench/real_size_latency.py`).", "",
        "| batch | threads | float32 ms/sample | int8 ms/sample | int4 ms/sample | int8 speed-up | int4 speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ms, up = row["ms_per_sample"], row["speedup_over_float"]
        lines.append(f"| {row['batch']} | {row['threads']} | {ms['float32']:.3f} | {ms['int8']:.3f} | "
                     f"{ms['int4']:.3f} | {up['int8']:.2f}x | {up['int4']:.2f}x |")
    sizes = r["bytes"]
    best = max(row["speedup_over_float"]["int8"] for row in rows)
    at_one = next(row for row in rows if row["batch"] == 1 and row["threads"] == 1)["speedup_over_float"]["int8"]
    lines += [
        "", f"Sizes: float32 {sizes['float32'] / 1024:.0f} KiB, int8 {sizes['int8'] / 1024:.0f} KiB, "
        f"int4 {sizes['int4'] / 1024:.0f} KiB.", "",
        f"Goal: int8 at least 1.5x faster than float — {'met' if at_one >= 1.5 else 'missed'} at batch 1, 1 thread "
        f"({at_one:.2f}x); best over the settings {best:.2f}x. Load average (1 min) {r['load_average'][0]:.1f} at "
        f"the start and {r['load_average_end'][0]:.1f} at the end, on 2 cores shared with other processes: with "
        "2 threads the second thread competes with them, and the three models in rotation share that load "
        "alike, so compare within a row. This int4 recipe quantizes activations at every call and runs "
        "outside XNNPACK's fast paths, so it buys size (the smallest file), not speed; its 2-thread rows are "
        "the slowest of all while other processes hold the cores.", "",
    ]
    return lines


def summary_row(results: dict) -> tuple[str, str, str, str]:
    one = next(row for row in results["rows"] if row["batch"] == 1 and row["threads"] == 1)
    up = one["speedup_over_float"]["int8"]
    return ("10. MobileNetV2 int8 speed-up over float32 in LiteRT (batch 1, 1 thread)", f"{up:.2f}x", "≥ 1.5x",
            "met" if up >= 1.5 else f"missed by {(1 - up / 1.5) * 100:.0f}%")
