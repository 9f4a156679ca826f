"""Leave a process as a fresh one would be after a stage ran in it, so a long run's memory stays flat.

A process that runs one stage after another (the ``compressflow`` process, a ``--jobs`` worker)
would otherwise keep what TensorFlow and Keras gathered for every stage: tf-keras' global graph
and name counters, the eager kernel cache, unreferenced models in reference cycles, and freed heap
pages the C allocator keeps. :func:`release_stage_memory` drops them between stages. It imports
nothing: in a process where no stage imported TensorFlow (a cached rerun) it costs a garbage
collection at most.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

_libc = None


def release_stage_memory() -> None:
    """Reset the global state of tf-keras and Keras 3 (if imported), collect garbage, return freed heap to the OS.

    Call it only between stages, never while another stage runs in the same process: it resets
    the Keras session that stage would be using.
    """
    if "tensorflow" not in sys.modules:
        return
    for name in ("tf_keras", "keras"):
        module = sys.modules.get(name)
        backend = getattr(module, "backend", None)
        clear = getattr(backend, "clear_session", None)
        if clear is not None:
            # NOTE: also resets the counters behind auto-generated layer names, so a stage builds the
            # same names (and the same output) after other stages as in a process of its own.
            clear()
    gc.collect()
    _trim_heap()


def _trim_heap() -> None:
    # NOTE: glibc keeps freed pages of its arenas (TensorFlow's tensors live there) for reuse; after
    # a stage they would only add to the next stage's peak. Other C libraries have no malloc_trim.
    global _libc
    if _libc is None:
        path = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(path) if path else False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:
        trim(0)
