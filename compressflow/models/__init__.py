"""Built-in model builders and safe model-file inspection.

Importing this package does not import TensorFlow; builders import it when called.
"""

from compressflow.models.builders import application, mlp, mlp_regressor, small_cnn, tiny_cnn

__all__ = ["application", "mlp", "mlp_regressor", "small_cnn", "tiny_cnn"]
