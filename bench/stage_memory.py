"""Peak memory of a long pipeline run whole against its largest stage run alone, over the whole process tree.

    python bench/stage_memory.py [--baseline REV] [--samples N] [--workdir DIR]

The pipeline has 10 stages on keras.applications MobileNetV2 (alpha 0.35, random weights,
96x96x3 inputs, 4 classes) and generated images (an ``.npz`` this script writes):
load -> fine_tune -> prune -> cluster -> fine_tune -> quantize (float32, int8, dynamic) ->
evaluate -> export.

* **whole run**: ``compressflow run --jobs 1`` of all 10 stages on an empty cache (its TensorFlow
  stages run in a worker process that is replaced when it has grown; see executor/worker_memory.py);
  also with ``--no-check``, without the check before the run (which builds models in the run's process).
* **each stage alone**: ``compressflow run --only STAGE`` for each stage in order, on a cache of
  its own: the stages before were run by the earlier commands, so each fresh run runs just that
  one stage, with its inputs cached. The largest of these peaks is "the largest stage alone".

Each figure is the peak of the **process tree** (the run and its workers): every 20 ms this script
reads ``VmHWM`` of each process of the tree from ``/proc``; the tree's peak is the largest sum, over
the processes alive at one sample, of each one's highest ``VmHWM`` (an upper bound: each process is
counted at its own peak). ``ru_maxrss`` of ``wait4`` is not used for it: it is the largest single
process, and Linux carries it across exec from the forking parent. ``--baseline REV`` also makes a
whole run with the code of git revision REV (unpacked with ``git archive``; the repository is
untouched), for a before/after. The runs go side by side (peak memory does not depend on the
machine's load, only the seconds do). Writes ``bench/results/stage_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO_DIR, PYTHON, bench_env, log

RESULTS = Path(__file__).resolve().parent / "results" / "stage_memory.json"
STAGES = ["base", "trained", "pruned", "clustered", "tuned", "float", "int8", "dynamic", "check", "release"]

PIPELINE = """\
version: 1
name: stage-memory
seed: 0

datasets:
  images: {type: npz, path: images.npz, validation_fraction: 0.25}

stages:
  base:
    type: load
    application: MobileNetV2
    args: {alpha: 0.35, input_shape: [96, 96, 3], classes: 4}
  trained: {type: fine_tune, model: base, data: images, epochs: 1, batch_size: 16}
  pruned:
    type: prune
    model: trained
    data: images
    epochs: 1
    batch_size: 16
    schedule: {type: constant, target_sparsity: 0.5}
  clustered:
    type: cluster
    model: pruned
    data: images
    epochs: 1
    batch_size: 16
    number_of_clusters: 16
    preserve_sparsity: true
  tuned: {type: fine_tune, model: clustered, data: images, epochs: 1, batch_size: 16}
  float: {type: quantize, model: trained, method: float32}
  int8: {type: quantize, model: tuned, method: int8, data: images, representative_samples: 32}
  dynamic: {type: quantize, model: tuned, method: dynamic}
  check:
    type: evaluate
    models: [float, trained, tuned, int8, dynamic]
    baseline: float
    data: images
  release: {type: export, model: int8, format: tflite, to: out/mobilenet-int8.tflite, metrics: check}
"""


def write_project(folder: Path, samples: int) -> Path:
    """The pipeline file and its generated images (class = the brightest of 4 quadrants) in ``folder``."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=samples)
    x = rng.uniform(0.0, 0.5, size=(samples, 96, 96, 3)).astype("float32")
    for i, label in enumerate(y):
        row, col = divmod(int(label), 2)
        x[i, row * 48:(row + 1) * 48, col * 48:(col + 1) * 48] += 0.5
    np.savez(folder / "images.npz", x=x, y=y.astype("int64"))
    pipeline = folder / "pipeline.yaml"
    pipeline.write_text(PIPELINE)
    return pipeline


