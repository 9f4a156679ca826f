"""``prune``: tfmot magnitude pruning with fine-tuning; the output is stripped of wrappers."""

from __future__ import annotations

from typing import Annotated, Any, Callable, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compressflow.errors import StageFailed
from compressflow.stages.base import KERAS_MODEL, DatasetName, Stage, StageName
from compressflow.stages.code_sets import TF_CODE
from compressflow.stages.load import TF_LIBRARIES
from compressflow.stages.options import LayerSelection, TrainingOptions
from compressflow.stages.registry import register_stage

Sparsity = Annotated[float, Field(ge=0.0, lt=1.0)]


class _ScheduleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    begin_step: int | None = Field(None, ge=0, description="Step at which pruning starts (default 0).")
    end_step: int | None = Field(None, ge=-1, description="Step at which pruning ends (default: end of training).")
    begin_epoch: float | None = Field(None, ge=0, description="Like begin_step, in epochs.")
    end_epoch: float | None = Field(None, ge=0, description="Like end_step, in epochs.")
    frequency: int | None = Field(
        None, ge=1,
        description="Steps between two pruning updates "
                    "(default: about 10 updates over the pruning window, at most 100 steps apart).")

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.begin_step is not None and self.begin_epoch is not None:
            raise ValueError("give begin_step or begin_epoch, not both")
        if self.end_step is not None and self.end_epoch is not None:
            raise ValueError("give end_step or end_epoch, not both")
        return self


class ConstantSchedule(_ScheduleBase):
    """Prune to `target_sparsity` at once, at `begin_step`, and keep it."""

    type: Literal["constant"] = "constant"
    target_sparsity: Sparsity = Field(description="Share of weights set to zero.")


class PolynomialDecaySchedule(_ScheduleBase):
    """Raise sparsity from `initial_sparsity` to `final_sparsity` along a polynomial."""

    type: Literal["polynomial_decay"] = "polynomial_decay"
    initial_sparsity: Sparsity = Field(0.0, description="Sparsity when pruning starts.")
    final_sparsity: Sparsity = Field(description="Sparsity when pruning ends.")
    power: float = Field(3.0, gt=0, description="Exponent of the polynomial.")

    @model_validator(mode="after")
    def _increasing(self):
        if self.final_sparsity < self.initial_sparsity:
            raise ValueError("final_sparsity must not be below initial_sparsity")
        return self


Schedule = Annotated[Union[ConstantSchedule, PolynomialDecaySchedule], Field(discriminator="type")]


