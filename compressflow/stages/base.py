"""The stage interface: config models, artifacts and the context a stage runs in.

A stage type is a pydantic model that subclasses :class:`Stage`. Its fields are
the YAML keys users write; its ``run`` method does the work. Rules:

* ``run`` writes its outputs into ``ctx.out_dir`` and declares the main one with
  :meth:`StageContext.set_output`. It never touches the cache.
* Modules that define stages import nothing heavy at import time: TensorFlow is
  imported inside ``run`` so that validation, planning and a fully cached run
  stay fast.
* Fields annotated :data:`StageName` / :data:`StageNames` reference other stages
  (edges of the DAG); fields annotated :data:`DatasetName` reference an entry of
  the pipeline's ``datasets:``.

Example::

    @register_stage
    class Double(Stage):
        produces: ClassVar[str] = "number"
        type: Literal["double"] = "double"   # the type's name: ``Double.kind == "double"``
        model: StageName

        def run(self, ctx):
            value = json.loads(ctx.input("model").file().read_text())
            ctx.write_json("value.json", value * 2)
            ctx.set_output("number", "value.json")
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from compressflow.fingerprints import file_sha256, tree_sha256  # noqa: F401  (re-exported)

# --------------------------------------------------------------------------- references


class _StageRefMarker:
    """Annotation marker: the field holds the name(s) of other stages."""

    def __repr__(self) -> str:
        return "StageRef"


class _DatasetRefMarker:
    """Annotation marker: the field holds the name of a dataset."""

    def __repr__(self) -> str:
        return "DatasetRef"


STAGE_REF = _StageRefMarker()
DATASET_REF = _DatasetRefMarker()

StageName = Annotated[str, STAGE_REF, Field(description="Name of another stage of this pipeline.")]
StageNames = Annotated[list[str], STAGE_REF, Field(description="Names of other stages of this pipeline.")]
DatasetName = Annotated[str, DATASET_REF, Field(description="Name of an entry under `datasets:`.")]

# Artifact kinds produced by the built-in stages.
KERAS_MODEL = "keras_model"
TFLITE_MODEL = "tflite_model"
METRICS = "metrics"
FILES = "files"
MODEL_KINDS = (KERAS_MODEL, TFLITE_MODEL)


def _has_marker(annotation: Any, metadata: list[Any], marker: object) -> bool:
    if any(m is marker for m in metadata):
        return True
    # Optional[StageName] / StageName | None keep the marker one level down.
    for arg in get_args(annotation):
        if get_origin(arg) is Annotated and any(m is marker for m in arg.__metadata__):
            return True
    return False


_MARKED_FIELDS: dict[tuple[type, int], tuple[str, ...]] = {}


def _marked_fields(cls: type[BaseModel], marker: object) -> tuple[str, ...]:
    """Names of ``cls``'s fields annotated with ``marker``, worked out once per class."""
    # NOTE: called several times per stage while planning; annotation introspection is slow.
    key = (cls, id(marker))
    names = _MARKED_FIELDS.get(key)
    if names is None:
        names = _MARKED_FIELDS[key] = tuple(name for name, info in cls.model_fields.items()
                                            if _has_marker(info.annotation, info.metadata, marker))
    return names


# --------------------------------------------------------------------------- type names and code


def literal_type_name(cls: type[BaseModel]) -> str | None:
    """The name in ``cls``'s ``type: Literal["name"]`` field, or None when ``type`` is no such Literal."""
    info = cls.model_fields.get("type")
    annotation = info.annotation if info is not None else None
    if get_origin(annotation) is not Literal:
        return None
    names = get_args(annotation)
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{cls.__module__}.{cls.__qualname__}: 'type' is {annotation}; a stage or dataset "
                        "type has exactly one name: type: Literal['name'] = 'name'")
    return names[0]


# Modules of the framework itself, never part of a type's code fingerprint.
_FRAMEWORK_MODULES = frozenset({__name__, "builtins", "typing", "abc"})


