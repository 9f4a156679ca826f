"""The ``tfrecord`` dataset type: ``tf.train.Example`` records in TFRecord files, read as a stream.

Each record holds an input feature (encoded image bytes, or numbers) and a label feature, declared
under ``features:``. Training shuffles through a bounded buffer and every stage batches with tf.data:
the files are never loaded whole. The fingerprint is the bytes of every file the globs match.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressflow.data.datasets import _Preprocessing
from compressflow.stages.base import Environment, FieldProblem, tree_sha256
from compressflow.stages.registry import register_dataset

SPLIT_FIELDS = ("files", "train", "validation")


class Feature(BaseModel):
    """One feature of the records: encoded image bytes, floats or integers, of a fixed shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["image", "float", "int"] = Field(
        description="`image`: PNG/JPEG/GIF/BMP bytes, decoded; `float` / `int`: a list of numbers.")
    shape: tuple[int, ...] = Field((), description="Shape of one sample's value; an image's is "
                                                   "[height, width, channels]. `[]` is a single number.")

    @model_validator(mode="after")
    def _shape_fits(self):
        if any(size < 1 for size in self.shape):
            raise ValueError(f"shape {list(self.shape)} must hold positive sizes")
        if self.type == "image" and (len(self.shape) != 3 or self.shape[-1] not in (1, 3, 4)):
            raise ValueError(f"an image feature's shape is [height, width, channels] with 1, 3 or 4 channels, "
                             f"not {list(self.shape)}")
        return self


