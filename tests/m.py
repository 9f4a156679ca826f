"""The module of ``builder: 'm:f'`` in the DSL tests' pipelines.

Loading a pipeline looks for a builder's module (without importing it), so the short
spec those tests write names a module that is there. Nothing here is ever called.
"""


def f():
    """Stands for a builder function."""


def g():
    """Stands for a second builder function."""
