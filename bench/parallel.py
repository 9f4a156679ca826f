"""Section 4: four independent prune + int8 branches after one cached trained model,
``--jobs 2`` against ``--jobs 1``.

The pipeline is generated: one shared ``trained`` stage, then per variant a ``prune`` stage
(its own final sparsity) and an int8 ``quantize`` stage. The trained model is computed once,
untimed; every timed run recomputes all branches with ``--force`` on them. Peak memory is the
summed RSS of the whole process tree (the CLI and its workers), sampled every 50 ms with psutil.
"""

from __future__ import annotations

from common import Series, compressflow_cmd, log, paired_ratios, run_timed
from settings import Settings

SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.6, 0.75, 0.85, 0.95)


def sweep_yaml(settings: Settings) -> str:
    """A pipeline with ``settings.sweep_variants`` independent branches."""
    epochs = settings.sweep_epochs
    lines = [
        "version: 1", "name: bench-sweep", "seed: 0",
        "datasets:", "  digits: {type: sklearn_digits, validation_fraction: 0.2}",
        "stages:",
        "  base: {type: load, builder: 'compressflow.models:small_cnn', args: {input_shape: [8, 8, 1], classes: 10}}",
        f"  trained: {{type: fine_tune, model: base, data: digits, epochs: {epochs['train']}}}",
    ]
    for sparsity in SPARSITIES[:settings.sweep_variants]:
        tag = f"{round(sparsity * 100):02d}"
        lines += [
            f"  pruned_{tag}:",
            "    type: prune", "    model: trained", "    data: digits",
            f"    schedule: {{type: polynomial_decay, initial_sparsity: 0.3, final_sparsity: {sparsity}, "
            f"end_epoch: {epochs['prune_end']}}}",
            f"    epochs: {epochs['prune']}",
            f"  int8_{tag}: {{type: quantize, model: pruned_{tag}, method: int8, data: digits}}",
        ]
    return "\n".join(lines) + "\n"


def measure(settings: Settings) -> dict:
    folder = settings.workdir / "sweep"
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = folder / "sweep.yaml"
    pipeline.write_text(sweep_yaml(settings))
    cache = folder / "cache"
    log("sweep: training the shared model (untimed)")
    run_timed(compressflow_cmd("run", str(pipeline), "--cache", str(cache), "--until", "trained", "-q"), cwd=folder)

    def run(jobs: int):
        return run_timed(compressflow_cmd("run", str(pipeline), "--cache", str(cache), "-q", "--jobs", str(jobs),
                                          "--force", "pruned_*", "int8_*"), cwd=folder, memory=True)

    seconds = {1: Series(), 2: Series()}
    memory = {1: Series(), 2: Series()}
    cores_busy = {1: Series(), 2: Series()}  # CPU seconds / wall seconds: cores kept busy on average
    for rep in range(settings.repetitions):
        for jobs in ((1, 2) if rep % 2 == 0 else (2, 1)):
            log(f"sweep rep {rep + 1}/{settings.repetitions}: --jobs {jobs}")
            timed = run(jobs)
            seconds[jobs].add(timed.seconds)
            memory[jobs].add(timed.peak_rss_mb)
            cores_busy[jobs].add(timed.cpu_seconds / timed.seconds)
    return {"variants": settings.sweep_variants, "branch_stages": 2 * settings.sweep_variants,
            "jobs1": seconds[1].to_json(), "jobs2": seconds[2].to_json(),
            "speedup": paired_ratios(seconds[1], seconds[2]).to_json(),
            "peak_rss_mb_jobs1": memory[1].to_json(), "peak_rss_mb_jobs2": memory[2].to_json(),
            "cores_busy_jobs1": cores_busy[1].to_json(), "cores_busy_jobs2": cores_busy[2].to_json(),
            "pipeline": sweep_yaml(settings)}
