"""Why is (or isn't) int8 faster than float here? LiteRT latency of TFLite files under several
interpreter settings, measured side by side.

    python bench/litert_probe.py MODELS.json [--rounds 15] [--calls 300]

``MODELS.json`` maps a label to a ``.tflite`` path. For every setting (op resolver with the
default XNNPACK delegate or without any delegate; 1 or 2 threads; batch 1 or 64) and every
model, the time per sample of ``calls`` invocations is measured in ``rounds`` rounds that
cycle through the models, so slow drifts of the machine fall on all of them alike. Only
``invoke()`` is timed, on an input set once (as ``evaluate`` does); a block stops early
after 0.1 s, so slow settings do not take minutes. Prints JSON:
``{"settings": [{"resolver", "threads", "batch", "us_per_sample": {label: median}}]}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

RESOLVERS = {"xnnpack (default)": OpResolverType.AUTO,
             "no delegate": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
THREADS = (1, 2)
BATCHES = (1, 64)


def make_interpreter(path: Path, resolver, threads: int, batch: int) -> Interpreter:
    """An interpreter with its input resized to ``batch`` and set to a fixed sample batch."""
    interpreter = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    detail = interpreter.get_input_details()[0]
    shape = [batch, *[int(d) for d in detail["shape"][1:]]]
    interpreter.resize_tensor_input(detail["index"], shape)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    if np.issubdtype(detail["dtype"], np.integer):
        info = np.iinfo(detail["dtype"])
        data = rng.integers(info.min, info.max, size=shape).astype(detail["dtype"])
    else:
        data = rng.random(shape, dtype=np.float32).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], data)
    return interpreter


def time_per_sample_us(interpreter: Interpreter, calls: int, batch: int, budget_s: float = 0.1) -> float:
    """Mean µs per sample over ``calls`` invocations, or fewer if they take longer than ``budget_s``."""
    invoke, clock = interpreter.invoke, time.perf_counter
    start = clock()
    done = 0
    while done < calls:
        invoke()
        done += 1
        if done % 10 == 0 and clock() - start > budget_s:
            break
    return (clock() - start) / done / batch * 1e6


def measure_setting(models: dict[str, Path], resolver, threads: int, batch: int, rounds: int, calls: int):
    interpreters = {label: make_interpreter(path, resolver, threads, batch) for label, path in models.items()}
    calls = max(10, calls // batch) if batch > 1 else calls
    for interpreter in interpreters.values():  # warm-up
        time_per_sample_us(interpreter, max(10, calls // 10), batch)
    samples: dict[str, list[float]] = {label: [] for label in models}
    for _ in range(rounds):
        for label, interpreter in interpreters.items():
            samples[label].append(time_per_sample_us(interpreter, calls, batch))
    return {label: statistics.median(values) for label, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    models = {label: Path(path) for label, path in json.loads(args.models.read_text()).items()}
    settings = []
    for resolver_name, resolver in RESOLVERS.items():
        for threads in THREADS:
            for batch in BATCHES:
                settings.append({"resolver": resolver_name, "threads": threads, "batch": batch,
                                 "us_per_sample": measure_setting(models, resolver, threads, batch,
                                                                  args.rounds, args.calls)})
    print(json.dumps({"settings": settings}))


if __name__ == "__main__":
    main()