@register_dataset
class TfrecordDataset(_Preprocessing):
    """`tf.train.Example` records in TFRecord files (paths or globs), streamed with tf.data."""

    type: Literal["tfrecord"] = "tfrecord"
    files: tuple[str, ...] | None = Field(
        None, description="Files or globs (relative to the pipeline file) of every sample; needs "
                          "`validation_fraction: 0` (a stream is not split), or use `train` and `validation`.")
    train: tuple[str, ...] | None = Field(None, description="Files or globs of the training split.")
    validation: tuple[str, ...] | None = Field(None, description="Files or globs of the validation split.")
    features: dict[str, Feature] = Field(description="Feature name -> `{type: image|float|int, shape: [...]}`.")
    input: str | None = Field(None, description="The input feature (default: the one feature that is not "
                                                "the label).")
    label: str = Field("label", description="The label feature.")
    scale: float | None = Field(None, gt=0, description="Multiply inputs by this (e.g. 1/255 for images).")
    shuffle: bool = Field(True, description="Shuffle training samples through a bounded buffer (seeded).")
    limit: int | None = Field(None, ge=1, description="Use only the first N training samples.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.files is not None and (self.train is not None or self.validation is not None):
            raise ValueError("give either `files` or `train` (and `validation`), not both")
        if self.files is None and self.train is None:
            raise ValueError("give `files` (every sample) or `train` and `validation` (globs of TFRecord files)")
        if self.files is not None and self.validation_fraction > 0:
            raise ValueError("`files` with validation_fraction > 0: a stream of records is not split without "
                             "reading it whole; give `train` and `validation` globs, or set `validation_fraction: 0`")
        if self.label not in self.features:
            raise ValueError(f"label feature {self.label!r} is not under `features` "
                             f"(they are {', '.join(self.features) or 'none'})")
        if self.features[self.label].type == "image":
            raise ValueError(f"label feature {self.label!r} is an image; a label is `int` or `float`")
        others = [name for name in self.features if name != self.label]
        if self.input is None and len(others) != 1:
            raise ValueError(f"name the input feature with `input:` (the features besides the label are "
                             f"{', '.join(others) or 'none'})")
        if self.input is not None and self.input not in others:
            raise ValueError(f"input feature {self.input!r} is not under `features` besides the label "
                             f"(they are {', '.join(others) or 'none'})")
        return self

    @property
    def input_feature(self) -> str:
        """The name of the input feature."""
        return self.input or next(name for name in self.features if name != self.label)

    def split_globs(self) -> dict[str, tuple[str, ...]]:
        """Split name -> its globs (``files`` are all training samples)."""
        if self.files is not None:
            return {"train": self.files}
        return {split: globs for split, globs in (("train", self.train), ("validation", self.validation))
                if globs is not None}

    def matched_files(self, env: Environment, split: str) -> list:
        """The files ``split``'s globs match, sorted (each inside the pipeline's folder)."""
        found = []
        for pattern in self.split_globs().get(split, ()):
            resolved = env.resolve_path(pattern, what="dataset file")
            for match in sorted(glob.glob(str(resolved), recursive=True)):
                found.append(env.resolve_path(match, what="dataset file"))
        return sorted(dict.fromkeys(found))

    def check(self, env: Environment) -> list[FieldProblem]:
        problems = []
        for split, globs in self.split_globs().items():
            field = "files" if self.files is not None else split
            for pattern in globs:
                try:
                    resolved = env.resolve_path(pattern, what="dataset file")
                except Exception as exc:  # noqa: BLE001 - UsageError, OSError: reported, not raised
                    problems.append(FieldProblem(field, str(exc)))
                    continue
                if not [m for m in glob.glob(str(resolved), recursive=True) if not os.path.isdir(m)]:
                    problems.append(FieldProblem(field, f"no file matches {pattern!r} (looked for {resolved})"))
        return problems

    def fingerprint(self, env: Environment) -> dict[str, Any]:
        try:
            return {split: {str(path.relative_to(env.pipeline_dir.resolve()) if env.pipeline_dir.resolve()
                                in path.parents else path): tree_sha256(path)
                            for path in self.matched_files(env, split)}
                    for split in self.split_globs()}
        except Exception:  # noqa: BLE001 - a path problem is reported by check
            return {"files": "unreadable"}

    def load_arrays(self, env: Environment):
        from compressflow.errors import StageFailed

        raise StageFailed("a tfrecord dataset is read as a stream, not as whole arrays")

    def load_source(self, env: Environment, name: str):
        """The splits as :class:`compressflow.data.streams.StreamSplits`."""
        from compressflow.data.streams import StreamSplits

        streams = {split: self._records(env, split) for split in self.split_globs()}
        for split, records in streams.items():
            _check_first_record(name, split, records)
        return StreamSplits(name, streams["train"], streams.get("validation"), scale=self.scale,
                            limit=self.limit, shuffle=self.shuffle, seed=env.seed)

    def _records(self, env: Environment, split: str):
        from compressflow.errors import StageFailed
        from compressflow.stages.tfutil import import_tensorflow

        tf = import_tensorflow()
        files = [str(path) for path in self.matched_files(env, split) if path.is_file()]
        if not files:
            raise StageFailed(f"no TFRecord file matches the {split} globs {list(self.split_globs()[split])}")
        spec = {name: tf.io.FixedLenFeature([] if feature.type == "image" else list(feature.shape),
                                            tf.string if feature.type == "image" else
                                            tf.float32 if feature.type == "float" else tf.int64)
                for name, feature in self.features.items() if name in (self.input_feature, self.label)}
        feature = self.features[self.input_feature]

        def parse(record):
            item = tf.io.parse_single_example(record, spec)
            x = item[self.input_feature]
            if feature.type == "image":
                x = tf.io.decode_image(x, channels=feature.shape[-1], expand_animations=False)
                x = tf.ensure_shape(x, feature.shape)
            return tf.cast(x, tf.float32), item[self.label]

        return tf.data.TFRecordDataset(files).map(parse)


def _check_first_record(name: str, split: str, records) -> None:
    """Fail clearly when a split has no records, or its first record does not fit ``features:``."""
    from compressflow.errors import StageFailed
    from compressflow.stages.tfutil import import_tensorflow

    tf = import_tensorflow()
    try:
        first = next(iter(records.take(1)), None)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as exc:
        reason = str(getattr(exc, "message", exc)).strip().splitlines()[0]
        raise StageFailed(f"dataset {name!r}: the first {split} record does not fit `features:` ({reason}); "
                          "check each feature's name, type and shape against what the files hold") from None
    if first is None:
        raise StageFailed(f"dataset {name!r}: the {split} files hold no records")
