"""An example compressflow plugin: the ``file_stats`` stage type."""

from compressflow_plugin_example.file_stats import FileStats

__all__ = ["FileStats"]