@register_stage
class PruneStage(LayerSelection, TrainingOptions, Stage):
    """Magnitude pruning (`prune_low_magnitude`): unstructured, block or m-by-n (2:4)."""

    example: ClassVar[str] = """\
model: trained
data: digits
schedule: {type: polynomial_decay, initial_sparsity: 0.5, final_sparsity: 0.9, end_epoch: 6}
epochs: 16
exclude: [probs]
"""
    produces: ClassVar[str] = KERAS_MODEL
    libraries: ClassVar[tuple[str, ...]] = TF_LIBRARIES
    code_dependencies: ClassVar[tuple[str, ...]] = TF_CODE

    type: Literal["prune"] = "prune"
    model: StageName
    data: DatasetName
    schedule: Schedule | None = Field(None, description="Sparsity schedule (not with `sparsity_m_by_n`).")
    block_size: tuple[int, int] | None = Field(
        None, description="Prune whole blocks of [inputs, outputs] weights, e.g. [1, 4]; Dense (2-D) kernels only.")
    sparsity_m_by_n: tuple[int, int] | None = Field(
        None, description="m zeros in every n consecutive weights along the input-channel axis (tfmot's "
                          "convention), e.g. [2, 4]; Conv2D and Dense layers whose input channels are a "
                          "multiple of n.")
    epochs: int = Field(3, ge=1, le=100_000,
                        description="Fine-tuning epochs while pruning (at least 1: training steps update the masks).")

    @model_validator(mode="after")
    def _schedule_or_m_by_n(self):
        if (self.schedule is None) == (self.sparsity_m_by_n is None):
            raise ValueError("give exactly one of 'schedule' or 'sparsity_m_by_n'")
        if self.sparsity_m_by_n is not None:
            m, n = self.sparsity_m_by_n
            if not 0 < m < n:
                raise ValueError("sparsity_m_by_n must be [m, n] with 0 < m < n, e.g. [2, 4]")
            if self.block_size is not None:
                raise ValueError("block_size does not go with sparsity_m_by_n")
        if self.block_size is not None and min(self.block_size) < 1:
            raise ValueError("block_size must be two positive integers, e.g. [1, 4]")
        if self.early_stopping is not None:
            raise ValueError("early_stopping does not go with prune: the schedule must run to its end")
        return self

    def run(self, ctx) -> None:
        from compressflow.data.datasets import load_splits
        from compressflow.stages import keras_training, layer_selection, model_io, tfutil
        from compressflow.stages.batchnorm import batchnorm_mode
        from compressflow.stages.objective import training_objective, validation_summary

        tfutil.seed_everything(ctx.seed)
        model = model_io.load_input_model(ctx)
        splits = load_splits(ctx.dataset(self.data), ctx.env)
        keras_training.check_data_fits(model, splits, self.data)
        objective = training_objective(self, model, splits, ctx)
        train_samples = splits.count("train") if getattr(splits, "streaming", False) else len(splits.x_train)
        steps_per_epoch = -(-train_samples // self.batch_size)
        schedule, plan = build_schedule(self, steps_per_epoch * self.epochs, steps_per_epoch, ctx.log)
        details = layer_selection.details_printer(ctx.name)
        wrapped, pruned, skipped = prune_layers(model, self, schedule, ctx.log, details)
        callbacks = [tfutil.tfmot().sparsity.keras.UpdatePruningStep()]
        if ctx.tensorboard_dir is not None:  # training metrics and each layer's sparsity over the steps
            ctx.log(f"TensorBoard logs with pruning summaries: {ctx.tensorboard_dir}")
            callbacks.append(tfutil.tfmot().sparsity.keras.PruningSummaries(log_dir=str(ctx.tensorboard_dir)))
        with batchnorm_mode(wrapped, self.batchnorm, ctx.log):
            keras_training.compile_model(wrapped, optimizer=self.optimizer, learning_rate=self.learning_rate,
                                         objective=objective)
            training = keras_training.fit(wrapped, splits, ctx, epochs=self.epochs, batch_size=self.batch_size,
                                          callbacks=callbacks, learning_rate=self.learning_rate)
        stripped = tfutil.tfmot().sparsity.keras.strip_pruning(wrapped)
        per_layer, overall = achieved_sparsity(stripped, pruned)
        target = target_sparsity(self)
        final = keras_training.evaluate(stripped, splits, objective=objective)
        ctx.log(f"achieved sparsity {overall:.4f} (target {target:.4f}) over "
                + ", ".join(f"{name} {value:.4f}" for name, value in per_layer.items())
                + f"; {validation_summary(final)}")
        ctx.write_json("metrics.json", {**final, "sparsity": overall, "target_sparsity": target,
                                        "layers": per_layer, "skipped": skipped, "schedule": plan,
                                        "epochs_run": training["epochs_run"], "history": training["history"],
                                        "kernels": tfutil.kernel_stats(stripped)})
        model_io.save_keras_model(stripped, ctx, sparsity=overall, target_sparsity=target, pruned_layers=per_layer,
                                  **{key: final[key] for key in ("accuracy", "val_accuracy") if key in final})


# --------------------------------------------------------------------------- helpers (TensorFlow inside)


def target_sparsity(stage: PruneStage) -> float:
    """The sparsity the stage asks for over the layers it prunes."""
    if stage.sparsity_m_by_n is not None:
        m, n = stage.sparsity_m_by_n
        return m / n
    schedule = stage.schedule
    return schedule.target_sparsity if isinstance(schedule, ConstantSchedule) else schedule.final_sparsity


def schedule_steps(schedule: ConstantSchedule | PolynomialDecaySchedule, total_steps: int, steps_per_epoch: int,
                   log: Callable[[str], None]) -> dict[str, int]:
    """Begin step, end step and frequency such that the final sparsity is applied in training.

    Training steps are numbered 1..``total_steps``; tfmot updates the masks at steps
    ``begin + j * frequency`` up to ``end``. The end is moved onto the last update step
    (and no later than the last training step), and a frequency longer than the pruning
    window is shortened, so the last update happens and applies the final sparsity.
    """
    begin = schedule.begin_step if schedule.begin_step is not None else (
        round(schedule.begin_epoch * steps_per_epoch) if schedule.begin_epoch is not None else 0)
    if schedule.end_epoch is not None:
        end = round(schedule.end_epoch * steps_per_epoch)
    elif schedule.end_step is not None and schedule.end_step != -1:
        end = schedule.end_step
    else:
        end = total_steps
    if begin >= total_steps:
        raise StageFailed(f"pruning would begin at step {begin} but training has only {total_steps} steps "
                          "(epochs x steps per epoch); begin earlier or train longer")
    if end > total_steps:
        log(f"pruning end step {end} is after the last training step; it ends at step {total_steps}")
        end = total_steps
    if end <= begin and (isinstance(schedule, PolynomialDecaySchedule) or begin == 0):
        raise StageFailed(f"pruning must end after it begins (begin step {begin}, end step {end})")
    frequency = schedule.frequency or max(1, min(100, (end - begin) // 10))
    if 0 < end - begin < frequency:
        log(f"pruning frequency {frequency} is longer than the pruning window ({end - begin} steps); "
            f"using {end - begin}")
        frequency = end - begin
    last = begin + (end - begin) // frequency * frequency
    if last != end:
        log(f"pruning ends at step {last}, the last update before step {end}, so the final sparsity is applied")
    return {"begin_step": begin, "end_step": last, "frequency": frequency, "total_steps": total_steps}


def build_schedule(stage: PruneStage, total_steps: int, steps_per_epoch: int, log: Callable[[str], None]):
    """The tfmot pruning schedule object and a JSON description of the effective schedule."""
    from compressflow.stages.tfutil import tfmot

    sparsity = tfmot().sparsity.keras
    if stage.sparsity_m_by_n is not None:
        # NOTE: tfmot computes m-by-n masks once, at training step 1; the schedule is not consulted.
        return (sparsity.ConstantSparsity(target_sparsity(stage), begin_step=0),
                {"type": "m_by_n", "m_by_n": list(stage.sparsity_m_by_n), "update_step": 1,
                 "total_steps": total_steps})
    steps = schedule_steps(stage.schedule, total_steps, steps_per_epoch, log)
    if isinstance(stage.schedule, ConstantSchedule):
        schedule = sparsity.ConstantSparsity(stage.schedule.target_sparsity, begin_step=steps["begin_step"],
                                             end_step=steps["end_step"], frequency=steps["frequency"])
    else:
        schedule = sparsity.PolynomialDecay(stage.schedule.initial_sparsity, stage.schedule.final_sparsity,
                                            begin_step=steps["begin_step"], end_step=steps["end_step"],
                                            power=stage.schedule.power, frequency=steps["frequency"])
    return schedule, {"type": stage.schedule.type, **steps}




def _why_not_prunable(layer, stage: PruneStage) -> str | None:
    """None when ``layer`` can be pruned as the stage asks, else the reason it is left alone."""
    from tensorflow_model_optimization.python.core.sparsity.keras import prunable_layer, prune_registry

    from compressflow.stages.tfutil import keras

    k = keras()
    registry = prune_registry.PruneRegistry
    if not (isinstance(layer, prunable_layer.PrunableLayer) or hasattr(layer, "get_prunable_weights")
            or registry.supports(layer)):
        return "not supported by tfmot pruning"
    if layer.__class__ in registry._LAYERS_WEIGHTS_MAP and not registry._weight_names(layer):
        return "has no prunable weights"
    kernel = getattr(layer, "kernel", None)
    if stage.sparsity_m_by_n is not None:
        n = stage.sparsity_m_by_n[1]
        if type(layer) not in (k.layers.Conv2D, k.layers.Dense):
            return "m-by-n sparsity applies to Conv2D and Dense layers only"
        if kernel.shape[-2] % n:
            return f"its {kernel.shape[-2]} input channels are not a multiple of {n} (m-by-n sparsity)"
    if stage.block_size is not None and tuple(stage.block_size) != (1, 1):
        if kernel is None or len(kernel.shape) != 2:
            return "block sparsity applies to layers with 2-D kernels (Dense) only"
    return None


def prune_layers(model, stage: PruneStage, schedule, log: Callable[[str], None],
                 details: Callable[[str], None] | None = None):
    """Wrap the selected, prunable layers of ``model`` with ``prune_low_magnitude``.

    Returns ``(wrapped model, names of pruned layers, {skipped layer: reason})``.
    Layers without weights are neither pruned nor reported; layers skipped for one reason
    are logged in one line, their names go to ``details`` (see ``layer_selection.log_skipped``).
    """
    from compressflow.stages.layer_selection import wrap_selected_layers
    from compressflow.stages.tfutil import tfmot

    prune_low_magnitude = tfmot().sparsity.keras.prune_low_magnitude
    params: dict[str, Any] = {"pruning_schedule": schedule}
    if stage.block_size is not None:
        params["block_size"] = tuple(stage.block_size)
    if stage.sparsity_m_by_n is not None:
        params["sparsity_m_by_n"] = tuple(stage.sparsity_m_by_n)
    wrapped, pruned, skipped = wrap_selected_layers(
        model, stage, lambda layer: _why_not_prunable(layer, stage),
        lambda layer: prune_low_magnitude(layer, **params), "pruning", log, details)
    if not pruned:
        listed = "; ".join(f"{name}: {why}" for name, why in skipped.items()) or "the model has no weights"
        raise StageFailed(f"no layer to prune ({listed})")
    log(f"pruning {', '.join(pruned)}")
    return wrapped, pruned, skipped


def achieved_sparsity(model, pruned: list[str]) -> tuple[dict[str, float], float]:
    """Sparsity of each pruned layer's kernels, and over all of them together."""
    from compressflow.stages.tfutil import kernel_stats

    stats = kernel_stats(model)
    per_layer, zeros, size = {}, 0, 0
    for layer in pruned:
        kernels = [s for name, s in stats.items() if name == layer or name.startswith(layer + "/")]
        layer_zeros, layer_size = sum(s["zeros"] for s in kernels), sum(s["size"] for s in kernels)
        per_layer[layer] = layer_zeros / layer_size if layer_size else 0.0
        zeros, size = zeros + layer_zeros, size + layer_size
    return per_layer, (zeros / size if size else 0.0)
