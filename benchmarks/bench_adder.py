"""Adder2d on CPU: forward+backward time and peak memory vs the unfold reference and nn.Conv2d.

    python benchmarks/bench_adder.py [--quick]

The cases, the implementations, how time and peak memory are measured, and the bars are in
:mod:`mnf.bench.adder` (the chapter ``book/adder/addernet.ipynb`` runs them too); this script
prints the rows and, per case, the ratios with PASS/FAIL.
"""
from __future__ import annotations

import argparse

from mnf.bench.adder import run, table, verdict_table, verdicts  # noqa: F401  (verdicts: for importers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small cases at batch 8, a few seconds")
    rows = run(parser.parse_args().quick)
    print(table(rows))
    print()
    print(verdict_table(rows))


if __name__ == "__main__":
    main()