class TreeHighWater:
    """Samples ``VmHWM`` of a process and its descendants from /proc every ``interval`` s (see the docstring)."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid, self.interval = pid, interval
        self.high: dict[int, int] = {}  # pid -> highest VmHWM seen, bytes
        self.alive: list[frozenset[int]] = []  # the processes of each sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "TreeHighWater":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_bytes(self) -> int:
        return max((sum(self.high[pid] for pid in sample) for sample in self.alive), default=0)

    @property
    def processes(self) -> int:
        return len(self.high)

    def _loop(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                pids = [root.pid, *(child.pid for child in root.children(recursive=True))]
            except psutil.Error:
                return
            seen = set()
            for pid in pids:
                hwm = _high_water(pid)
                if hwm is not None:
                    self.high[pid] = max(self.high.get(pid, 0), hwm)
                    seen.add(pid)
            self.alive.append(frozenset(seen))
            self._stop.wait(self.interval)


def _high_water(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def measure(code_dir: Path, pipeline: Path, cache: Path, *args: str) -> dict:
    """Run ``compressflow run PIPELINE --cache CACHE ARGS`` with the code of ``code_dir``; its tree's peak memory."""
    env = bench_env(PYTHONPATH=str(code_dir))
    cmd = [PYTHON, "-m", "compressflow", "run", str(pipeline), "--cache", str(cache), "--quiet",
           "--progress", "plain", *args]
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=pipeline.parent, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        with TreeHighWater(proc.pid) as sampler:
            proc.wait()
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            out.seek(0)
            raise SystemExit(f"exit status {proc.returncode}: {' '.join(cmd)}\n{out.read()[-3000:]}")
    return {"tree_peak_mb": sampler.peak_bytes / 2**20, "processes": sampler.processes,
            "largest_process_mb": max(sampler.high.values(), default=0) / 2**20, "seconds": seconds}


def whole_run(code: Path, pipeline: Path, cache: Path, *args: str) -> dict:
    """A whole run of the pipeline with ``code`` on the empty cache ``cache``."""
    return measure(code, pipeline, cache, *args)


def stages_alone(code: Path, pipeline: Path, cache: Path) -> dict[str, dict]:
    """Each stage run alone in a fresh process: ``--only STAGE`` in order, so its inputs are cached already."""
    alone = {}
    for stage in STAGES:
        alone[stage] = measure(code, pipeline, cache, "--only", stage)
        log(f"{stage} alone: {alone[stage]['tree_peak_mb']:.0f} MB")
    return alone


def figures(whole: dict[str, dict], alone: dict[str, dict]) -> dict:
    largest = max(alone, key=lambda stage: alone[stage]["tree_peak_mb"])
    largest_mb = alone[largest]["tree_peak_mb"]
    return {"largest_stage": largest, "largest_stage_mb": largest_mb,
            "whole_runs": {name: {**run, "ratio": run["tree_peak_mb"] / largest_mb} for name, run in whole.items()}}


def unpack_revision(revision: str, into: Path) -> Path:
    """The files of git ``revision`` of this repository, unpacked in ``into`` (the repository is untouched)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO_DIR), "archive", revision, "compressflow"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def report(results: dict) -> str:
    largest, largest_mb = results["largest_stage"], results["largest_stage_mb"]
    lines = [f"largest stage alone: {largest} {largest_mb:.0f} MB (process tree)", "",
             f"{'whole run of':<22} {'peak':>8} {'ratio':>7} {'processes':>10} {'seconds':>8}"]
    for name, run in results["whole_runs"].items():
        lines.append(f"{name:<22} {run['tree_peak_mb']:>5.0f} MB {run['ratio']:>6.2f}x {run['processes']:>10} "
                     f"{run['seconds']:>8.0f}")
    lines += ["", "each stage alone (tree peak MB, seconds):"]
    for stage, figures in results["stages_alone"].items():
        lines.append(f"  {stage:<10} {figures['tree_peak_mb']:>6.0f} {figures['seconds']:>7.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REV", help="also measure the code of this git revision")
    parser.add_argument("--samples", type=int, default=64, help="generated images (default: 64)")
    parser.add_argument("--workdir", type=Path, help="folder for the project and caches (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compressflow-stage-memory-") as temp:
        work = (args.workdir or Path(temp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        pipeline = write_project(work, args.samples)
        codes = {}
        if args.baseline:
            codes[f"code at {args.baseline}"] = unpack_revision(args.baseline, work / "baseline-code")
        codes["this code"] = REPO_DIR
        log(f"whole run of {len(STAGES)} stages with " + ", ".join(codes) + ", and each stage alone, side by side")
        with ThreadPoolExecutor(len(codes) + 2) as pool:
            runs = {name: pool.submit(whole_run, code, pipeline, work / f"cache-{index}")
                    for index, (name, code) in enumerate(codes.items())}
            # NOTE: the check before a run builds every checked stage's model in the run's process: its share
            runs["this code, --no-check"] = pool.submit(whole_run, REPO_DIR, pipeline, work / "cache-no-check",
                                                        "--no-check")
            alone = pool.submit(stages_alone, REPO_DIR, pipeline, work / "cache-alone").result()
            whole = {name: run.result() for name, run in runs.items()}
        results = {"pipeline": PIPELINE, "samples": args.samples, **figures(whole, alone), "stages_alone": alone}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"\n(written to {RESULTS.relative_to(REPO_DIR)})", file=sys.stderr)


if __name__ == "__main__":
    main()
