"""The Optuna study of a ``search`` stage: a journal file beside the cache, samplers, the params space.

Optuna is imported here only, and only when a search stage is planned or run (it takes about a
second to import), so pipelines without a search stay as fast as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressflow.errors import UsageError
from compressflow.executor.keys import digest
from compressflow.stages.base import derive_seed

JOURNAL_FOLDER = "search"
#: Budget parts of a search's config: changing them continues the same study.
BUDGET_FIELDS = ("trials", "timeout")


def optuna_module():
    """``optuna``, quiet; a usage error saying how to install it when it is missing."""
    try:
        import optuna
    except ImportError:
        raise UsageError("a 'search' stage needs Optuna: pip install 'compressflow[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_identity(key_doc: dict[str, Any]) -> str:
    """Hash of everything in a search's key but its budget: the same study whatever ``trials`` says."""
    doc = dict(key_doc)
    doc["config"] = {k: v for k, v in key_doc["config"].items() if k not in BUDGET_FIELDS}
    return digest(doc)


def journal_path(cache_root: Path | str, identity: str) -> Path:
    return Path(cache_root) / JOURNAL_FOLDER / f"{identity}.journal"


def open_study(stage, cache_root: Path | str, key_doc: dict[str, Any], *, create: bool = True):
    """The stage's study (created when ``create``; None when it does not exist and not ``create``)."""
    optuna = optuna_module()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    identity = study_identity(key_doc)
    path = journal_path(cache_root, identity)
    if not create and not path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    directions = [objective.direction() for objective in stage.objectives()]
    return optuna.create_study(study_name=identity, storage=storage, load_if_exists=True, directions=directions,
                               sampler=make_sampler(stage, key_doc["seed"], 0, parallel=False))


def make_sampler(stage, seed: int, trials_so_far: int, *, parallel: bool):
    """A sampler seeded from the stage's seed and the number of trials in the study.

    # NOTE: reseeded before every ask, so a resumed search asks what an uninterrupted one would have.
    """
    optuna = optuna_module()
    trial_seed = derive_seed(seed, f"trial {trials_so_far}")
    if stage.sampler == "random":
        return optuna.samplers.RandomSampler(seed=trial_seed)
    if stage.sampler == "grid":
        # NOTE: one seed for the whole study: the grid sampler gives trial N the N-th point of a grid
        # shuffled by its seed, so a seed per trial would ask some points twice and others never.
        return _grid_sampler(optuna)(grid(stage), seed=derive_seed(seed, "grid"))
    if stage.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=trial_seed)
    # NOTE: constant_liar makes the trials asked at once (--jobs) spread out instead of asking alike.
    return optuna.samplers.TPESampler(seed=trial_seed, constant_liar=parallel)


def _grid_sampler(optuna):
    """Optuna's grid sampler without its stop at the last point.

    # NOTE: GridSampler calls ``study.stop()`` after the last grid point, which raises outside
    # ``study.optimize``; the driver asks and tells itself and ends at the grid's size.
    """

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            pass

    return AskTellGridSampler


def distributions(stage) -> dict[str, Any]:
    """Optuna distributions of the stage's ``space``."""
    optuna = optuna_module()
    dists = optuna.distributions
    out = {}
    for name, param in stage.space.items():
        if param.choices is not None:
            out[name] = dists.CategoricalDistribution(param.choices)
        elif param.int:
            out[name] = dists.IntDistribution(int(param.low), int(param.high), log=param.log,
                                              step=int(param.step or 1))
        else:
            out[name] = dists.FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    return out


def grid(stage) -> dict[str, list[Any]]:
    """Every value of each param, for the grid sampler."""
    values = {}
    for name, param in stage.space.items():
        if param.choices is not None:
            values[name] = list(param.choices)
        else:
            step = param.step or 1
            count = int(round((param.high - param.low) / step)) + 1
            points = [param.low + i * step for i in range(count) if param.low + i * step <= param.high + 1e-12]
            values[name] = [int(p) for p in points] if param.int else [round(p, 12) for p in points]
    return values


def grid_size(stage) -> int:
    size = 1
    for values in grid(stage).values():
        size *= len(values)
    return size


def counted(trial) -> bool:
    """Whether a trial of the journal uses up the budget (finished, pruned or failed on its own)."""
    name = trial.state.name
    return name in ("COMPLETE", "PRUNED") or (name == "FAIL" and not trial.user_attrs.get("interrupted"))


def journal_summary(stage, cache_root: Path | str, key_doc: dict[str, Any]) -> str:
    """What ``plan`` says of a search: the trials in its journal and how many will run."""
    study = open_study(stage, cache_root, key_doc, create=False)
    done = sum(1 for t in study.get_trials(deepcopy=False) if counted(t)) if study is not None else 0
    if stage.trials is None:
        return f"{done} trials in the journal; more until the timeout ({stage.timeout})"
    budget = min(stage.trials, grid_size(stage)) if stage.sampler == "grid" else stage.trials
    return f"{done} trials in the journal, {max(budget - done, 0)} to run"
