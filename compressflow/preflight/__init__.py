"""Preflight: what a pipeline's stages will not manage, found before anything expensive runs.

``compressflow check P`` (and the start of ``compressflow run``) builds each load stage's model
architecture once, without training, carries it along the stages the model flows through and
asks tfmot's own registries and the TFLite converter what each stage will prune, cluster,
quantize, skip or refuse, and whether the model's input and output fit the stage's data.

:func:`compressflow.preflight.checker.check_plan` gives a :class:`~compressflow.preflight.findings.Report`;
``errors`` are what ``run`` would fail on, ``warnings`` what it would leave undone (layers skipped,
ops kept float). TensorFlow is imported only when a stage to check needs a model.
"""
