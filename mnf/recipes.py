"""The model sizes and training recipes the book uses, defined once.

Chapters and ``benchmarks/bench_cpu_budget.py`` import these, so the numbers a chapter reports
and the numbers the benchmark checks come from the same settings.

- ``CPU_MODEL``: a reduced MobileNetV2 that two CPU cores train to useful accuracy in minutes
  (ImageNet layout and strides, width 1.0, one or two blocks per stage): 1,227,914 parameters.
  Wide on small maps rather than narrow on large ones, because in a budget of minutes the cheaper
  step buys more epochs (``benchmarks/bench_cpu_budget.py``; results in ``book/notes/training.md``).
- ``GPU_MODEL``: the full CIFAR-layout MobileNetV2 (seed 002): 2,296,922 parameters.
- ``CPU_RECIPE`` / ``GPU_RECIPE``: keyword arguments of :func:`mnf.train.fit` plus ``epochs``;
  ``CPU_RECIPE``'s epochs are what fit in ten minutes on two cores (``benchmarks/bench_cpu_budget.py``).
"""
CPU_MODEL = dict(layout="imagenet", width=1.0, stem_stride=2, blocks=(1, 1, 2, 2, 1, 1, 1), dropout=0.0)
GPU_MODEL = dict(layout="cifar", width=1.0)
CPU_RECIPE = dict(batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                  label_smoothing=0.1, channels_last=True, epochs=24)
GPU_RECIPE = dict(batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                  label_smoothing=0.1, channels_last=False, epochs=60)
