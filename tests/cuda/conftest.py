"""CUDA kernel tests: under Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a real GPU."""
import os

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