class _TypeNamed(BaseModel):
    """What stage and dataset types share: one type name, and the code their cache keys hold.

    ``kind`` is derived from the ``type: Literal["name"]`` field when the class is created, so a
    type validates and is keyed under the same name. A class body that also sets ``kind`` must
    agree with its ``type`` field.
    """

    kind: ClassVar[str] = ""
    code_dependencies: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = literal_type_name(cls)
        declared = cls.__dict__.get("kind")
        where = f"{cls.__module__}.{cls.__qualname__}"
        if name is None:
            if declared:
                raise TypeError(f"{where} sets kind = {declared!r}, but its 'type' field is not "
                                f"Literal[{declared!r}]; declare type: Literal[{declared!r}] = {declared!r} "
                                "(the type's name comes from it) and drop 'kind'")
            cls.kind = ""  # NOTE: an abstract base (type: str) does not keep a name its parent had
            return
        if declared and declared != name:
            raise TypeError(f"{where} sets kind = {declared!r}, but its 'type' field is Literal[{name!r}]; "
                            "the type's name comes from the 'type' field: drop 'kind' or make them agree")
        cls.kind = name

    @classmethod
    def code_modules(cls) -> tuple[str, ...]:
        """Modules whose source is in the cache key of this type, without duplicates.

        The modules defining the class and its bases, then every ``code_dependencies`` along its
        bases: the helpers its ``run`` (or ``load_arrays``) calls into, at any depth.
        """
        modules = [klass.__module__ for klass in cls.__mro__
                   if klass.__module__ not in _FRAMEWORK_MODULES and not klass.__module__.startswith("pydantic")]
        for klass in cls.__mro__:
            modules.extend(klass.__dict__.get("code_dependencies", ()))
        return tuple(dict.fromkeys(modules))


# --------------------------------------------------------------------------- base models


