"""The digits recipe cut into the scripts a DVC project's stages call (one step per command).

Each command reads its inputs from files and writes its outputs to files in the current
folder, with the functions of ``digits_script.py``:

    python dvc_stages.py train --epochs 15                     -> trained.keras
    python dvc_stages.py convert trained.keras float32 float.tflite
    python dvc_stages.py prune --epochs 16 --end-epoch 6       -> pruned.keras
    python dvc_stages.py convert pruned.keras int8 int8.tflite
    python dvc_stages.py evaluate                              -> metrics.json
    python dvc_stages.py export int8.tflite out/digits-int8.tflite
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import digits_script as recipe


def _seeded(seed: int):
    recipe.keras.utils.set_random_seed(seed)
    recipe.tf.config.experimental.enable_op_determinism()
    return recipe.load_data(seed)


def train(args) -> None:
    train_data, val_data = _seeded(args.seed)
    model = recipe.train(recipe.build_model(), train_data, val_data, args.epochs)
    model.save("trained.keras")


def prune(args) -> None:
    train_data, val_data = _seeded(args.seed)
    model = recipe.keras.models.load_model("trained.keras")
    pruned = recipe.prune(model, train_data, val_data, args.epochs, args.end_epoch, args.sparsity)
    pruned.save("pruned.keras")


def convert(args) -> None:
    (x_train, _), _ = _seeded(args.seed)
    model = recipe.keras.models.load_model(args.model, compile=False)
    Path(args.output).write_bytes(recipe.convert(model, args.method, x_train))


def evaluate(args) -> None:
    _, (x_val, y_val) = _seeded(args.seed)
    metrics = {}
    for name in ("float", "int8"):
        metrics[name] = recipe.measure_tflite(Path(f"{name}.tflite").read_bytes(), x_val, y_val)
    for name in ("trained", "pruned"):
        path = Path(f"{name}.keras")
        metrics[name] = recipe.measure_keras(recipe.keras.models.load_model(path, compile=False), path, x_val, y_val)
    Path("metrics.json").write_text(json.dumps(metrics, indent=2))
    recipe.report(metrics)


def export(args) -> None:
    Path(args.target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.source, args.target)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--epochs", type=int, default=15)
    p.set_defaults(handler=train)
    p = sub.add_parser("prune")
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--end-epoch", type=int, default=6)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.set_defaults(handler=prune)
    p = sub.add_parser("convert")
    p.add_argument("model")
    p.add_argument("method", choices=["float32", "int8"])
    p.add_argument("output")
    p.set_defaults(handler=convert)
    sub.add_parser("evaluate").set_defaults(handler=evaluate)
    p = sub.add_parser("export")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(handler=export)
    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
