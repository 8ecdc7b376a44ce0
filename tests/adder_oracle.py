"""The tests' unfold oracle for the adder layer, now in the package: :mod:`mnf.adder.unfold`."""
from mnf.adder.unfold import Oracle, adder_output, differences, oracle, unfold_abs  # noqa: F401
