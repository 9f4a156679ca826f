"""Peak memory and time per epoch of an image-folder pipeline at two dataset sizes: flat memory, linear time.

    python bench/image_stream.py [--sizes 2000,20000] [--baseline REV] [--workdir DIR]

For each size, a folder of generated 32x32 RGB PNGs (3 classes, one sub-folder each) and the
pipeline load (tiny CNN) -> fine_tune -> quantize int8 -> evaluate on an ``image_directory`` dataset:

* **cold run**: ``compressflow run`` on an empty cache: lists and splits the files, decodes every
  image once (into the cache's ``datasets/`` folder), trains one epoch, calibrates, evaluates. Its
  peak resident memory (``ru_maxrss`` from ``wait4``; this script's process is small) is the figure.
* **time per epoch**: ``fine_tune`` forced with 1 and with 3 epochs on the warm cache (the images are
  already decoded); half the difference of the two runs' wall times is one epoch, without
  TensorFlow's import and the stage's start-up.

``--baseline REV`` also makes the cold run with the code of git revision REV (unpacked with ``git
archive``), e.g. one that loaded the folder into arrays. Prints the sizes side by side with the ratios;
``bench/run.py --sections image_stream`` runs it as a section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, REPO_DIR, bench_env, log  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "image_stream.json"
SIZE = 32
CLASSES = 3
EPOCHS = (1, 3)

PIPELINE = """\
version: 1
name: image-stream
seed: 0
datasets:
  images: {{type: image_directory, path: images, image_size: [{size}, {size}], validation_fraction: 0.2}}
stages:
  base:
    type: load
    builder: compressflow.models:tiny_cnn
    args: {{input_shape: [{size}, {size}, 3], classes: {classes}, filters: 8}}
  trained: {{type: fine_tune, model: base, data: images, epochs: 1, batch_size: 64}}
  int8: {{type: quantize, model: trained, method: int8, data: images, representative_samples: 200}}
  check: {{type: evaluate, models: [trained, int8], data: images, latency: {{runs: 20, warmup: 2}}}}
"""


def write_project(folder: Path, count: int) -> Path:
    """``count`` PNGs under ``folder/images/c0..c2`` (each class brightens one channel) and the pipeline."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        label = i % CLASSES
        pixels = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
        pixels[..., label] += 120
        path = folder / "images" / f"c{label}" / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    pipeline = folder / "image-stream.yaml"
    pipeline.write_text(PIPELINE.format(size=SIZE, classes=CLASSES))
    return pipeline


def run(code_dir: Path, pipeline: Path, *args: str) -> dict:
    """``compressflow run PIPELINE ARGS`` with the code of ``code_dir``: wall seconds and peak memory (MiB)."""
    cmd = [PYTHON, "-m", "compressflow", "run", str(pipeline), "--quiet", *args]
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=pipeline.parent, env=bench_env(PYTHONPATH=str(code_dir)), stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            raise SystemExit(f"exit status {os.waitstatus_to_exitcode(status)}: {' '.join(cmd)}\n{out.read()[-3000:]}")
    return {"seconds": seconds, "maxrss_mb": usage.ru_maxrss / 1024}


def decoded_info(pipeline: Path) -> dict:
    """What the cold run's decoded copy says of itself (images per split, seconds to decode)."""
    found = sorted((pipeline.parent / ".compressflow" / "cache" / "datasets").glob("*/info.json"))
    return json.loads(found[-1].read_text()) if found else {}


def measure_size(workdir: Path, count: int, baseline: Path | None, epochs: tuple[int, int]) -> dict:
    folder = workdir / f"images-{count}"
    log(f"image_stream: writing {count} PNGs")
    pipeline = write_project(folder, count)
    result = {"images": count, "decoded_mb": count * SIZE * SIZE * 3 * 4 / 2**20, "epochs": list(epochs)}
    if baseline is not None:
        log(f"image_stream: {count} images, baseline cold run")
        result["baseline_cold"] = run(baseline, pipeline, "--cache", str(folder / "baseline-cache"))
    log(f"image_stream: {count} images, cold run")
    result["cold"] = run(REPO_DIR, pipeline)
    result["decoded"] = decoded_info(pipeline)
    for n in epochs:
        log(f"image_stream: {count} images, fine_tune {n} epoch(s) on decoded images")
        result[f"train_{n}"] = run(REPO_DIR, pipeline, "--until", "trained", "--force", "trained",
                                   "--set", f"stages.trained.epochs={n}")
    low, high = epochs
    seconds = {n: result[f"train_{n}"]["seconds"] for n in epochs}
    result["seconds_per_epoch"] = (seconds[high] - seconds[low]) / (high - low)
    result["train_maxrss_mb"] = max(result[f"train_{n}"]["maxrss_mb"] for n in epochs)
    return result


