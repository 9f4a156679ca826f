"""The digits recipe written by hand with TensorFlow and tfmot, the way tutorials do it.

It does the work of ``pipelines/digits.yaml`` without compressflow: load scikit-learn's
digits, train a small CNN for 15 epochs, prune it to 90% sparsity with a polynomial-decay
schedule (16 epochs, pruning over the first 6; the first convolution and the classifier
stay dense), strip the pruning wrappers, convert the float model and the pruned model
(full int8) to TFLite, measure accuracy, gzip size and latency per sample (LiteRT, batch 1)
of the four models, and save the files.

    python bench/digits_script.py --out /tmp/digits-script

Its functions are also the stages of the DVC project the suite compares with
(``bench/dvc_stages.py``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot works with Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

BATCH_SIZE = 32
REPRESENTATIVE_SAMPLES = 200
UNPRUNED = ("conv1", "probs")  # left dense, as pipelines/digits.yaml excludes them
LATENCY_WARMUP, LATENCY_RUNS = 20, 200


def load_data(seed: int = 0, validation_fraction: float = 0.2):
    """Digits as (8, 8, 1) images scaled to [0, 1], shuffled with ``seed``, split train/validation."""
    digits = load_digits()
    x = digits.images.astype("float32")[..., None] / 16.0
    y = digits.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_val = round(len(x) * validation_fraction)
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def build_model():
    """Two 3x3 convolutions (16, 32), max-pool, dense 64, softmax over 10 classes."""
    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense1")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def train(model, train_data, val_data, epochs: int, learning_rate: float = 1e-3, callbacks=()):
    """Compile with Adam and sparse cross-entropy, fit, print the validation accuracy."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(*train_data, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, validation_data=val_data,
              callbacks=list(callbacks), verbose=0)
    _, accuracy = model.evaluate(*val_data, verbose=0)
    print(f"val accuracy {accuracy:.4f}")
    return model


def prune(model, train_data, val_data, epochs: int, end_epoch: int, sparsity: float):
    """Magnitude pruning from 50% to ``sparsity`` over ``end_epoch`` epochs, trained ``epochs``, stripped.

    Every layer with weights but those in ``UNPRUNED`` is pruned.
    """
    steps_per_epoch = int(np.ceil(len(train_data[0]) / BATCH_SIZE))
    end_step = steps_per_epoch * end_epoch
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.5, final_sparsity=sparsity, begin_step=0,
                                                    end_step=end_step, frequency=max(1, end_step // 10))
    # prune_low_magnitude wraps the very layers it is given: work on a copy. The first convolution and the
    # classifier stay dense, as in pipelines/digits.yaml (`exclude: [conv1, probs]`).
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())

    def wrap(layer):
        if layer.name in UNPRUNED or not layer.weights:
            return layer
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    wrapped = keras.models.clone_model(copy, clone_function=wrap)
    train(wrapped, train_data, val_data, epochs, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(wrapped)


def convert(model, method: str, x_train=None) -> bytes:
    """TFLite bytes: ``float32`` (no optimisation), ``dynamic`` (int8 weights, float activations) or ``int8``
    (full integer, calibrated)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if method == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif method == "int8":
        samples = x_train[:REPRESENTATIVE_SAMPLES]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None, ...]] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _median_ms(call) -> float:
    for _ in range(LATENCY_WARMUP):
        call()
    times = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure_tflite(flatbuffer: bytes, x_val, y_val) -> dict:
    """Accuracy (LiteRT, batch of all samples) and median latency of one sample."""
    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [len(x_val), 8, 8, 1])
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x_val)
    interpreter.invoke()
    accuracy = float(np.mean(interpreter.get_tensor(out["index"]).argmax(axis=1) == y_val))
    interpreter.resize_tensor_input(inp["index"], [1, 8, 8, 1])
    interpreter.allocate_tensors()
    sample = x_val[:1]

    def call():
        interpreter.set_tensor(inp["index"], sample)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return {"accuracy": accuracy, "latency_ms": _median_ms(call), **_sizes(flatbuffer)}


def measure_keras(model, path: Path, x_val, y_val) -> dict:
    """Accuracy (predict) and median latency of one sample through a traced call."""
    accuracy = float(np.mean(model.predict(x_val, verbose=0).argmax(axis=1) == y_val))
    sample = tf.constant(x_val[:1])
    call = tf.function(lambda batch: model(batch, training=False))
    call(sample)
    return {"accuracy": accuracy, "latency_ms": _median_ms(lambda: call(sample).numpy()),
            **_sizes(path.read_bytes())}


def _sizes(data: bytes) -> dict:
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


def report(metrics: dict, baseline: str = "float") -> None:
    """Print accuracy, gzip size and latency of every model against the baseline."""
    base = metrics[baseline]
    for name, m in metrics.items():
        print(f"{name:8s} acc {m['accuracy']:.4f}  gzip {m['gzip_bytes'] / 1024:7.1f} KiB "
              f"({base['gzip_bytes'] / m['gzip_bytes']:5.1f}x)  latency {m['latency_ms']:.4f} ms "
              f"({base['latency_ms'] / m['latency_ms']:.2f}x)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("digits-script-out"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--prune-epochs", type=int, default=16)
    parser.add_argument("--prune-end-epoch", type=int, default=6)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--quantize-method", choices=("int8", "dynamic"), default="int8",
                        help="conversion of the pruned model: full int8 (default) or dynamic-range")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    (x_train, y_train), (x_val, y_val) = load_data(args.seed)

    model = train(build_model(), (x_train, y_train), (x_val, y_val), args.epochs)
    model.save(args.out / "trained.keras")
    float_tflite = convert(model, "float32")
    (args.out / "float.tflite").write_bytes(float_tflite)

    pruned = prune(model, (x_train, y_train), (x_val, y_val), args.prune_epochs, args.prune_end_epoch,
                   args.sparsity)
    pruned.save(args.out / "pruned.keras")
    int8_tflite = convert(pruned, args.quantize_method, x_train)
    (args.out / "int8.tflite").write_bytes(int8_tflite)

    metrics = {"float": measure_tflite(float_tflite, x_val, y_val),
               "trained": measure_keras(model, args.out / "trained.keras", x_val, y_val),
               "pruned": measure_keras(pruned, args.out / "pruned.keras", x_val, y_val),
               "int8": measure_tflite(int8_tflite, x_val, y_val)}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    report(metrics)
    (args.out / "release").mkdir(exist_ok=True)
    shutil.copyfile(args.out / "int8.tflite", args.out / "release" / "digits-int8.tflite")


if __name__ == "__main__":
    main()
