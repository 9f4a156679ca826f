"""Bounds on what a pipeline document may be, so hostile input fails fast and cleanly."""

from __future__ import annotations

#: Largest pipeline (or params/include) file read, in bytes.
MAX_FILE_BYTES = 5 * 1024 * 1024

#: Deepest nesting of mappings and lists (counted after aliases are expanded).
MAX_DEPTH = 100

#: Most YAML nodes one file may hold before aliases are expanded.
MAX_NODES = 500_000

#: Most values a document may expand to once aliases and ``${params.x}`` are resolved.
MAX_VALUES = 1_000_000

#: Most characters that params formatted into text (``out/${params.name}.tflite``) may add.
MAX_INTERPOLATED_CHARACTERS = 10_000_000

#: Most values that aliases alone may add (an "alias bomb" adds billions).
MAX_ALIAS_VALUES = 100_000

#: Longest stage, dataset, param or pipeline name.
MAX_NAME_LENGTH = 128

#: Integers must fit in 64 bits (larger ones are typos or attacks, and break float fields).
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