class Stage(_TypeNamed):
    """Base of every stage type's config model.

    Class variables a stage type sets:

    ``type``      not a class variable but the field ``type: Literal["name"] = "name"``: the value
                  of ``type:`` in YAML; ``kind`` (the registry key) is derived from it
    ``produces``  the artifact kind ``run`` outputs (``keras_model``, ``tflite_model``, ...)
    ``version``   bump it when the implementation changes what it outputs: it is in the cache key
    ``libraries`` distributions whose versions are in the cache key
    ``code_dependencies`` modules (besides the one defining the class) whose code ``run`` uses,
                  e.g. ``("compressflow.stages.tfutil",)``: their source is in the cache key
    ``key_exclude`` fields that do not change the output (kept out of the cache key)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    produces: ClassVar[str] = FILES
    version: ClassVar[str] = "1"
    libraries: ClassVar[tuple[str, ...]] = ()
    key_exclude: ClassVar[frozenset[str]] = frozenset()
    # A YAML example of the stage's body (docs; tests check that it validates).
    example: ClassVar[str] = ""
    # Outputs of this stage that are written again on every run, cached or not (export).
    always_publish: ClassVar[bool] = False
    # Fields holding a path the stage reads, with what it is (for messages); see ``check``.
    # The loader also refuses such a path when nothing is there.
    path_fields: ClassVar[dict[str, str]] = {}
    # Fields holding a ``module:function`` the stage imports, with what it is; the loader refuses
    # one whose module cannot be found (it is looked up without being imported).
    module_fields: ClassVar[dict[str, str]] = {}
    # Paths to nested lists of stage names that are not dependencies (renamed with the stages
    # when a recipe is namespaced), e.g. ``("require", "models")`` of evaluate.
    stage_name_paths: ClassVar[tuple[tuple[str, ...], ...]] = ()

    type: str
    after: StageNames = Field(default_factory=list, description="Stages that must finish first (no data passed).")
    description: str | None = Field(default=None, description="Free text for people; not part of the cache key.")
    resources: dict[str, Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="Worker resources one run of this stage takes with `--executor dask`, e.g. "
                                  "`{GPU: 1}` or `{CPU: 2}`; not part of the cache key.")

    # -- references ---------------------------------------------------------------

    @classmethod
    def stage_ref_fields(cls) -> list[str]:
        return list(_marked_fields(cls, STAGE_REF))

    @classmethod
    def dataset_ref_fields(cls) -> list[str]:
        return list(_marked_fields(cls, DATASET_REF))

    def stage_refs(self) -> dict[str, list[str]]:
        """Referenced stages by field name (``after`` included), in field order."""
        refs: dict[str, list[str]] = {}
        for name in self.stage_ref_fields():
            value = getattr(self, name)
            if value is None:
                continue
            refs[name] = list(value) if isinstance(value, (list, tuple)) else [value]
        return refs

    def dataset_refs(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.dataset_ref_fields()
                if getattr(self, name) is not None}

    def key_config(self) -> dict[str, Any]:
        """The resolved config as it enters the cache key.

        References are left out (the keys of the inputs stand for them), and so are
        fields that do not change the output.
        """
        skip = {"after", "description", "resources", *self.key_exclude,
                *self.stage_ref_fields(), *self.dataset_ref_fields()}
        return self.model_dump(mode="json", exclude=skip)

    # -- behaviour ----------------------------------------------------------------

    def run(self, ctx: "StageContext") -> None:  # pragma: no cover - abstract
        raise NotImplementedError(f"stage type {self.kind!r} does not implement run()")

    def fingerprint(self, env: "Environment") -> dict[str, Any]:
        """Fingerprints of what this stage reads from outside the pipeline (files, code).

        Called for every stage on every plan, without TensorFlow: keep it cheap.
        """
        return {}

    def depends_on_machine(self) -> bool:
        """Whether the output holds a measurement of the machine that runs it (a latency).

        Then the machine's fingerprint (:mod:`compressflow.stages.machine`) is in the cache key: another
        machine measures again instead of reusing this one's numbers.
        """
        return False

    def check(self, env: "Environment") -> list["FieldProblem"]:
        """What stops this stage from running in ``env``, found before anything runs.

        The loader calls it for every stage (so ``validate``, ``plan`` and ``run`` all refuse
        the pipeline); it must be cheap and TensorFlow-free. The default refuses paths in
        :attr:`path_fields` that leave the pipeline's folder.
        """
        return check_path_fields(self, env)

    def publish(self, output: "Artifact", env: "Environment") -> list[Path]:
        """Write outputs outside the cache (only called when ``always_publish``)."""
        return []

    def summary(self, output: "Artifact") -> str | None:
        """Text printed at the end of a run (e.g. the evaluate table)."""
        return None

    @classmethod
    def check_pipeline(cls, stages: dict[str, "Stage"]) -> list[tuple[str, str, str]]:
        """Rules that involve several stages, checked once per stage type when a pipeline is loaded.

        ``stages`` are every validated stage of the pipeline by name (of every type).
        Returns ``(stage name, field, message)`` for each rule a stage of this type
        breaks; the problem is located at that field of that stage.
        """
        return []


class Dataset(_TypeNamed):
    """Base of every dataset type's config model (entries under ``datasets:``).

    Like a stage type, it names itself with ``type: Literal["name"] = "name"`` and lists the
    modules its ``load_arrays`` uses in ``code_dependencies``: their source is in the cache key of
    every stage that reads the dataset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0,
                                       description="Share of the samples held out for validation.")
    task: Literal["classification", "multilabel", "regression"] | None = Field(
        None, description="What the labels are: decides the default loss and the metrics evaluate measures. "
                          "Default: inferred from the labels: float labels with non-integer values, or float "
                          "labels for a model with one output, are a regression; integer labels a "
                          "classification; 2-D labels of 0s and 1s multilabel (one-hot rows: classification).")

    path_fields: ClassVar[dict[str, str]] = {}
    module_fields: ClassVar[dict[str, str]] = {}

    def fingerprint(self, env: "Environment") -> dict[str, Any]:
        """Identity of the data (file hashes, package versions); cheap and TensorFlow-free."""
        return {}

    def key_fingerprint(self, env: "Environment") -> dict[str, Any]:
        """What a stage's cache key holds of the data: :meth:`fingerprint`, and what a base type adds to it."""
        return self.fingerprint(env)

    def check(self, env: "Environment") -> list["FieldProblem"]:
        """What stops this dataset from being read in ``env`` (see :meth:`Stage.check`)."""
        return check_path_fields(self, env)

    def load_arrays(self, env: "Environment"):  # pragma: no cover - abstract
        """Return ``(x, y)`` numpy arrays of all samples."""
        raise NotImplementedError


# --------------------------------------------------------------------------- runtime objects


@dataclass(frozen=True)
class Environment:
    """Where a pipeline lives and what it may reach; given to fingerprints and stages."""

    pipeline_dir: Path
    seed: int = 0
    datasets: dict[str, Dataset] = field(default_factory=dict)
    allow_outside_paths: bool = False
    # The pipeline's ``imports:``: modules imported before a stage deserializes a model (custom objects).
    imports: tuple[str, ...] = ()
    # The pipeline's stages by name, while it is checked (``Stage.check``): what a stage's inputs will be.
    stages: dict[str, "Stage"] = field(default_factory=dict)
    # The run's local cache folder on the machine running the stage (None outside a run): where data
    # decoded once per machine is kept (compressflow.data.decoded_images).
    local_cache: Path | None = None

    def resolve_path(self, raw: str | os.PathLike[str], *, what: str) -> Path:
        """Resolve a path written in the pipeline, relative to the pipeline's folder.

        Paths that leave the pipeline's folder (``..``, absolute, symlinks) are refused
        unless ``allow_outside_paths`` is set.
        """
        from compressflow.errors import UsageError

        raw_path = Path(os.path.expanduser(str(raw)))
        path = raw_path if raw_path.is_absolute() else self.pipeline_dir / raw_path
        resolved = path.resolve()
        root = self.pipeline_dir.resolve()
        if not self.allow_outside_paths and resolved != root and root not in resolved.parents:
            raise UsageError(
                f"{what} {str(raw)!r} is outside the pipeline's folder {root}; "
                "use a path inside it, or pass --allow-outside-paths to allow it")
        return resolved


