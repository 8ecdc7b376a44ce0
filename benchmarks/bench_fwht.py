"""Benchmark mnf's fwht against a dense product and a plain copy, measured side by side.

    python benchmarks/bench_fwht.py [--quick] [--json PATH]

The measurements, the rows and the bars are in :mod:`mnf.bench.fwht` (the chapter
``book/wht/fast_transform.ipynb`` runs them too); this script prints the table and PASS/FAIL.
"""
from __future__ import annotations

import argparse
import json

from mnf.bench.fwht import check_bars, run, table, verdicts  # noqa: F401  (check_bars: for importers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--json", metavar="PATH", help="save the rows as JSON")
    args = parser.parse_args()
    rows = run(args.quick)
    print(table(rows))
    print("\n".join(verdicts(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