def measure(settings) -> dict:
    """The section of bench/run.py: two sizes (smaller ones in smoke mode)."""
    sizes = [200, 600] if settings.smoke else [2000, 20000]
    epochs = (1, 2) if settings.smoke else EPOCHS
    workdir = settings.workdir / "image_stream"
    return figures([measure_size(workdir, count, None, epochs) for count in sizes])


def figures(rows: list[dict]) -> dict:
    small, large = rows
    return {"rows": rows, "size_ratio": large["images"] / small["images"],
            "peak_ratio": large["cold"]["maxrss_mb"] / small["cold"]["maxrss_mb"],
            "peak_growth_mb": large["cold"]["maxrss_mb"] - small["cold"]["maxrss_mb"],
            "epoch_ratio": large["seconds_per_epoch"] / small["seconds_per_epoch"],
            **({"baseline_peak_ratio": large["baseline_cold"]["maxrss_mb"] / small["baseline_cold"]["maxrss_mb"]}
               if "baseline_cold" in small else {})}


def table(results: dict) -> list[str]:
    """Markdown rows: one column per size, and the large one's ratio to the small one."""
    small, large = results["rows"]

    def row(label: str, value, unit: str, digits: int = 0) -> str:
        a, b = value(small), value(large)
        return f"| {label} | {a:,.{digits}f}{unit} | {b:,.{digits}f}{unit} | {b / a:.2f}x |"

    lines = [f"| | {small['images']:,} images | {large['images']:,} images | ratio |", "|---|---|---|---|",
             row("decoded float32 images (what arrays would hold)", lambda r: r["decoded_mb"], " MiB"),
             row("peak memory, cold run (decode + train + int8 + evaluate)", lambda r: r["cold"]["maxrss_mb"], " MiB"),
             row("peak memory, fine_tune on decoded images", lambda r: r["train_maxrss_mb"], " MiB")]
    if "baseline_cold" in small:
        lines.append(row("peak memory, cold run, baseline code", lambda r: r["baseline_cold"]["maxrss_mb"], " MiB"))
    lines += [row("wall time, cold run", lambda r: r["cold"]["seconds"], " s", 1)]
    if all(r["decoded"].get("seconds") for r in (small, large)):
        lines.append(row("decoding every image once (in the cold run)", lambda r: r["decoded"]["seconds"], " s", 2))
    lines.append(row("time per epoch", lambda r: r["seconds_per_epoch"], " s", 2))
    return lines


def section(results: dict) -> list[str]:
    """The BENCHMARKS.md section."""
    small, large = results["rows"]
    low, high = small.get("epochs", EPOCHS)
    per_image = ((large["seconds_per_epoch"] - small["seconds_per_epoch"])
                 / (large["images"] - small["images"]))
    fixed, per_thousand = small["seconds_per_epoch"] - per_image * small["images"], per_image * 1000
    return [
        f"An `image_directory` of generated {SIZE}x{SIZE} RGB PNGs at two sizes, through load (tiny CNN) -> "
        "fine_tune -> int8 -> evaluate (`bench/image_stream.py`). The folder is split by its file list and "
        "streamed; the first stage decodes every image once into the cache's `datasets/` folder and every "
        "later stage streams that copy. Peak memory is the `compressflow run` process's `ru_maxrss`; time per "
        f"epoch is the difference between fine_tune forced with {low} and {high} epochs on the decoded images, "
        "divided by the epochs between them.", "",
        *table(results), "",
        f"With {results['size_ratio']:.0f}x the images, peak memory is {results['peak_ratio']:.2f}x "
        f"({results['peak_growth_mb']:+.0f} MiB, against {large['decoded_mb'] - small['decoded_mb']:.0f} MiB more "
        f"decoded images) and an epoch takes {results['epoch_ratio']:.1f}x as long: "
        f"{fixed:.2f} s an epoch whatever its size plus {per_thousand:.3f} s per 1,000 images (a line "
        "through the two sizes). The baseline row, where measured, is the "
        "same pipeline with the code that loaded the folder into arrays.", "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="the two folder sizes, comma-separated")
    parser.add_argument("--baseline", help="also a cold run with the code of this git revision")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="image-stream-"))
    baseline = None
    if args.baseline:
        baseline = workdir / "baseline-code"
        baseline.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO_DIR), "archive", args.baseline, "compressflow"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
    results = figures([measure_size(workdir, count, baseline, EPOCHS) for count in sizes])
    results["baseline"] = args.baseline
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print("\n".join(table(results)))
    print()
    print(section(results)[-2])


if __name__ == "__main__":
    main()
