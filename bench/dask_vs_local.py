"""A 4-variant sweep on a local Dask cluster of 2 workers against the local process runner (--jobs 2).

    python bench/dask_vs_local.py [--repetitions N] [--epochs E] [--s3]

Each repetition runs the same pipeline (train a small CNN on the digits, then four
prune + int8 variants) from an empty cache, once per executor, through the real
``compressflow run`` command, and prints the wall times and their ratio. Wall time
includes starting the workers (and the Dask cluster) and their TensorFlow imports.
``--s3`` adds a third run: the Dask cluster with the cache on an S3-compatible server
(moto's, on 127.0.0.1), including the uploads and downloads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """
version: 1
name: sweep4
seed: 0
datasets:
  digits: {{type: sklearn_digits}}
stages:
  base:
    type: load
    builder: compressflow.models:small_cnn
  trained: {{type: fine_tune, model: base, data: digits, epochs: {epochs}}}
{variants}
"""

VARIANT = """  pruned_{tag}:
    type: prune
    model: trained
    data: digits
    schedule: {{type: constant, target_sparsity: {sparsity}}}
    epochs: {epochs}
  int8_{tag}: {{type: quantize, model: pruned_{tag}, method: int8, data: digits}}
"""

SPARSITIES = (0.5, 0.7, 0.8, 0.9)


def write_pipeline(folder: Path, epochs: int) -> Path:
    variants = "".join(VARIANT.format(tag=int(s * 100), sparsity=s, epochs=epochs) for s in SPARSITIES)
    path = folder / "sweep4.yaml"
    path.write_text(PIPELINE.format(epochs=epochs, variants=variants))
    return path


def timed_run(pipeline: Path, cache: str, *extra: str, env: dict[str, str] | None = None) -> float:
    command = [sys.executable, "-m", "compressflow", "run", str(pipeline), "--cache", cache, "-q", *extra]
    started = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return seconds


def start_s3() -> tuple[object, dict[str, str]]:
    import logging

    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    os.environ.update(env)
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("bench")
    return server, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the training and of each prune")
    parser.add_argument("--s3", action="store_true", help="also run on Dask with the cache on a local S3 server")
    args = parser.parse_args(argv)

    server, s3_env = start_s3() if args.s3 else (None, {})
    times: dict[str, list[float]] = {"local --jobs 2": [], "dask --workers 2": []}
    if args.s3:
        times["dask --workers 2, cache on S3"] = []
    with tempfile.TemporaryDirectory(prefix="cf-dask-bench-") as tmp:
        folder = Path(tmp)
        pipeline = write_pipeline(folder, args.epochs)
        for rep in range(args.repetitions):
            times["local --jobs 2"].append(timed_run(pipeline, str(folder / f"local-{rep}"), "--jobs", "2"))
            times["dask --workers 2"].append(
                timed_run(pipeline, str(folder / f"dask-{rep}"), "--executor", "dask", "--workers", "2"))
            if args.s3:
                times["dask --workers 2, cache on S3"].append(timed_run(
                    pipeline, f"s3://bench/rep-{rep}", "--executor", "dask", "--workers", "2",
                    env={**s3_env, "COMPRESSFLOW_LOCAL_CACHE": str(folder / f"copy-{rep}")}))
    if server is not None:
        server.stop()

    baseline = statistics.median(times["local --jobs 2"])
    print(f"4-variant sweep (10 stages; {args.epochs} epochs per training stage), cold cache, "
          f"median of {args.repetitions} on {os.cpu_count()} cores:")
    print(f"{'executor':<32} {'wall seconds':>12} {'vs local':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<32} {median:>12.1f} {median / baseline:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
