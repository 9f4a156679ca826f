"""cluster: unique weights per layer, sparsity-preserving clustering, layer selection, stripped output."""

from __future__ import annotations

import numpy as np
import pytest

from compressflow.stages.cluster import ClusterStage

import stage_chain as chain

pytestmark = pytest.mark.tf


def test_each_clustered_kernel_has_at_most_the_asked_unique_values():
    artifact = chain.clustered()
    kernels = chain.kernels(chain.load(artifact))
    metrics = artifact.metrics()
    assert set(metrics["unique_weights"]) == {"conv1", "conv2", "dense1", "probs"}
    for name, count in metrics["unique_weights"].items():
        assert count == np.unique(kernels[name]).size <= 8, name
    assert artifact.meta["unique_weights"] == metrics["unique_weights"]
    assert metrics["val_accuracy"] > 0.8


def test_sparsity_preserving_clustering_keeps_every_zero():
    source = chain.pruned()
    before = chain.kernels(chain.load(source))
    stage = ClusterStage(model="pruned", data="digits", number_of_clusters=4, preserve_sparsity=True,
                         exclude=["probs"], epochs=1)
    artifact = chain.run(stage, chain.shared_env(), {"model": source})
    after = chain.kernels(chain.load(artifact))
    assert set(artifact.metrics()["unique_weights"]) == {"conv1", "conv2", "dense1"}
    for name in ("conv1", "conv2", "dense1"):
        assert np.all(after[name][before[name] == 0] == 0), name
        assert np.unique(after[name]).size <= 4, name  # the zero is one of the 4 centroids
    assert np.unique(after["probs"]).size > 4 and artifact.metrics()["skipped"]["probs"].startswith("not selected")


def test_layers_with_too_few_weights_are_left_alone_and_epochs_can_be_zero():
    stage = ClusterStage(model="trained", data="digits", number_of_clusters=80, centroid_init="linear", epochs=0)
    artifact = chain.run(stage, chain.shared_env(), {"model": chain.trained()})
    metrics = artifact.metrics()
    assert "72 weights are not more than 80 clusters" in metrics["skipped"]["conv1"]
    assert metrics["epochs_run"] == 0
    for name, count in metrics["unique_weights"].items():
        assert count <= 80, name
