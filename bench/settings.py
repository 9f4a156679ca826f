"""What one run of the suite does: repetitions, sizes and the epoch overrides of smoke mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common import REPO_DIR

DIGITS_PIPELINE = REPO_DIR / "pipelines" / "digits.yaml"
OUTCOME_PIPELINE = REPO_DIR / "bench" / "pipelines" / "outcome.yaml"


@dataclass
class Settings:
    """Knobs of a suite run. ``smoke`` gives the smallest sizes, one repetition and tiny epochs."""

    workdir: Path
    results_dir: Path
    smoke: bool = False
    repetitions: int = 3
    cached_repetitions: int = 5
    scale_sizes: list[int] = field(default_factory=lambda: [100, 1_000, 10_000])
    sweep_variants: int = 4
    dvc: bool = True

    @classmethod
    def make(cls, workdir: Path, results_dir: Path, *, smoke: bool, repetitions: int | None,
             dvc: bool) -> Settings:
        if smoke:
            return cls(workdir, results_dir, smoke=True, repetitions=repetitions or 1, cached_repetitions=1,
                       scale_sizes=[100], sweep_variants=2, dvc=dvc)
        return cls(workdir, results_dir, repetitions=repetitions or 3, dvc=dvc)

    # -- the digits recipe, both ways ----------------------------------------------------

    @property
    def digits_overrides(self) -> list[str]:
        """``--set`` arguments that shrink ``pipelines/digits.yaml`` in smoke mode."""
        if not self.smoke:
            return []
        return ["stages.trained.epochs=1", "stages.pruned.epochs=2", "stages.pruned.schedule.end_epoch=1",
                "stages.check.require=null"]

    @property
    def script_args(self) -> list[str]:
        """The hand-written script's arguments matching :attr:`digits_overrides`."""
        return ["--epochs", "1", "--prune-epochs", "2", "--prune-end-epoch", "1"] if self.smoke else []

    @property
    def recipe_epochs(self) -> dict[str, int]:
        """Epochs of the digits recipe: training, pruning, end of the pruning schedule."""
        return {"train": 1, "prune": 2, "prune_end": 1} if self.smoke else {"train": 15, "prune": 16, "prune_end": 6}

    # -- the sweep -----------------------------------------------------------------------

    @property
    def sweep_epochs(self) -> dict[str, int]:
        return {"train": 1, "prune": 1, "prune_end": 1} if self.smoke else {"train": 15, "prune": 4, "prune_end": 2}

    # -- the outcome pipeline --------------------------------------------------------------

    @property
    def outcome_overrides(self) -> list[str]:
        if not self.smoke:
            return []
        return ["params.epochs=1", "stages.pruned_keras.epochs=1", "stages.pruned_keras.schedule.end_epoch=1",
                "stages.clustered_keras.epochs=1", "stages.qat_keras.epochs=1", "stages.distilled_keras.epochs=1",
                "stages.check.latency.runs=50", "stages.check.latency.warmup=5",
                "stages.check.models=[float, int8]"]

    # -- TPE against a grid ----------------------------------------------------------------

    @property
    def search_overrides(self) -> list[str]:
        """``--set`` arguments of ``bench/pipelines/search_vs_grid.yaml``: a 2-point space in smoke mode."""
        if not self.smoke:
            return []
        out = ["stages.trained.epochs=1", "stages.grid.trials=2"]
        for stage in ("grid", "tpe_0", "tpe_1", "tpe_2"):
            out += [f"stages.{stage}.space.sparsity.high=0.8", f"stages.{stage}.space.clusters.choices=[8]",
                    f"stages.{stage}.constraints.max_accuracy_drop=1.0"]
        return out + [f"stages.tpe_{seed}.trials=4" for seed in range(3)]

    @property
    def search_recipe_params(self) -> dict[str, int]:
        """Params of the searched recipe changed for this run: its epochs (8 pruning epochs instead of 16, so
        that a grid fits the suite's time; 1 in smoke mode)."""
        return {"prune_epochs": 1, "cluster_epochs": 1} if self.smoke else {"prune_epochs": 8}

    @property
    def search_grid_jobs(self) -> int:
        """Worker processes of the grid run (the TPE runs use one: ``--jobs`` changes what TPE asks)."""
        return 1 if self.smoke else 2


def set_args(overrides: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for item in overrides for arg in ("--set", item)]
