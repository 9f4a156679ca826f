"""compressflow: declarative, validated, cached pipelines for compressing Keras models."""

__version__ = "0.1.0"
