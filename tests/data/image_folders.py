"""Generated image folders (one sub-folder per class, PNG files) and a pipeline that trains, calibrates and
evaluates on one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import write

CLASSES = 3


def write_folder(root: Path, count: int, size: int = 16, seed: int = 0) -> list[str]:
    """``count`` RGB PNGs of ``size`` x ``size`` under ``root/c0`` .. ``root/c2``; each class brightens one channel
    (learnable in an epoch). Returns the files' paths relative to ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = []
    for i in range(count):
        label = i % CLASSES
        pixels = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
        pixels[..., label] += 120
        relative = f"c{label}/{i:05d}.png"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / relative)
        files.append(relative)
    return files


def write_pipeline(folder: Path, *, size: int = 16, epochs: int = 1, runs: int = 3, count: int | None = None) -> Path:
    """``p.yaml`` beside ``folder/images``: tiny CNN trained, int8-calibrated and evaluated on the folder."""
    limit = f", limit: {count}" if count else ""
    return write(folder / "p.yaml", f"""
        version: 1
        name: folder
        seed: 0
        datasets:
          shapes: {{type: image_directory, path: images, image_size: [{size}, {size}], validation_fraction: 0.2{limit}}}
        stages:
          base: {{type: load, builder: "compressflow.models:tiny_cnn",
                  args: {{input_shape: [{size}, {size}, 3], classes: {CLASSES}, filters: 4}}}}
          trained: {{type: fine_tune, model: base, data: shapes, epochs: {epochs}, batch_size: 32,
                     learning_rate: 0.003}}
          int8: {{type: quantize, model: trained, method: int8, data: shapes, representative_samples: 64}}
          check: {{type: evaluate, models: [trained, int8], data: shapes, latency: {{runs: {runs}, warmup: 1}}}}
    """)
