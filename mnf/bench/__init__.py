"""Benchmarks the chapters and ``benchmarks/bench_*.py`` share: measured side by side in one run.

- :mod:`mnf.bench.fwht`        ``fwht`` vs a dense product and a plain copy
- :mod:`mnf.bench.wht_layers`  WHT layers vs the convolutions they replace (time, held memory)
- :mod:`mnf.bench.adder`       ``adder2d`` vs the unfold reference and ``nn.Conv2d`` (time, peak memory)

Each module has ``run(quick) -> list[dict]`` (one dict per measurement; ``quick``: a few
seconds), ``table(rows) -> str`` and ``verdicts(rows)`` (the speed and memory targets). They need
no repository checkout; the scripts in ``benchmarks/`` only parse arguments and print. Clocks,
CUDA synchronisation and thread counts (set for the measurement, restored afterwards) come from
:mod:`mnf.timing`. Import the submodule you need (nothing is imported here).
"""
