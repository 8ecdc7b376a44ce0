"""Test-suite wiring.

``tests/cuda`` holds the Numba CUDA kernel tests. They run in their own process with
``NUMBA_ENABLE_CUDASIM=1`` (the simulator must be chosen before numba is first imported), or in
the main run when a real GPU is present; otherwise the main run does not collect them.
"""
import os

from numba import cuda

collect_ignore = []
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not cuda.is_available():
    collect_ignore.append("cuda")