@dataclass(frozen=True)
class FieldProblem:
    """Something wrong with one field of a stage or dataset, found by ``check``."""

    field: str
    message: str


def check_path_fields(config: Stage | Dataset, env: Environment) -> list[FieldProblem]:
    """A problem for every path in ``config.path_fields`` that leaves the pipeline's folder."""
    from compressflow.errors import UsageError

    problems = []
    for name, what in config.path_fields.items():
        raw = getattr(config, name, None)
        if not raw:
            continue
        try:
            env.resolve_path(raw, what=what)
        except (UsageError, OSError, ValueError) as exc:
            problems.append(FieldProblem(name, str(exc)))
    return problems


@dataclass(frozen=True)
class Artifact:
    """A stage's committed output: a directory with ``artifact.json`` describing it."""

    stage: str
    key: str
    path: Path
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)

    def file(self, name: str | None = None) -> Path:
        """Path of the main output file (or of ``name`` inside the artifact).

        A name that leads out of the artifact's folder (absolute, ``..``, a symlink) raises
        :class:`~compressflow.errors.CacheError`: nothing an entry names is read from elsewhere.
        """
        relative = name or self.meta["file"]
        path = self.path / relative if isinstance(relative, (str, os.PathLike)) else None
        if path is None or self.path.resolve() not in path.resolve().parents:
            from compressflow.errors import CacheError

            raise CacheError(f"the cache entry of stage {self.stage!r} names {str(relative)!r}, which is not "
                             f"inside it ({self.path}); remove it with `compressflow cache verify --remove`")
        return path

    def metrics(self) -> dict[str, Any]:
        path = self.path / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @classmethod
    def read(cls, stage: str, key: str, path: Path) -> "Artifact":
        info = json.loads((path / ARTIFACT_FILE).read_text())
        return cls(stage=stage, key=key, path=path, kind=info["kind"], meta=info)


ARTIFACT_FILE = "artifact.json"


@dataclass
class StageContext:
    """Everything a running stage may use."""

    name: str
    seed: int
    out_dir: Path
    env: Environment
    inputs: dict[str, Artifact | list[Artifact]]
    log: Callable[[str], None] = print
    # Structured progress for the live view and run records, e.g. ``{"event": "epoch", "epoch": 3,
    # "epochs": 15, "loss": 0.2}``; None when nothing listens (then only ``log`` is shown).
    progress: Callable[[dict[str, Any]], None] | None = None
    # Upstream stages in execution order: {"stage", "type", "key", "config"} each (for export's sidecar).
    lineage: list[dict[str, Any]] = field(default_factory=list)
    # Versions of the libraries in this stage's cache key.
    versions: dict[str, str | None] = field(default_factory=dict)
    # Set when the stage asked for TensorBoard logs (``tensorboard: true``) and the run has a folder.
    tensorboard_dir: Path | None = None
    # The committed output of a stage of ``lineage`` by (name, key), None when it is not in the cache.
    upstream: Callable[[str, str], "Artifact | None"] | None = None
    _output_set: bool = False

    def input(self, field_name: str) -> Artifact:
        value = self.inputs[field_name]
        if isinstance(value, list):
            raise TypeError(f"input {field_name!r} is a list; use input_list()")
        return value

    def input_list(self, field_name: str) -> list[Artifact]:
        value = self.inputs[field_name]
        return value if isinstance(value, list) else [value]

    def dataset(self, name: str) -> Dataset:
        return self.env.datasets[name]

    def write_json(self, name: str, data: Any) -> Path:
        path = self.out_dir / name
        path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default))
        return path

    def set_output(self, kind: str, file: str | None, **meta: Any) -> None:
        """Declare this stage's output: its kind and main file inside ``out_dir``."""
        if file is not None and not (self.out_dir / file).exists():
            raise FileNotFoundError(f"stage {self.name!r} declared output {file!r} but did not write it")
        self.write_json(ARTIFACT_FILE, {"kind": kind, "file": file, **meta})
        self._output_set = True


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, without importing numpy here
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def derive_seed(seed: int, name: str) -> int:
    """A stage's seed: stable across runs and machines, different per stage name."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

