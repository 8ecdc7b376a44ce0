"""WHT layers vs the convolutions they replace: forward+backward time and memory, side by side.

    python benchmarks/bench_wht_layers.py          # full: batch 64, as in the issue
    python benchmarks/bench_wht_layers.py --quick  # batch 8, a few seconds (the book calls run(True))

The measurements (what is timed, what memory is counted) and the targets are in
:mod:`mnf.bench.wht_layers` (the chapter ``book/layers/wht_layers.ipynb`` runs them too).
"""
from __future__ import annotations

import argparse

from mnf.bench.wht_layers import run, table, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8, 5 repeats")
    rows = run(parser.parse_args().quick)
    print(table(rows))
    print("\n".join(verdicts(rows)))


if __name__ == "__main__":
    main()
