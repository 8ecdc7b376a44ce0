"""The model sizes and training recipes the book uses, defined once.

Chapters and ``benchmarks/bench_cpu_budget.py`` import these, so the numbers a chapter reports
and the numbers the benchmark checks come from the same settings.

- ``CPU_MODEL``: a reduced MobileNetV2 that two CPU cores train to useful accuracy in minutes
  (ImageNet layout and strides, width 1.0, one or two blocks per stage): 1,227,914 parameters.
  Wide on small maps rather than narrow on large ones, because in a budget of minutes the cheaper
  step buys more epochs (``book/notes/training.md``).
- ``GPU_MODEL``: the full CIFAR-layout MobileNetV2 (seed 002): 2,296,922 parameters.
- ``CPU_RECIPE`` / ``GPU_RECIPE``: keyword arguments of :func:`mnf.train.fit` plus ``epochs``.
  ``CPU_RECIPE``'s epochs are a default for scripts; ``benchmarks/bench_cpu_budget.py`` sizes the
  epochs of a ten-minute run to the machine's measured speed instead.
- ``VARIANTS`` / ``ABLATIONS``: the runs of the recorded experiments ``mobilenet_cpu10`` and
  ``mobilenet_ablation`` (``mnf.results``), rendered by the chapter "Multiplier-free MobileNetV2".
"""
CPU_MODEL = dict(layout="imagenet", width=1.0, stem_stride=2, blocks=(1, 1, 2, 2, 1, 1, 1), dropout=0.0)
GPU_MODEL = dict(layout="cifar", width=1.0)
CPU_RECIPE = dict(batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                  label_smoothing=0.1, channels_last=True, epochs=24)
GPU_RECIPE = dict(batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="cosine",
                  label_smoothing=0.1, channels_last=False, epochs=60)

# The variants of the reduced MobileNetV2 that experiment ``mobilenet_cpu10`` trains
# (``benchmarks/bench_cpu_budget.py``): per variant the keyword arguments of ``mobilenet_v2``
# (on top of ``CPU_MODEL``) under "model", and of ``fit`` (on top of ``CPU_RECIPE``) under "fit".
VARIANTS = {
    "vanilla": dict(model={}, fit={}),
    "last_wht": dict(model=dict(last="wht"), fit={}),
    "pw_wht": dict(model=dict(pointwise="wht"), fit={}),   # the policy's default: thresholds and scales
    "adder": dict(model=dict(pointwise="adder", depthwise="adder"), fit={}),
}
# Ablations (experiment ``mobilenet_ablation``): one lever changed per row, "about" says which.
# "teacher" names the variant of ``mobilenet_cpu10`` whose recorded weights (seed 0) distil into
# the student (fit's ``teacher=``).
ABLATIONS = {
    "vanilla": dict(model={}, fit={}, about="vanilla (the reference: convolutions)"),
    "pw_wht_thresholds": dict(model=dict(pointwise="wht", wht_options=dict(scale=False)), fit={},
                              about="WHT pointwise: soft thresholds only"),
    "pw_wht_scale": dict(model=dict(pointwise="wht", wht_options=dict(scale=True)), fit={},
                         about="WHT pointwise: + a trainable scale per coefficient"),
    "pw_wht_scale_smooth": dict(model=dict(pointwise="wht", wht_options=dict(scale=True, threshold="smooth")),
                                fit={}, about="WHT pointwise: + scale, smooth instead of soft thresholds"),
    "pw_wht_scale_distill": dict(model=dict(pointwise="wht", wht_options=dict(scale=True)), fit={},
                                 teacher="vanilla", about="WHT pointwise: + scale, distilled from vanilla"),
    "pw_wht_scale_late": dict(model=dict(pointwise=["conv"] * 3 + ["wht"] * 4, wht_options=dict(scale=True)),
                              fit={}, about="WHT pointwise with scale from stage 4 on, convolutions in stages 1-3"),
    "adder_eta0.2": dict(model=dict(pointwise="adder", depthwise="adder"), fit=dict(adder_eta=0.2),
                         about="adder: adaptive learning rate η = 0.2"),
    "adder_eta0.5": dict(model=dict(pointwise="adder", depthwise="adder"), fit=dict(adder_eta=0.5),
                         about="adder: adaptive learning rate η = 0.5"),
    "adder_no_eta": dict(model=dict(pointwise="adder", depthwise="adder"), fit=dict(adder_eta=None),
                         about="adder: no adaptive learning rate"),
    "adder_distill": dict(model=dict(pointwise="adder", depthwise="adder"), fit={}, teacher="vanilla",
                          about="adder: η = 0.2, distilled from vanilla"),
}
